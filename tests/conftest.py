"""Shared fixtures: a temporary synthgate project built from the repository's own seeds, and its store."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

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
