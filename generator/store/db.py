"""Opening the store: engine set-up (SQLite WAL, busy timeout, real transactions) and migrations on every open."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlmodel import Session

from generator.errors import UserError, WorkFailed

# The newest migration in generator/store/migrations/versions. Opening a store compares this with
# the database's alembic_version and imports Alembic only when they differ (it costs ~0.4 s).
HEAD_REVISION = "0009"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# How long a statement waits for another process's write lock. SYNTHGATE_BUSY_TIMEOUT (seconds)
# changes it: longer for a store on a slow network folder, shorter in the fault tests.
BUSY_TIMEOUT_MS = int(float(os.environ.get("SYNTHGATE_BUSY_TIMEOUT", "15")) * 1000)


def open_store(url: str) -> Engine:
    """An engine for the store at `url`, migrated to the current schema."""
    engine = create_store_engine(url)
    migrate(engine)
    return engine


def open_store_for_reading(url: str) -> Engine:
    """An engine for commands that only read (stats, export, verify): works on a store this user cannot write.

    A SQLite store in WAL mode needs its `-shm` file even to be read;
    where that cannot be created (a folder this user cannot write, as when a trainer running as
    another user exports), the file is read as immutable: without locks, which is safe as long as
    nobody writes it meanwhile — and nobody is: the file's owner has no connection open, or the
    `-shm` file would exist.
    """
    engine = create_store_engine(url, create_folder=False)
    database = sqlite_path(engine)
    if database is not None and not database.exists():
        engine.dispose()
        return open_store(url)  # a new project: an empty store, as every other command would make it
    try:
        revision = current_revision(engine)
    except OperationalError:
        if database is None:
            raise
        engine.dispose()
        engine = create_engine(f"sqlite:///file:{database}?mode=ro&immutable=1&uri=true", json_deserializer=orjson.loads)
        revision = current_revision(engine)
    if revision != HEAD_REVISION:
        migrate(engine)  # an older store is upgraded (that one write needs write access, and says so)
    return engine


def create_store_engine(url: str, *, create_folder: bool = True) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UserError(
            f"not a database URL: {url!r}",
            fix="use a SQLAlchemy URL such as sqlite:///path/to/queue.db or postgresql+psycopg://user@host/db",
        ) from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if create_folder and database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    try:
        # orjson reads the JSON columns (prompts, conversations) 2-3x faster than json, and the
        # generation sender reads every prompt of a run.
        engine = create_engine(parsed, json_deserializer=orjson.loads)
    except Exception as exc:  # noqa: BLE001 - e.g. the driver package is not installed: any failure is the same message
        raise UserError(
            f"cannot open database {parsed.render_as_string(hide_password=True)}: {exc}",
            fix="install the database driver, or use the default SQLite store",
        ) from None
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        # Take transaction control from the sqlite3 module (which would not wrap DDL and would
        # start transactions late), so that BEGIN is ours: migrations are atomic and writers can
        # take the write lock up front.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        # FULL: a committed human decision survives even a power cut, not only a kill -9.
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:  # type: ignore[no-untyped-def]
        immediate = connection.get_execution_options().get("write_lock", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextlib.contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session


@contextlib.contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A session whose transaction holds the write lock from its first statement (SQLite BEGIN IMMEDIATE).

    Committed on success, rolled back on any error: no half-written state.
    """
    bind = engine.execution_options(write_lock=True)
    with Session(bind, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def current_revision(engine: Engine) -> str | None:
    """The store's schema revision; None for a blank database. A store that cannot be read raises OperationalError."""
    with engine.connect() as connection:
        return _revision_on(connection)


def migrate(engine: Engine) -> None:
    """Bring the schema to HEAD_REVISION. Safe when several processes (or machines) open a blank store at once."""
    try:
        if current_revision(engine) == HEAD_REVISION:
            return
        # The store's own write lock serialises migrations (no lock file: it must hold across
        # machines sharing PostgreSQL, and on every OS): SQLite's BEGIN IMMEDIATE, or a PostgreSQL
        # transaction-level advisory lock. Whoever waited finds the work done.
        with engine.execution_options(write_lock=True).begin() as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
            if _revision_on(connection) != HEAD_REVISION:
                _run_alembic(connection)
    except OperationalError as exc:
        database = sqlite_path(engine)
        if database is not None and not os.access(database.parent, os.W_OK):
            raise WorkFailed(
                f"the review store {database} is read-only here (its folder cannot be written)",
                fix="stats, export and verify work on it as it is; to change it, use a writable copy",
            ) from None
        raise WorkFailed(
            f"cannot open the review store: {store_fault(exc)}", fix="check the --db URL and that the folder is writable"
        ) from None


_MIGRATION_LOCK_KEY = 0x5EED6A7E  # any constant: every synthgate process agrees on it


def _revision_on(connection: Connection) -> str | None:
    # Asked of the catalogue, not by a query that may fail: a failed statement would abort the
    # enclosing transaction on PostgreSQL.
    if "alembic_version" not in inspect(connection).get_table_names():
        return None  # a blank database
    revision: str | None = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return revision


def _run_alembic(connection: Connection) -> None:
    from alembic import command
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


@dataclass(frozen=True)
class FileIdentity:
    """Which file a SQLite store is (device and inode), to notice it being deleted or replaced under a running command."""

    path: Path | None  # None: not a SQLite file (nothing to watch)
    device: int = 0
    inode: int = 0

    @classmethod
    def of(cls, path: Path | None) -> FileIdentity:
        try:
            status = os.stat(path) if path is not None else None
        except FileNotFoundError:
            status = None
        return cls(path) if status is None else cls(path, status.st_dev, status.st_ino)


def check_store_file(expected: FileIdentity) -> None:
    """Raise if the store file is no longer the one the command began with (an open connection would write into a deleted file)."""
    if expected.path is not None and FileIdentity.of(expected.path) != expected:
        raise WorkFailed(f"the review store {expected.path} was deleted or replaced during the run")


def sqlite_path(engine: Engine) -> Path | None:
    """The store's SQLite file, if it is one."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser()


def store_fault(error: BaseException) -> str:
    """One line saying what went wrong with the store, in the user's words (never a traceback)."""
    text = (str(getattr(error, "orig", None) or error).strip().splitlines() or [type(error).__name__])[0]
    lowered = text.lower()
    if "locked" in lowered or "busy" in lowered:
        return f"the review store stayed locked by another process ({text})"
    if "disk is full" in lowered or "no space" in lowered:
        return f"the disk holding the review store is full ({text})"
    if "readonly" in lowered or "read-only" in lowered:
        return f"the review store is read-only ({text})"
    return text
