"""Reviewers as PostgreSQL roles: the database names each decision after the connected role, signs it, and keeps it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlmodel import col, select

from generator.cli.app import main
from generator.errors import WorkFailed
from generator.export.verify import verify_export
from generator.store.adjudication import grant_adjudicator, may_adjudicate
from generator.store.db import open_store, read_session
from generator.store.models import Candidate, Decision
from generator.store.signing import load_key, store_identity
from generator.store.team import add_reviewer, engine_as_role, list_reviewers, remove_reviewer
from tests.test_export import add, chat, decide, export


@pytest.fixture
def owner(pg_store_url: str) -> Iterator[Engine]:
    engine = open_store(pg_store_url)
    yield engine
    engine.dispose()


def connect_as(url: str, role: str) -> Engine:
    """What a reviewer runs on their own machine: the store's URL with their role as the user."""
    return open_store(make_url(url).set(username=role).render_as_string(hide_password=False))


def decisions(engine: Engine) -> list[Decision]:
    with read_session(engine) as session:
        return list(session.exec(select(Decision).order_by(col(Decision.id))))


def raw_adjudication(candidate_id: int, role: str) -> str:
    """An adjudication written with plain SQL as `role` (a bogus hash: only the role guard is under test)."""
    return (
        "INSERT INTO decision (candidate_id, reviewer, action, reasons, created_at, prev_hash, hash, content_hash, kind) "
        f"VALUES ({candidate_id}, '{role}', 'accept', '[]', now(), '', 'x', 'y', 'adjudication')"
    )


def drop_roles(admin: Engine, *roles: str) -> None:
    """Roles are the server's, not the database's: drop what a test created, so the next test's `team list` is clean."""
    with admin.begin() as connection:
        for role in roles:
            connection.exec_driver_sql(f'DROP OWNED BY "{role}"')
            connection.exec_driver_sql(f'DROP ROLE "{role}"')


def test_a_reviewer_decides_under_their_role_signed_by_the_database(owner: Engine, pg_store_url: str, test_role_prefix: str) -> None:
    ann = f"{test_role_prefix}ann"
    add_reviewer(owner, ann)
    ids = add(owner, chat(1), chat(2))
    reviewer = connect_as(pg_store_url, ann)
    decide(reviewer, ids[0], "accept", reviewer="Someone Else")  # the name the app passed is not the identity: the role is
    reviewer.dispose()
    decide(owner, ids[1], "accept", reviewer="owner")  # the owner still signs with the key file
    made = decisions(owner)
    assert [d.reviewer for d in made] == [ann, "owner"]
    with read_session(owner) as session:
        key = load_key(store_identity(session))
    assert key is not None
    assert all(key.proves(d.hash, d.proof) for d in made)  # the database's HMAC is the key file's HMAC


def test_a_reviewer_role_cannot_forge_rewrite_or_delete(owner: Engine, pg_store_url: str, test_role_prefix: str) -> None:
    ann = f"{test_role_prefix}ann"
    add_reviewer(owner, ann)
    ids = add(owner, chat(1))
    decide(owner, ids[0], "accept", reviewer="bob")
    reviewer = connect_as(pg_store_url, ann)
    forgeries = [
        "INSERT INTO decision (id, candidate_id, reviewer, action, reasons, created_at, prev_hash, hash, content_hash, kind) "
        f"VALUES (99, {ids[0]}, 'bob', 'accept', '[]', now(), '', 'x', 'y', 'review')",
        "UPDATE decision SET reviewer = 'mallory'",
        "DELETE FROM decision",
        "UPDATE candidate SET messages = '[]'",
        "SELECT * FROM decision_signing_key",
    ]
    for statement in forgeries:
        with pytest.raises(DBAPIError, match=r"own name only|permission denied|append-only"), reviewer.begin() as connection:
            connection.exec_driver_sql(statement)
    reviewer.dispose()
    assert [d.reviewer for d in decisions(owner)] == ["bob"]


def test_a_reviewer_cannot_make_their_own_decision_final(owner: Engine, pg_store_url: str, test_role_prefix: str) -> None:
    # The gate takes an adjudication as final and passes an overlapped candidate once `reviews_needed`
    # reviewers agree: a reviewer must not be able to write either shortcut with plain SQL.
    ann, judge = f"{test_role_prefix}ann", f"{test_role_prefix}judge"
    add_reviewer(owner, ann)
    add_reviewer(owner, judge)
    ids = add(owner, chat(1))
    with owner.begin() as connection:
        connection.execute(text("UPDATE candidate SET reviews_needed = 2 WHERE id = :id"), {"id": ids[0]})
    reviewer = connect_as(pg_store_url, ann)
    for statement in (raw_adjudication(ids[0], ann), f"UPDATE candidate SET reviews_needed = 1 WHERE id = {ids[0]}"):
        # Lowering reviews_needed: no right to the column (and 0007's trigger behind it, for roles granted it before).
        with pytest.raises(DBAPIError, match=r"only an adjudicator|cannot lower|permission denied"), reviewer.begin() as connection:
            connection.exec_driver_sql(statement)
    with pytest.raises(DBAPIError, match="permission denied"), reviewer.begin() as connection:  # raising it too: the owner marks overlap
        connection.exec_driver_sql(f"UPDATE candidate SET reviews_needed = 3 WHERE id = {ids[0]}")
    reviewer.dispose()
    grant_adjudicator(owner, judge)
    adjudicator = connect_as(pg_store_url, judge)
    with pytest.raises(DBAPIError) as raised, adjudicator.begin() as connection:
        connection.exec_driver_sql(raw_adjudication(ids[0], judge))
    assert "only an adjudicator" not in str(raised.value)  # past the guard (the bogus hash fails later checks, or not at all)
    adjudicator.dispose()
    drop_roles(owner, ann, judge)


def test_an_adjudicator_of_one_store_is_none_on_another_store_of_the_same_server(
    owner: Engine, pg_store_url: str, test_role_prefix: str
) -> None:
    judge = f"{test_role_prefix}judge2"
    other_name = f"{make_url(pg_store_url).database}_other"
    admin = create_engine(str(make_url(pg_store_url).set(database="postgres")), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{other_name}"')
    other_url = str(make_url(pg_store_url).set(database=other_name))
    other = open_store(other_url)
    try:
        for store in (owner, other):
            add_reviewer(store, judge)
        grant_adjudicator(owner, judge)  # on the first store only
        assert [r.adjudicator for r in list_reviewers(owner) if r.name == judge] == [True]
        assert [r.adjudicator for r in list_reviewers(other) if r.name == judge] == [False]
        ids = add(other, chat(1))
        with other.begin() as connection:
            connection.execute(text("UPDATE candidate SET reviews_needed = 2 WHERE id = :id"), {"id": ids[0]})
        as_judge = connect_as(other_url, judge)
        with pytest.raises(DBAPIError, match="only an adjudicator"), as_judge.begin() as connection:
            connection.exec_driver_sql(raw_adjudication(ids[0], judge))
        with read_session(as_judge) as session:
            assert not may_adjudicate(session)
        as_judge.dispose()
        as_judge = connect_as(pg_store_url, judge)
        with read_session(as_judge) as session:
            assert may_adjudicate(session)
        as_judge.dispose()
        remove_reviewer(owner, judge)  # off the list with their rights
        with read_session(owner) as session:
            assert session.execute(text("SELECT count(*) FROM adjudicator")).scalar() == 0
    finally:
        other.dispose()
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE "{other_name}" WITH (FORCE)')
            connection.exec_driver_sql(f'DROP OWNED BY "{judge}"')
            connection.exec_driver_sql(f'DROP ROLE "{judge}"')
        admin.dispose()


def test_a_server_connected_as_the_owner_acts_for_a_reviewer_with_set_role(owner: Engine, test_role_prefix: str) -> None:
    ann = f"{test_role_prefix}ann"
    add_reviewer(owner, ann)
    ids = add(owner, chat(1))
    acting = engine_as_role(owner, ann)
    decide(acting, ids[0], "reject", reviewer="owner")
    with acting.connect() as connection:
        assert connection.execute(text("SELECT current_user")).scalar() == ann
    acting.dispose()
    assert [d.reviewer for d in decisions(owner)] == [ann]


def test_removing_a_reviewer_revokes_login_and_keeps_their_decisions(
    owner: Engine, pg_store_url: str, test_role_prefix: str, tmp_path: Path
) -> None:
    ann, cy = f"{test_role_prefix}ann", f"{test_role_prefix}cy"
    add_reviewer(owner, ann)
    add_reviewer(owner, cy)
    ids = add(owner, chat(1), chat(2))
    reviewer = connect_as(pg_store_url, ann)
    decide(reviewer, ids[0], "accept")
    reviewer.dispose()
    remove_reviewer(owner, ann)
    # Roles belong to the server, so other tests' reviewers may be listed too: look at this test's own.
    team = {r.name: (r.can_login, r.decisions) for r in list_reviewers(owner) if r.name in (ann, cy)}
    assert team == {ann: (False, 1), cy: (True, 0)}
    with pytest.raises(WorkFailed, match="not permitted to log in"):
        connect_as(pg_store_url, ann)
    out = tmp_path / "out.jsonl"
    export(owner, out)  # their accepted decision still exports, and verifies
    with read_session(owner) as session:
        report = verify_export(session, data_file=out)
    assert report.ok and report.lines_checked == 1


@pytest.mark.parametrize("command", [["list"], ["add-reviewer", "ann"], ["remove", "ann"]])
def test_team_commands_on_sqlite_exit_2_naming_postgres(
    project_dir: Path, command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["synthgate", "--project", str(project_dir), "team", *command])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    assert "teams need a PostgreSQL store (--db postgresql+psycopg://" in capsys.readouterr().err


def test_a_reviewer_role_reviews_under_its_own_name_and_another_name_is_refused(
    owner: Engine,
    pg_store_url: str,
    test_role_prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from generator.store.team import role_reviewer

    ann = f"{test_role_prefix}ann"
    add_reviewer(owner, ann)
    reviewer = connect_as(pg_store_url, ann)
    with read_session(reviewer) as session:
        assert role_reviewer(session) == ann  # claims carry the name the database gives the decisions
    with read_session(owner) as session:
        assert role_reviewer(session) is None  # the owner names reviewers itself (as on SQLite)
    url = reviewer.url.render_as_string(hide_password=False)
    reviewer.dispose()
    (tmp_path / "synthgate.toml").write_text("")
    monkeypatch.setattr(sys, "argv", ["synthgate", "--project", str(tmp_path), "--db", url, "review", "--reviewer", "someone-else"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    assert f"you are connected as '{ann}'" in capsys.readouterr().err
    drop_roles(owner, ann)


def test_overlap_is_marked_by_the_owner_and_a_reviewer_role_cannot_change_it(
    owner: Engine, pg_store_url: str, test_role_prefix: str
) -> None:
    from generator.store.overlap import mark_overlap, mark_overlap_as_owner

    ann = f"{test_role_prefix}ann"
    add_reviewer(owner, ann)
    add(owner, *[chat(n) for n in range(6)])
    assert mark_overlap_as_owner(owner, share=1.0, reviewers=2) == 6
    reviewer = connect_as(pg_store_url, ann)
    with pytest.raises(DBAPIError) as refused, read_session(reviewer) as session:
        mark_overlap(session, share=1.0, reviewers=5)  # a reviewer's own synthgate.toml must not double the team's work
    assert getattr(refused.value.orig, "sqlstate", None) == "42501"  # insufficient privilege
    reviewer.dispose()
    with read_session(owner) as session:
        assert set(session.exec(select(Candidate.reviews_needed)).all()) == {2}
