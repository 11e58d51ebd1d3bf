"""The store's schema: migrations from a blank database, models in step with migrations, append-only decisions."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import SQLModel

from generator.store import models  # noqa: F401  (registers the tables on SQLModel.metadata)
from generator.store.db import HEAD_REVISION, MIGRATIONS_DIR, current_revision, open_store, write_session
from generator.store.intake import NewCandidate, add_candidates
from generator.store.queue import record_decision
from generator.store.team import POSTGRES_ONLY_TABLES

pytestmark = pytest.mark.both_stores  # every store test runs on SQLite and on PostgreSQL


def test_head_revision_constant_matches_the_newest_migration() -> None:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD_REVISION


def test_blank_database_is_migrated_to_head_with_every_table(tmp_path: Path) -> None:
    engine = open_store(f"sqlite:///{tmp_path / 'q.db'}")
    assert current_revision(engine) == HEAD_REVISION
    tables = set(inspect(engine).get_table_names())
    assert {"seed", "run", "llm_call", "candidate", "decision", "decision_chain", "store_meta", "alembic_version"} <= tables
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        ((store_id, signed_from),) = connection.execute(text("SELECT store_id, signed_from_decision FROM store_meta")).all()
    assert str(uuid.UUID(store_id)) == store_id and signed_from == 1  # a new store signs every decision


def test_a_store_from_before_signing_is_migrated_and_its_decisions_become_legacy(tmp_path: Path) -> None:
    from tests.test_decision_forgery import store_at_revision, write_unsigned_decision

    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = store_at_revision(url, "0001")
    with write_session(old) as session:
        ids = add_candidates(
            session,
            [
                NewCandidate(source_key=str(i), messages=[{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}])
                for i in range(3)
            ],
        )
    write_unsigned_decision(tmp_path / "old.db", candidate_id=ids[0])
    write_unsigned_decision(tmp_path / "old.db", candidate_id=ids[1], action="reject", reasons=["wrong"])
    old.dispose()
    engine = open_store(url)
    assert current_revision(engine) == HEAD_REVISION
    columns = {c["name"] for c in inspect(engine).get_columns("decision")}
    assert "proof" in columns
    assert [c["name"] for c in inspect(engine).get_columns("store_meta")] == ["id", "store_id", "signed_from_decision"]
    with engine.connect() as connection:
        assert connection.execute(text("SELECT signed_from_decision FROM store_meta")).scalar() == 3
        assert connection.execute(text("SELECT id, proof FROM decision ORDER BY id")).all() == [(1, None), (2, None)]
        triggers = set(connection.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).scalars())
    assert {"decision_no_update", "decision_no_delete", "decision_no_replace", "store_meta_no_update"} <= triggers
    with write_session(engine) as session:  # the next decision is the first signed one
        record_decision(session, candidate_id=ids[2], reviewer="ann", action="accept")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT proof IS NOT NULL FROM decision WHERE id = 3")).scalar() == 1
    engine.dispose()


def test_models_and_migrations_describe_the_same_schema(engine: Engine) -> None:
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    # The owner's signing key on PostgreSQL has no model: only the database's trigger reads it.
    diff = [d for d in diff if not (d[0] == "remove_table" and d[1].name in POSTGRES_ONLY_TABLES)]
    assert diff == []


def test_candidates_carry_a_variant_group_and_index(engine: Engine) -> None:
    columns = {c["name"]: c for c in inspect(engine).get_columns("candidate")}
    assert columns["variant_group"]["nullable"] and columns["variant_index"]["nullable"]
    indexes = {i["name"]: i["column_names"] for i in inspect(engine).get_indexes("candidate")}
    assert indexes["ix_candidate_variant_group"] == ["variant_group"]


def test_a_store_from_before_variants_is_migrated_with_its_candidates_ungrouped(tmp_path: Path) -> None:
    from tests.test_decision_forgery import store_at_revision

    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = store_at_revision(url, "0007")
    with old.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO candidate (source_key, content_hash, messages, tags, seed_ids, status, flags, review_order, created_at) "
                "VALUES ('k', 'h', '[]', '[]', '[]', 'pending', '[]', 0, '2026-01-01')"
            )
        )
    old.dispose()
    engine = open_store(url)
    assert current_revision(engine) == HEAD_REVISION
    with engine.connect() as connection:
        assert connection.execute(text("SELECT variant_group, variant_index FROM candidate")).all() == [(None, None)]
    engine.dispose()


def test_opening_twice_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    open_store(url).dispose()
    engine = open_store(url)
    assert current_revision(engine) == HEAD_REVISION


@pytest.mark.sqlite_only  # reads SQLite's EXPLAIN QUERY PLAN
def test_queue_index_serves_next_pending(engine: Engine) -> None:
    with engine.connect() as connection:
        plan = connection.execute(
            text("EXPLAIN QUERY PLAN SELECT id FROM candidate WHERE status='pending' ORDER BY review_order, id LIMIT 1")
        ).all()
    assert any("ix_candidate_queue" in str(row) for row in plan)


def _one_decision(engine: Engine) -> None:
    with write_session(engine) as session:
        (cid,) = add_candidates(
            session, [NewCandidate(source_key="k", messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}])]
        )
        record_decision(session, candidate_id=cid, reviewer="ann", action="accept")


@pytest.mark.parametrize(
    "statement",
    ["UPDATE decision SET reviewer = 'mallory'", "UPDATE decision SET action = 'reject'", "DELETE FROM decision"],
)
def test_decisions_are_append_only_in_the_database(engine: Engine, statement: str) -> None:
    _one_decision(engine)
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
        connection.execute(text(statement))
    with engine.connect() as connection:
        assert connection.execute(text("SELECT reviewer, action FROM decision")).all() == [("ann", "accept")]


@pytest.mark.sqlite_only  # the PostgreSQL guards: test_decision_forgery.py
def test_append_only_holds_for_a_raw_sqlite_connection(engine: Engine) -> None:
    """Not just through SQLAlchemy: any client that opens the file meets the trigger."""
    _one_decision(engine)
    raw = sqlite3.connect(str(engine.url.database))
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        raw.execute("DELETE FROM decision")
    raw.close()


def test_a_decision_without_a_reviewer_is_refused_by_the_database(engine: Engine) -> None:
    _one_decision(engine)
    with pytest.raises(DBAPIError), engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO decision (id, candidate_id, reviewer, action, reasons, content_hash, created_at, prev_hash, hash)"
                " VALUES (99, 1, '  ', 'accept', '[]', 'x', '2026-01-01', '', 'h')"
            )
        )


def test_intake_is_idempotent_and_names_a_same_run_original_by_id(engine: Engine) -> None:
    def candidate(key: str, match: str | None = None) -> NewCandidate:
        messages = [{"role": "user", "content": f"q {key}"}, {"role": "assistant", "content": "a"}]
        return NewCandidate(
            source_key=key,
            messages=messages,
            status="filtered" if match else "pending",
            filter_reason="exact duplicate" if match else None,
            filter_match=match,
        )

    with write_session(engine) as session:
        first = add_candidates(session, [candidate("c:0"), candidate("c:1", "source:c:0")])  # the original in the same batch
    with write_session(engine) as session:
        # A later batch: a match to an earlier batch's candidate, and a stored key given again.
        later = add_candidates(session, [candidate("c:2", "source:c:1"), candidate("c:0")])
    assert later[1] == first[0]
    with engine.connect() as connection:
        matches: dict[str, str | None] = dict(connection.execute(text("SELECT source_key, filter_match FROM candidate")).all())
    assert matches == {"c:0": None, "c:1": f"candidate:{first[0]}", "c:2": f"candidate:{first[1]}"}
