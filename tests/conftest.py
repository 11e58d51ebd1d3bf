"""Shared fixtures: a temporary synthgate project built from the repository's own seeds, and its store."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from generator.generation.answer_log import read_answer_log
from generator.store.db import open_store

REPO = Path(__file__).resolve().parent.parent

# The review tests' `store` fixture (a store holding the fixture candidates) lives beside the
# snapshot app that uses the same data.
pytest_plugins = ("tests.review_snapshot_app",)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's keys, database or home: everything lives under tmp_path."""
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "SYNTHGATE_DB"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SYNTHGATE_HOME", str(tmp_path / "synthgate-home"))  # the stores' signing keys


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """A fresh project (as `synthgate init` makes it) holding the repository's sample seeds and holdout set."""
    from generator.init_project import init_project

    root = tmp_path / "proj"
    init_project(root)
    shutil.copyfile(REPO / "seeds" / "support.jsonl", root / "seeds" / "seeds.jsonl")
    (root / "eval").mkdir()
    shutil.copyfile(REPO / "eval" / "holdout.jsonl", root / "eval" / "holdout.jsonl")
    return root


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A migrated, empty store in a temporary SQLite file."""
    store = open_store(f"sqlite:///{tmp_path / 'store' / 'queue.db'}")
    yield store
    store.dispose()


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `synthgate ARGS` in a subprocess, exactly as a user would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "generator", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def generate_args(project_dir: Path, base_url: str, *, count: int, per_request: int = 1, concurrency: int) -> list[str]:
    """`synthgate generate` arguments for a run against the fake server at `base_url`, with a --json summary."""
    return ["--project", str(project_dir), "generate", "--base-url", base_url, "-n", str(count), "--per-request", str(per_request),
            "--concurrency", str(concurrency), "--json"]  # fmt: skip


def start_cli(args: list[str], *, env: dict[str, str] | None = None, **popen: Any) -> subprocess.Popen[str]:
    """Start `synthgate ARGS` in a subprocess (to be killed or interrupted while it runs)."""
    return subprocess.Popen([sys.executable, "-m", "generator", *args], cwd=REPO, env={**os.environ, **(env or {})}, text=True, **popen)


def logged_answers(state_dir: Path) -> int:
    """Answers durable in the project's answer logs: the first place an answer goes, whether or not the store has it yet."""
    return sum(len(read_answer_log(path)) for path in (state_dir / "answers").glob("*.jsonl"))


def wait_for_logged_answers(process: subprocess.Popen[str], state_dir: Path, at_least: int) -> None:
    """Until `at_least` answers are in the log (or the process has ended: the caller then sees it did)."""
    deadline = time.monotonic() + 60
    while logged_answers(state_dir) < at_least and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
