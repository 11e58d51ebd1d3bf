"""`synthgate review --adjudicate`: the disagreement shown with both reviewers' decisions side by side; the adjudicator's key settles it."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlmodel import col, select

from generator.export.selection import iter_accepted
from generator.store.adjudication import grant_adjudicator, may_adjudicate
from generator.store.db import read_session, write_session
from generator.store.intake import NewCandidate
from generator.store.models import Decision
from generator.store.overlap import mark_overlap
from generator.store.queue import get_candidate, record_decision
from review_tui.app import make_review_app
from tests.review_snapshot_app import FakeClock, build_review_store, conversation, screen_text, settle

pytestmark = pytest.mark.both_stores  # every store test here runs on SQLite and on PostgreSQL

SIZE = (140, 40)


def _disagreement(engine: Engine) -> int:
    (candidate_id,) = build_review_store(
        engine, [NewCandidate(source_key="c1", messages=conversation("How do I export invoices?", "Settings → Export [bold]now[/bold]."))]
    )
    with write_session(engine) as session:
        mark_overlap(session, share=1.0, reviewers=2)
        record_decision(session, candidate_id=candidate_id, reviewer="ann", action="accept", seconds=9.0)
        record_decision(
            session,
            candidate_id=candidate_id,
            reviewer="bob",
            action="reject",
            reasons=["factually wrong"],
            note="it is under Reports",
            seconds=14.0,
        )
    return candidate_id


async def test_the_adjudicator_sees_both_decisions_and_settles_the_candidate(engine: Engine) -> None:
    candidate_id = _disagreement(engine)
    with read_session(engine) as session:
        assert list(iter_accepted(session)) == []  # disagreement: nothing exported yet
    app = make_review_app(engine=engine, reviewer="cat", clock=FakeClock(), blink=False, adjudicate=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        text = screen_text(app)
        assert "Reviews (they disagree" in text
        for shown in ("ann", "✓ accepted", "bob", "✗ rejected", "factually wrong", "[bold]now[/bold]"):
            assert shown in text
        assert "note:" in text and "Reports" in text  # the note, wrapped in its column
        await pilot.press("r", "1")  # cat agrees with bob
        await settle(pilot)
        assert app.screen.candidate is None  # type: ignore[attr-defined]  # no disagreement left
    with read_session(engine) as session:
        assert get_candidate(session, candidate_id=candidate_id).status == "rejected"
        last = session.exec(select(Decision).order_by(col(Decision.id).desc())).first()
        assert last is not None and (last.reviewer, last.kind, last.action) == ("cat", "adjudication", "reject")
        assert list(iter_accepted(session)) == []


async def test_an_adjudicator_acceptance_exports_the_candidate(engine: Engine) -> None:
    candidate_id = _disagreement(engine)
    app = make_review_app(engine=engine, reviewer="cat", clock=FakeClock(), blink=False, adjudicate=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
    with read_session(engine) as session:
        assert [(row.candidate_id, row.reviewer) for row in iter_accepted(session)] == [(candidate_id, "cat")]


def test_who_may_adjudicate(engine: Engine, request: pytest.FixtureRequest) -> None:
    """SQLite: the self-declared reviewer. PostgreSQL: a reviewer role only once `team grant-adjudicator` made it one."""
    if engine.dialect.name != "postgresql":
        with read_session(engine) as session:
            assert may_adjudicate(session)
        return
    name = request.getfixturevalue("test_role_prefix") + "adjudicator"  # dropped with the session's database
    with engine.begin() as connection:
        connection.execute(text(f"CREATE ROLE {name} LOGIN"))
    as_reviewer = create_engine(engine.url.set(username=name))
    try:
        with read_session(as_reviewer) as session:
            assert not may_adjudicate(session)
        grant_adjudicator(engine, name)
        with read_session(as_reviewer) as session:
            assert may_adjudicate(session)
    finally:
        as_reviewer.dispose()
        with engine.begin() as connection:
            connection.execute(text(f"DROP ROLE {name}"))


@pytest.mark.parametrize("reviewer", ["ann", "bob"])
async def test_a_reviewer_of_the_candidate_gets_no_adjudication_queue(engine: Engine, reviewer: str) -> None:
    _disagreement(engine)
    app = make_review_app(engine=engine, reviewer=reviewer, clock=FakeClock(), blink=False, adjudicate=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.screen.candidate is None  # type: ignore[attr-defined]


async def test_the_header_counts_the_adjudication_queue_after_every_decision_and_undo(engine: Engine) -> None:
    ids = build_review_store(
        engine, [NewCandidate(source_key=f"c{n}", messages=conversation(f"Question {n}?", f"Answer {n}.")) for n in range(3)]
    )
    with write_session(engine) as session:
        mark_overlap(session, share=1.0, reviewers=2)
        for candidate_id in ids[:2]:  # two disagreements; the third candidate the reviewers agree on
            record_decision(session, candidate_id=candidate_id, reviewer="ann", action="accept")
            record_decision(session, candidate_id=candidate_id, reviewer="bob", action="reject", reasons=["factually wrong"])
        record_decision(session, candidate_id=ids[2], reviewer="ann", action="accept")
        record_decision(session, candidate_id=ids[2], reviewer="bob", action="accept")
    app = make_review_app(engine=engine, reviewer="cat", clock=FakeClock(), blink=False, adjudicate=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "0 settled · 2 left" in screen_text(app)
        await pilot.press("a")
        await settle(pilot)
        assert "1 settled · 1 left" in screen_text(app)
        await pilot.press("u")
        await settle(pilot)
        assert "0 settled · 2 left" in screen_text(app)
        # The undone disagreement is shown again with both reviews beside it (it showed "no reviews").
        assert "no reviews" not in screen_text(app) and "ann" in screen_text(app) and "bob" in screen_text(app)
        await pilot.press("r", "1")
        await settle(pilot)
        assert "1 settled · 1 left" in screen_text(app)
