"""The whole flow as a user runs it, and the offline demo that `make demo` runs."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from textual.widgets import TextArea

from generator.store.db import open_store
from tests.conftest import REPO, run_cli
from tests.fake_llm_server import FakeLLMServer, FaultPlan
from tests.review_snapshot_app import make_fixture_app, settle

API_KEY = "sk-e2e-THIS-KEY-MUST-NEVER-BE-STORED-0123456789"


def cli_json(*args: str, cwd: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = run_cli(*args, "--json", cwd=cwd, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


async def review_as(project: Path, reviewer: str) -> None:
    """A reviewer works through the queue in the review UI: accept, reject with a reason, edit, accept, quit."""
    engine = open_store(f"sqlite:///{project / '.synthgate' / 'queue.db'}")
    app = make_fixture_app(engine, reviewer=reviewer)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        await pilot.press("r", "1")
        await settle(pilot)
        await pilot.press("e")
        answer = app.focused  # the editor opens on the (last) assistant answer
        assert isinstance(answer, TextArea)
        answer.move_cursor(answer.document.end)
        await pilot.press(*" (Corrected by the reviewer.)", "ctrl+s")
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        await pilot.press("q")
    engine.dispose()


async def test_init_to_verified_export_and_tamper_detection(tmp_path: Path) -> None:
    project = tmp_path / "assistant"
    assert run_cli("init", str(project), cwd=tmp_path).returncode == 0
    shutil.copyfile(REPO / "seeds" / "support.jsonl", project / "seeds" / "seeds.jsonl")
    check = run_cli("seeds", "check", cwd=project)
    assert check.returncode == 0 and "0 error(s)" in check.stdout, check.stdout

    with FakeLLMServer(FaultPlan(latency=0.01, ratios={"429": 0.2}, retry_after=0)) as fake:
        env = {"OPENAI_API_KEY": API_KEY}
        args = ("generate", "--base-url", fake.openai_base_url, "-n", "12", "--per-request", "3", "--concurrency", "4")
        run = cli_json(*args, cwd=project, env=env)
        assert run["requests_sent"] == 4 and run["failed_calls"] == 0
        assert run["candidates"] == 12
        again = cli_json(*args, cwd=project, env=env)
        assert again["requests_sent"] == 0  # finished runs are never paid for twice

    stats = cli_json("stats", cwd=project)
    pending = stats["candidates"]["pending"]
    assert pending >= 4, stats

    await review_as(project, reviewer="dana")
    stats = cli_json("stats", cwd=project)
    assert stats["candidates"]["accepted"] == 3 and stats["candidates"]["rejected"] == 1
    assert stats["candidates"]["pending"] == pending - 4

    export = run_cli("export", "-o", "train.jsonl", cwd=project)
    assert export.returncode == 0, export.stderr
    lines = [json.loads(line) for line in (project / "train.jsonl").read_text().splitlines()]
    assert len(lines) == 3  # two accepted, one edited; the rejected and the pending never
    corrected = [m for line in lines for m in line["messages"] if m["content"].endswith("(Corrected by the reviewer.)")]
    assert len(corrected) == 1 and corrected[0]["role"] == "assistant"  # the edited version, not the model's
    manifest = json.loads((project / "train.jsonl.manifest.json").read_text())
    assert {entry["reviewer"] for entry in manifest["lines"]} == {"dana"}

    verify = run_cli("verify", "train.jsonl", cwd=project)
    assert verify.returncode == 0, verify.stdout + verify.stderr

    # The key went to the server and nowhere else.
    stored = b"".join(p.read_bytes() for p in (project / ".synthgate").iterdir() if p.is_file())
    assert API_KEY.encode() not in stored
    assert API_KEY.encode()[-16:] not in stored

    # Someone with file access rewrites a decision behind the database's back.
    raw = sqlite3.connect(project / ".synthgate" / "queue.db")
    raw.execute("DROP TRIGGER decision_no_update")
    raw.execute("UPDATE decision SET reviewer = 'mallory' WHERE id = 1")
    raw.commit()
    raw.close()
    tampered = run_cli("verify", "train.jsonl", cwd=project)
    assert tampered.returncode == 1
    assert re.search(r"FAIL train\.jsonl:\d+: the decision was altered", tampered.stdout)


def demo_generate_args() -> list[str]:
    """The exact `generate` arguments `make demo` uses, read from the Makefile."""
    makefile = (REPO / "Makefile").read_text()
    line = next(line for line in makefile.splitlines() if "generate --provider replay" in line)
    return shlex.split(line.split("generate", 1)[1])


def test_the_replay_recording_produces_the_demo_queue_without_network(tmp_path: Path) -> None:
    db = ["--db", f"sqlite:///{tmp_path / 'demo.db'}"]
    # No API key and a provider address that goes nowhere: replay must need neither.
    env = {"OPENAI_BASE_URL": "http://192.0.2.1:9/v1", "ANTHROPIC_BASE_URL": "http://192.0.2.1:9"}
    run = cli_json("--project", str(REPO), *db, "generate", *demo_generate_args(), cwd=tmp_path, env=env)
    assert run["requests_sent"] == 11 and run["cost_usd"] == 0
    # a recorded answer cut off at max_tokens after its 5 asked examples: counted, its 5 complete examples queued
    assert run["failures"]["truncated"] == 1 and run["examples_salvaged"] == 5 and run["requests_reasked"] == 0
    assert run["candidates"] == 55

    stats = cli_json("--project", str(REPO), *db, "stats", cwd=tmp_path)
    assert stats["candidates"] == {"pending": 50, "accepted": 0, "rejected": 0, "filtered": 5}
    assert stats["filtered_by_reason"] == {
        "exact duplicate": 1,
        "near-duplicate of seed": 1,
        "holdout leak": 1,
        "near-duplicate of candidate": 1,
        "structural defect": 1,
    }
    assert {"refusal", "placeholder", "pii", "format drift"} <= set(stats["flags_by_kind"])

    rerun = cli_json("--project", str(REPO), *db, "generate", *demo_generate_args(), cwd=tmp_path, env=env)
    assert rerun["requests_sent"] == 0 and rerun["candidates"] == 0
