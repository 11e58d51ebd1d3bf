"""A second domain end to end: an SQL tutor whose answers are mostly fenced code, from `init` to a verified export."""

from __future__ import annotations

import json
import random
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from generator.store.db import open_store
from tests import fake_llm_server
from tests.conftest import REPO, run_cli
from tests.fake_llm_server import FakeLLMServer, FaultPlan
from tests.review_snapshot_app import make_fixture_app, settle

DOMAIN = REPO / "tests" / "domains" / "sql"
DESCRIPTION = "A SQL tutor for data analysts learning PostgreSQL; answers explain briefly and show a query."


def cli_json(*args: str, cwd: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = run_cli(*args, "--json", cwd=cwd, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
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
    init = run_cli("init", str(project), "--description", DESCRIPTION, cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    assert "prompts/generate.jinja" in init.stdout  # init says which file to adapt
    shutil.copyfile(DOMAIN / "seeds.jsonl", project / "seeds" / "seeds.jsonl")

    check = run_cli("seeds", "check", cwd=project)
    assert check.returncode == 0 and "0 error(s), 0 warning(s)" in check.stdout, check.stdout

    sql_model(monkeypatch)
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
        run = cli_json(*args, cwd=project, env={"OPENAI_API_KEY": "sk-test"})
        prompts = [entry["body"]["messages"] for entry in fake.log]
    assert run["requests_sent"] == 2 and run["failed_calls"] == 0 and run["candidates"] == 6
    assert run["cost_usd"] is None
    system, user = prompts[0][0]["content"], prompts[0][1]["content"]
    # The neutral template follows the project and its seeds, not the demo's support desk.
    assert DESCRIPTION in system and "support" not in system + user.split("Verified example")[0]
    assert "fenced code blocks marked with the language `sql`" in user
    assert "without headings, lists or bold" in user

    # The checks neither filter nor flag clean code answers.
    stats = cli_json("stats", cwd=project)
    assert stats["candidates"]["pending"] == 6 and stats["candidates"]["filtered"] == 0
    assert stats["flags_by_kind"] == {}
    assert run_cli("check", cwd=project).returncode == 0
    assert cli_json("stats", cwd=project)["flags_by_kind"] == {}

    await review_some(project)
    stats = cli_json("stats", cwd=project)
    assert stats["candidates"]["accepted"] == 3 and stats["candidates"]["rejected"] == 1 and stats["candidates"]["pending"] == 2

    export = run_cli("export", "-o", "train.jsonl", cwd=project)
    assert export.returncode == 0, export.stderr
    lines = [json.loads(line) for line in (project / "train.jsonl").read_text().splitlines()]
    assert len(lines) == 3 and all("```sql\n" in line["messages"][-1]["content"] for line in lines)
    verify = run_cli("verify", "train.jsonl", cwd=project)
    assert verify.returncode == 0, verify.stdout + verify.stderr
