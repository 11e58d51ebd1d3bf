"""A second domain end to end: an SQL tutor whose answers are mostly fenced code, from `init` to a verified export."""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from generator.cli import app
from generator.store.db import open_store
from tests import fake_llm_server
from tests.conftest import REPO
from tests.fake_llm_server import FakeLLMServer, FaultPlan
from tests.review_snapshot_app import make_fixture_app, settle

DOMAIN = REPO / "tests" / "domains" / "sql"
DESCRIPTION = "A SQL tutor for data analysts learning PostgreSQL; answers explain briefly and show a query."


def cli(*args: str) -> Result:
    """`synthgate ARGS` in this process (the CLI's process boundary is tested elsewhere; here it would cost ~3 s a call)."""
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def cli_json(project: Path, *args: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(cli("--project", str(project), *args, "--json").output)
    return document


def sql_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake model answers in the SQL domain: each clean, correct conversation of answers.jsonl once, in order."""
    pool = [json.loads(line) for line in (DOMAIN / "answers.jsonl").read_text().splitlines()]
    given = iter(pool)
    lock = threading.Lock()

    def conversations_for(prompt: str, *, count: int, rng: random.Random) -> list[dict[str, Any]]:
        with lock:
            return [next(given) for _ in range(count)]

    monkeypatch.setattr(fake_llm_server, "conversations_for", conversations_for)


async def review_some(project: Path) -> None:
    """A reviewer accepts three candidates and rejects one with a reason, in the review app."""
    engine = open_store(f"sqlite:///{project / '.synthgate' / 'queue.db'}")
    app = make_fixture_app(engine, reviewer="ines")
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        for keys in (("a",), ("a",), ("r", "1"), ("a",)):
            await pilot.press(*keys)
            await settle(pilot)
        await pilot.press("q")
    engine.dispose()


async def test_sql_tutoring_from_init_to_a_verified_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "sql-tutor"
    init = cli("init", str(project), "--description", DESCRIPTION)
    assert "prompts/generate.jinja" in init.output  # init says which file to adapt
    shutil.copyfile(DOMAIN / "seeds.jsonl", project / "seeds" / "seeds.jsonl")

    check = cli("--project", str(project), "seeds", "check")
    assert "0 error(s), 0 warning(s)" in check.output, check.output

    sql_model(monkeypatch)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with FakeLLMServer(FaultPlan()) as fake:
        # A local model: no price in the built-in table, so the cost is unknown, never a guess.
        args = (
            "generate",
            "--base-url",
            fake.openai_base_url,
            "--model",
            "sqlcoder-7b",
            "-n",
            "6",
            "--per-request",
            "3",
            "--concurrency",
            "1",
        )
        run = await asyncio.to_thread(cli_json, project, *args)  # generate runs its own event loop; this test has one
        prompts = [entry["body"]["messages"] for entry in fake.log]
    assert run["requests_sent"] == 2 and run["failed_calls"] == 0 and run["candidates"] == 6
    assert run["cost_usd"] is None
    system, user = prompts[0][0]["content"], prompts[0][1]["content"]
    # The neutral template follows the project and its seeds, not the demo's support desk.
    assert DESCRIPTION in system and "support" not in system + user.split("Verified example")[0]
    assert "fenced code blocks marked with the language `sql`" in user
    assert "without headings, lists or bold" in user

    # The checks neither filter nor flag clean code answers.
    stats = cli_json(project, "stats")
    assert stats["candidates"]["pending"] == 6 and stats["candidates"]["filtered"] == 0
    assert stats["flags_by_kind"] == {}
    cli("--project", str(project), "check")
    assert cli_json(project, "stats")["flags_by_kind"] == {}

    await review_some(project)
    stats = cli_json(project, "stats")
    assert stats["candidates"]["accepted"] == 3 and stats["candidates"]["rejected"] == 1 and stats["candidates"]["pending"] == 2

    cli("--project", str(project), "export", "-o", str(project / "train.jsonl"))
    lines = [json.loads(line) for line in (project / "train.jsonl").read_text().splitlines()]
    assert len(lines) == 3 and all("```sql\n" in line["messages"][-1]["content"] for line in lines)
    verify = cli("--project", str(project), "verify", str(project / "train.jsonl"))
    assert "FAIL" not in verify.output
