"""Opening the store: engine set-up (SQLite WAL, busy timeout, real transactions) and migrations on every open."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

import orjson
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, ProgrammingError
from sqlmodel import Session

from generator.errors import UserError, WorkFailed

# The newest migration in generator/store/migrations/versions. Opening a store compares this with
# the database's alembic_version and imports Alembic only when they differ (it costs ~0.4 s).
HEAD_REVISION = "0001"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
BUSY_TIMEOUT_MS = 15_000


def open_store(url: str) -> Engine:
    """An engine for the store at `url`, migrated to the current schema."""
    engine = create_store_engine(url)
    migrate(engine)
    return engine


def create_store_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UserError(
            f"not a database URL: {url!r}",
            fix="use a SQLAlchemy URL such as sqlite:///path/to/queue.db or postgresql+psycopg://user@host/db",
        ) from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    try:
        # orjson reads the JSON columns (prompts, conversations) 2-3x faster than json, and the
        # generation sender reads every prompt of a run.
        engine = create_engine(parsed, json_deserializer=orjson.loads)
    except Exception as exc:  # e.g. the driver package is not installed
        raise UserError(f"cannot open database {parsed.render_as_string(hide_password=True)}: {exc}",
                        fix="install the database driver, or use the default SQLite store") from None
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
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except (OperationalError, ProgrammingError):
        return None  # a blank database: no version table yet


def migrate(engine: Engine) -> None:
    """Bring the schema to HEAD_REVISION. Safe when several processes open a blank store at once."""
    try:
        if current_revision(engine) == HEAD_REVISION:
            return
        with _migration_lock(engine):
            if current_revision(engine) == HEAD_REVISION:
                return  # another process migrated while we waited
            _run_alembic(engine)
    except OperationalError as exc:
        raise WorkFailed(f"cannot open the review store: {exc.orig}", fix="check the --db URL and that the folder is writable") from None


def _run_alembic(engine: Engine) -> None:
    from alembic import command
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """Serialise migrations of one SQLite file across processes (a lock file beside it)."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    lock_path = Path(database).expanduser().with_name(Path(database).name + ".migrate-lock")
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
