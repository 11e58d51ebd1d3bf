"""Shared fixtures: a temporary synthgate project built from the repository's own seeds, and its store."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

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


# The PostgreSQL server the dual-backend tests use (CI and the dev machine have one here; trust auth).
PG_SERVER = os.environ.get("SYNTHGATE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
BACKENDS = ("sqlite", "postgresql")
# Roles made by a test session (reviewers) are cluster-wide: they carry this prefix and are dropped at its end.
TEST_ROLE_PREFIX = "sgt_"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "both_stores: run each test using `store_url`/`engine` on SQLite and on PostgreSQL")
    config.addinivalue_line("markers", "sqlite_only: a test of SQLite itself (raw sqlite3, files), not run on PostgreSQL")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Modules marked both_stores run every store test twice: once per backend."""
    wants_store = "store_url" in metafunc.fixturenames
    if wants_store and metafunc.definition.get_closest_marker("both_stores") and not metafunc.definition.get_closest_marker("sqlite_only"):
        metafunc.parametrize("store_url", BACKENDS, indirect=True)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """This test session's own PostgreSQL database (random name: parallel sessions and xdist workers never share one), migrated once."""
    name = f"synthgate_test_{secrets.token_hex(6)}"
    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as error:
        admin.dispose()
        pytest.fail(
            f"PostgreSQL is not reachable at {PG_SERVER} (set SYNTHGATE_TEST_PG to a server this user may create databases on): {error.orig}"
        )
    url = f"{PG_SERVER}/{name}"
    open_store(url).dispose()
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        roles = connection.execute(
            text("SELECT rolname FROM pg_roles WHERE rolname LIKE :prefix"), {"prefix": f"{TEST_ROLE_PREFIX}{name[-12:]}%"}
        )
        for role in roles.scalars().all():
            connection.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
    admin.dispose()


@pytest.fixture
def test_role_prefix(pg_database: str) -> str:
    """A prefix for PostgreSQL role names a test creates, so the session drops them at its end."""
    return f"{TEST_ROLE_PREFIX}{pg_database[-12:]}_"


def empty_pg_store(url: str) -> None:
    """Empty the session's PostgreSQL store back to its just-migrated state (far cheaper than a new database per test)."""
    engine = create_engine(url)
    with engine.begin() as connection:
        tables = connection.execute(
            text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename NOT IN ('alembic_version', 'store_meta', 'decision_chain')"
            )
        ).scalars()
        # As the owner and with triggers off (replica role): the append-only guards refuse TRUNCATE, rightly, for everyone else.
        connection.execute(text("SET LOCAL session_replication_role = replica"))
        connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        connection.execute(text("UPDATE decision_chain SET seq = 0, head_hash = ''"))
    engine.dispose()


@pytest.fixture
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty, migrated store: SQLite by default; SQLite and PostgreSQL in modules marked both_stores."""
    backend = getattr(request, "param", "sqlite")
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'queue.db'}"
    url: str = request.getfixturevalue("pg_database")
    empty_pg_store(url)
    return url


@pytest.fixture
def pg_store_url(pg_database: str) -> str:
    """The URL of an empty, migrated PostgreSQL store, for tests of PostgreSQL itself (roles, locks)."""
    empty_pg_store(pg_database)
    return pg_database


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    """A migrated, empty store (a temporary SQLite file, or the session's PostgreSQL database emptied)."""
    store = open_store(store_url)
    yield store
    store.dispose()


def run_in_process(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """Run the console-script entry point in this process with `synthgate ARGV`; returns its exit code (output goes to capsys)."""
    from generator.cli.app import main

    monkeypatch.setattr(sys, "argv", ["synthgate", *argv])
    try:
        main()
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    return 0


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
