"""Every command once on a PostgreSQL store, through the CLI as a user runs it (SYNTHGATE_DB), a reviewer connecting as their role."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from generator.store.db import open_store
from tests.conftest import REPO, run_cli
from tests.review_snapshot_app import Terminal

pytestmark = pytest.mark.slow


def test_every_command_runs_on_postgresql(
    tmp_path: Path, pg_store_url: str, test_role_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"SYNTHGATE_DB": pg_store_url}
    project = tmp_path / "assistant"

    def run(*args: str) -> str:
        result = run_cli(*args, cwd=project if project.exists() else tmp_path, env=env)
        output = result.stdout + result.stderr
        assert result.returncode == 0 and "Traceback" not in output, f"synthgate {' '.join(args)} (exit {result.returncode}):\n{output}"
        return output

    run("init", str(project))
    shutil.copyfile(REPO / "seeds" / "support.jsonl", project / "seeds" / "seeds.jsonl")
    run("seeds", "check")
    run("generate", "--provider", "replay", "--replay-file", str(REPO / "demo" / "recording.jsonl"), "-n", "10", "--per-request", "5")
    run("check")
    reviewer = f"{test_role_prefix}ann"
    assert "synthgate review" in run("team", "add-reviewer", reviewer)
    assert reviewer in run("team", "list")

    # The reviewer's machine: their role in the URL, no key file, no password in any file.
    owner_home = os.environ["SYNTHGATE_HOME"]
    monkeypatch.setenv("SYNTHGATE_DB", make_url(pg_store_url).set(username=reviewer).render_as_string(hide_password=False))
    monkeypatch.setenv("SYNTHGATE_HOME", str(tmp_path / "reviewer-home"))
    terminal = Terminal(["review", "--reviewer", reviewer], cwd=project)
    try:
        terminal.wait_for("9 left")  # the first candidate is on screen
        terminal.press("a")
        terminal.wait_for("saved: accepted")
    finally:
        terminal.kill()
    monkeypatch.setenv("SYNTHGATE_HOME", owner_home)  # back on the owner's machine

    run("stats")
    run("export", "-o", "out.jsonl")
    assert (project / "out.jsonl").read_text(encoding="utf-8").count("\n") == 1
    run("verify", "out.jsonl")
    run("promote")
    engine = open_store(pg_store_url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT reviewer, action FROM decision")).all() == [(reviewer, "accept")]
    engine.dispose()
