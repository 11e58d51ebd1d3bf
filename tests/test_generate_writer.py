"""The journal writer on its own: what it was handed is stored even when the sending process dies at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import delete, update
from sqlmodel import Session, select

from generator.store.db import open_store
from generator.store.models import Candidate, LLMCall, Run
from tests.conftest import REPO, run_cli
from tests.fake_llm_server import FakeLLMServer

pytestmark = pytest.mark.slow
KEY = {"OPENAI_API_KEY": "sk-test-writer-0123456789"}

# Hands every stored answer of the run to a fresh JournalWriter, waits until the answer log holds
# them all, then SIGKILLs itself: no close(), no reply awaited. Each answer is then in the store (the
# writer process stores what reached its pipe) or in the log (stored by the next run), never lost.
_SENDER = """
import asyncio, json, os, signal, sys, time
from pathlib import Path
from generator.generation.answer_log import answer_log_path, read_answer_log
from generator.generation.engine import Generation
from generator.generation.journal import open_calls
from generator.store.db import FileIdentity, open_store, read_session
from generator.generation.writer import JournalWriter, Provenance
from generator.project import Project

project = Project.locate(Path(sys.argv[1]), None)
generation = Generation(project, project.config.generate.model_copy(update={"count": 16, "per_request": 2}))
answers = {int(call_id): body for call_id, body in json.loads(sys.argv[2]).items()}
log = answer_log_path(project.state_dir, db_url=project.db_url, run_id=generation.run_id)

async def hand_over() -> None:
    writer = JournalWriter()
    writer.start(project=project, settings=generation.settings, db_url=project.db_url, run_id=generation.run_id,
                 provenance=Provenance(run_id=generation.run_id, template_hash=generation.template.hash,
                                       model=generation.settings.model, priced=True), log_path=log, store_file=FileIdentity(None))
    writer.begin()
    with read_session(open_store(project.db_url)) as session:
        calls = open_calls(session, run_id=generation.run_id, after_index=-1, limit=100)
    for call in calls:
        writer.store_answer(call, body=answers[call.id], attempts=1, latency_ms=1.0)
    while len(read_answer_log(log)) < len(answers):
        time.sleep(0.001)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(hand_over())
"""


def test_answers_handed_over_survive_a_kill_of_the_sender_and_are_never_paid_twice(project_dir: Path) -> None:
    args = ["--project", str(project_dir), "generate", "-n", "16", "--per-request", "2", "--json"]
    with FakeLLMServer() as fake:
        result = run_cli(*args, "--base-url", fake.openai_base_url, cwd=REPO, env=KEY)
        assert result.returncode == 0, result.stderr
        engine = open_store(f"sqlite:///{project_dir / '.synthgate' / 'queue.db'}")
        # Forget the stored answers (keeping their bodies), as if they had just arrived.
        with Session(engine) as session:
            answers = {str(call.id): call.response_text for call in session.exec(select(LLMCall))}
            session.execute(delete(Candidate))
            session.execute(update(LLMCall).values(status="pending", response_text=None))
            session.execute(update(Run).values(status="stopped"))
            session.commit()
        engine.dispose()
        config = project_dir / "synthgate.toml"
        config.write_text(config.read_text().replace("[generate]\n", f'[generate]\nbase_url = "{fake.openai_base_url}"\n', 1))

        sender = subprocess.run(
            [sys.executable, "-c", _SENDER, str(project_dir), json.dumps(answers)],
            cwd=REPO,
            timeout=60,
            env={**os.environ, **KEY},
            capture_output=True,
            text=True,
        )
        assert sender.returncode == -9, sender.stderr
        sent_before = fake.requests
        rerun = run_cli(*args, cwd=REPO, env=KEY)  # waits for the orphaned writer, stores what the log holds
        assert rerun.returncode == 0, rerun.stderr
        assert fake.requests == sent_before  # nothing paid again

    engine = open_store(f"sqlite:///{project_dir / '.synthgate' / 'queue.db'}")
    with Session(engine) as session:
        calls = list(session.exec(select(LLMCall)))
        candidates = list(session.exec(select(Candidate)))
    engine.dispose()
    assert [call.status for call in calls] == ["ok"] * 8
    assert len(candidates) == 16 and {c.call_id for c in candidates} == {call.id for call in calls}
