"""The journal writer process on its own: what it was handed is committed even when the sending process dies at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import delete, update
from sqlmodel import Session, select

from generator.generation.writer import _ctrl_c_deferred
from generator.store.db import open_store
from generator.store.models import Candidate, LLMCall
from tests.conftest import REPO, run_cli
from tests.fake_llm_server import FakeLLMServer

pytestmark = pytest.mark.slow
KEY = {"OPENAI_API_KEY": "sk-test-writer-0123456789"}

# Hands every stored answer of the run to a fresh JournalWriter, then SIGKILLs itself: no close(),
# no reply awaited. The writer (still building its checker when the first arrivals come) must
# commit them all on its own.
_SENDER = """
import asyncio, json, os, signal, sys
from pathlib import Path
from generator.generation.engine import Generation
from generator.generation.journal import OpenCall
from generator.generation.writer import JournalWriter, Provenance
from generator.project import Project

project = Project.locate(Path(sys.argv[1]), None)
generation = Generation(project, project.config.generate)
answers = {int(call_id): body for call_id, body in json.loads(sys.argv[2]).items()}

async def hand_over() -> None:
    writer = JournalWriter(db_url=project.db_url, project=project, holdout=generation.holdout, prices=generation.prices,
                           provenance=Provenance(run_id=sys.argv[3], template_hash=generation.template.hash,
                                                 model=generation.settings.model, priced=True), backlog=iter(()))
    for call_id, body in answers.items():
        writer.store_answer(OpenCall(call_id, 0, "", {"asked": 2}, []), body=body, attempts=1, latency_ms=1.0)
    os.kill(os.getpid(), signal.SIGKILL)  # at once: handed over means in the pipe

asyncio.run(hand_over())
"""


def test_answers_handed_to_the_writer_are_committed_after_the_sender_is_killed(project_dir: Path) -> None:
    with FakeLLMServer() as fake:
        result = run_cli("--project", str(project_dir), "generate", "--base-url", fake.openai_base_url, "-n", "16", "--per-request", "2",
                         "--json", cwd=REPO, env=KEY)
    assert result.returncode == 0, result.stderr
    run_id = json.loads(result.stdout)["run_id"]
    engine = open_store(f"sqlite:///{project_dir / '.synthgate' / 'queue.db'}")
    # Forget the stored answers (keeping their bodies), as if they had just arrived.
    with Session(engine) as session:
        answers = {str(call.id): call.response_text for call in session.exec(select(LLMCall))}
        session.execute(delete(Candidate))
        session.execute(update(LLMCall).values(status="pending", response_text=None))
        session.commit()

    sender = subprocess.run([sys.executable, "-c", _SENDER, str(project_dir), json.dumps(answers), run_id], cwd=REPO, timeout=60,
                            env={**os.environ, **KEY}, capture_output=True, text=True)
    assert sender.returncode == -9, sender.stderr

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with Session(engine) as session:
            calls = list(session.exec(select(LLMCall)))
            candidates = list(session.exec(select(Candidate)))
        if all(call.status == "ok" for call in calls) and len(candidates) == 16:
            break
        time.sleep(0.1)
    engine.dispose()
    assert [call.status for call in calls] == ["ok"] * 8
    assert len(candidates) == 16 and {c.call_id for c in candidates} == {call.id for call in calls}


def test_ctrl_c_while_an_arrival_is_written_is_delivered_after_it() -> None:
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    written = False
    try:
        with pytest.raises(KeyboardInterrupt):
            with _ctrl_c_deferred():
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(100_000):  # the interpreter runs pending handlers between these
                    pass
                written = True
    finally:
        signal.signal(signal.SIGINT, previous)
    assert written
