"""`synthgate review` from the command line: bad input exits 2 with a fix, the reviewer is always named,
and in a real terminal a decision shown as made survives a kill -9."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest

from generator.cli.review_cmd import resolve_reviewer
from generator.errors import UserError
from generator.project import Project
from generator.store.db import open_store
from tests.conftest import run_cli
from tests.review_snapshot_app import Terminal, build_review_store


def filled_project(project_dir: Path) -> Path:
    engine = open_store(Project.locate(project_dir).db_url)
    build_review_store(engine)
    engine.dispose()
    return project_dir


def test_review_needs_a_terminal(project_dir: Path) -> None:
    result = run_cli("review", "--reviewer", "ann", cwd=filled_project(project_dir))
    assert result.returncode == 2
    assert "needs an interactive terminal" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tag", "Not A Tag"], "--tag 'Not A Tag' is not a tag"),
        (["--run", "run-missing"], "--run 'run-missing': no such generation run"),
        (["--reviewer", "  "], "--reviewer must not be blank"),
    ],
)
def test_bad_flags_exit_2_with_a_fix(project_dir: Path, args: list[str], message: str) -> None:
    result = run_cli("review", *args, cwd=filled_project(project_dir))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "fix:" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ('accept = "y"\naccpet = "z"', "unknown review action 'accpet'"),
        ('accept = "r"', "key 'r' is bound to both 'accept' and 'reject'"),
        ('skip = "n"', "key 'n' belongs to the reject panel"),
    ],
)
def test_bad_key_remapping_names_the_config_line(project_dir: Path, keys: str, message: str) -> None:
    config = project_dir / "synthgate.toml"
    config.write_text(config.read_text() + f"\n[review.keys]\n{keys}\n")
    result = run_cli("review", "--reviewer", "ann", cwd=project_dir)
    assert result.returncode == 2
    assert message in result.stderr
    line = config.read_text().splitlines().index("[review.keys]") + 1
    assert f"synthgate.toml:{line}:" in result.stderr


def test_the_reviewer_comes_from_the_flag_then_config_then_git_then_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_reviewer(" Ann ", configured="Cy", project_root=tmp_path) == "Ann"
    assert resolve_reviewer(None, configured="Cy", project_root=tmp_path) == "Cy"
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "config", "user.name", "Grace Hopper"], check=True)
    assert resolve_reviewer(None, configured=None, project_root=tmp_path) == "Grace Hopper"
    outside = tmp_path / "no-git"
    outside.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.setattr("getpass.getuser", lambda: "login-name")
    assert resolve_reviewer(None, configured=None, project_root=outside) == "login-name"

    def no_user() -> str:
        raise KeyError("uid not found")

    monkeypatch.setattr("getpass.getuser", no_user)
    with pytest.raises(UserError, match="no reviewer name"):
        resolve_reviewer(None, configured=None, project_root=outside)


@pytest.mark.slow
def test_in_a_real_terminal_a_decision_shown_as_made_survives_kill_9(project_dir: Path) -> None:
    filled_project(project_dir)
    terminal = Terminal(["review", "--reviewer", "ann"], cwd=project_dir)
    try:
        terminal.wait_for("two-person studio")  # candidate 1 is on screen
        terminal.press("a")
        terminal.wait_for("saved: accepted #1")
        terminal.wait_for("resend an invoice")  # candidate 2 is on screen
    finally:
        terminal.kill()
    database = sqlite3.connect(project_dir / ".synthgate" / "queue.db")
    rows = database.execute("SELECT candidate_id, reviewer, action FROM decision").fetchall()
    held = database.execute("SELECT lease_owner FROM candidate WHERE id = 2").fetchone()
    database.close()
    assert rows == [(1, "ann", "accept")]
    assert held == ("ann",)  # killed, so not released: it comes back to ann first, or to others when the lease ends


def test_an_unknown_tag_exits_2_listing_the_tags_in_the_queue(project_dir: Path) -> None:
    result = run_cli("review", "--reviewer", "ann", "--tag", "nosuchtag", cwd=filled_project(project_dir))
    assert result.returncode == 2, result.stderr
    assert "--tag 'nosuchtag': no candidate in the store has this tag" in result.stderr
    assert "billing (2)" in result.stderr and "edge:hostile (1)" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_quitting_prints_the_summary_and_the_next_session_keeps_the_filter(project_dir: Path) -> None:
    filled_project(project_dir)
    terminal = Terminal(["review", "--reviewer", "ann", "--flagged"], cwd=project_dir)
    try:
        terminal.wait_for("two-person studio")
        terminal.press("a")
        terminal.wait_for("saved: accepted #1")
        terminal.press("q")
        terminal.wait_for("This session: 1 decided")
        terminal.wait_for("1 left in the queue for your filters (4 in the whole queue)")
        assert terminal.process.wait(timeout=30) == 0
    finally:
        if terminal.process.poll() is None:
            terminal.kill()
    again = Terminal(["review", "--reviewer", "ann"], cwd=project_dir)  # no filter flags: last session's come back
    try:
        again.wait_for("flagged only")  # the header (styled in parts: matched on the filter itself)
        again.wait_for("Can I pay my Ledgerly bill")  # candidate 3, the other flagged one
    finally:
        again.kill()
