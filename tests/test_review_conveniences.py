"""Issue 17's review conveniences, driven with Pilot: header counts under every filter and undo, the saving
state, search, the read-only filtered view, flags on corrected text, the summary on quit, 80x24, remembered filters."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import col, select
from textual.widgets import Input, TextArea

from generator.store.db import read_session, write_session
from generator.store.models import Candidate, Decision
from generator.store.queue import QueueFilter, queue_counts
from review_tui import filter_memory
from review_tui.app import ReviewApp, make_review_app
from review_tui.screens.confirm import ConfirmScreen
from review_tui.screens.edit import EditScreen
from review_tui.screens.filtered import FilteredScreen
from tests.review_snapshot_app import (
    FakeClock,
    add_filtered_candidates,
    build_review_store,
    make_fixture_app,
    review_screen,
    screen_text,
    settle,
)

SIZE = (140, 40)
HEADER = re.compile(r"(\d+) decided · (\d+) left")


def header_counts(app: ReviewApp) -> tuple[int, int]:
    found = HEADER.search(screen_text(app).splitlines()[0])
    assert found, screen_text(app).splitlines()[0]
    return int(found[1]), int(found[2])


def database_counts(engine: Engine, filters: QueueFilter, reviewer: str = "ann") -> tuple[int, int]:
    with read_session(engine) as session:
        counts = queue_counts(session, filters=filters, reviewer=reviewer)
    return counts["accepted"] + counts["rejected"], counts["pending"]


def decision_actions(engine: Engine) -> list[tuple[int, str]]:
    with read_session(engine) as session:
        return [(d.candidate_id, d.action) for d in session.exec(select(Decision).order_by(col(Decision.id)))]


def status(engine: Engine, candidate_id: int) -> str:
    with read_session(engine) as session:
        row = session.get(Candidate, candidate_id)
        assert row is not None
        return row.status


def shown(app: ReviewApp) -> int | None:
    screen = review_screen(app)
    assert screen is not None
    return screen.candidate.id if screen.candidate else None


# --- 7: header counts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "filters",
    [QueueFilter(), QueueFilter(flagged_only=True), QueueFilter(tag="billing"), QueueFilter(tag="invoices", flagged_only=False)],
    ids=["none", "flagged", "tag-billing", "tag-invoices"],
)
async def test_header_counts_equal_the_database_under_each_filter_after_decisions_and_undos(store: Engine, filters: QueueFilter) -> None:
    """The issue's case: decisions made without a filter, then undone under one (an unflagged one under flagged only)."""
    first = make_fixture_app(store)
    async with first.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("a")  # 1: flagged, billing
        await settle(pilot)
        await pilot.press("r", "1")  # 2: unflagged, invoices
        await settle(pilot)
        await pilot.press("q")
    app = make_fixture_app(store, filters=filters)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert header_counts(app) == database_counts(store, filters)
        for keys in (["u"], ["u"], ["a"], ["s"], ["r", "2"], ["u"], ["e", "ctrl+s", "y"], ["u"], ["u"]):
            await pilot.press(*keys)
            await settle(pilot)
            assert header_counts(app) == database_counts(store, filters), keys
    assert [action for _, action in decision_actions(store)].count("undo") >= 4


async def test_an_overlapped_candidate_decided_leaves_this_reviewer_s_count_while_it_waits_for_the_second(store: Engine) -> None:
    with write_session(store) as session:
        first = session.exec(select(Candidate).where(col(Candidate.status) == "pending").order_by(col(Candidate.id))).first()
        assert first is not None
        first.reviews_needed = 2  # overlapped: a second reviewer decides it too
        session.add(first)
    app = make_fixture_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        decided, left = header_counts(app)
        await pilot.press("a")
        await settle(pilot)
        # Still pending (one review of two), but no longer ann's to review: it is not "left" for her.
        assert status(store, first.id) == "pending"  # type: ignore[arg-type]
        assert header_counts(app) == (decided, left - 1) == database_counts(store, QueueFilter())
        summary = app.summary()
        assert summary is not None and "1 candidate(s) wait for another reviewer or the adjudicator" in summary
    # For the second reviewer it is still left.
    assert database_counts(store, QueueFilter(), reviewer="bob") == (decided, left)


async def test_a_count_running_while_a_decision_lands_is_counted_again(store: Engine) -> None:
    app = make_fixture_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = review_screen(app)
        assert screen is not None
        stale_version = screen.progress.version
        await pilot.press("a")
        await settle(pilot)
        # A count taken before the accept arrives after it: thrown away and redone, not shown.
        from review_tui.messages import QueueCounted

        screen.post_message(QueueCounted({"pending": 5, "accepted": 0, "rejected": 0, "filtered": 0}, QueueFilter(), stale_version))
        await settle(pilot)
        assert header_counts(app) == (1, 4) == database_counts(store, QueueFilter())


# --- 9: saving state ----------------------------------------------------------------------------


async def test_keys_pressed_while_saving_are_ignored_visibly(store: Engine) -> None:
    app = make_fixture_app(store)
    release = threading.Event()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        real = app.client.decide_and_claim

        def slow_save(**decision: Any) -> Any:
            release.wait(timeout=30)  # the database is slow: the save is still in flight
            return real(**decision)

        app.client.decide_and_claim = slow_save  # type: ignore[method-assign]
        await pilot.press("a")
        await pilot.pause()
        assert "⧗ saving: accept #1…" in screen_text(app)
        await pilot.press("a", "s", "u")
        await pilot.pause()
        screen = screen_text(app)
        assert "saving: accept #1… keys wait until it is done (that key was not used)" in screen
        release.set()
        await settle(pilot)
        assert shown(app) == 2 and "✓ saved: accepted #1" in screen_text(app)
    assert decision_actions(store) == [(1, "accept")]


# --- 6: search and the filtered view ------------------------------------------------------------


async def test_search_brings_up_only_matching_candidates_then_the_whole_queue_again(store: Engine) -> None:
    app = make_fixture_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"PAYROLL", "enter")  # any case; in candidate 4's user and assistant turns
        await settle(pilot)
        assert shown(app) == 4
        assert "search 'PAYROLL': 1 pending candidate(s) match" in screen_text(app)
        await pilot.press("a")
        await settle(pilot)
        assert shown(app) is None and "No pending candidate left holds the search text 'PAYROLL'" in screen_text(app)
        # Words only in the system prompt match nothing: it is the same in every candidate.
        await pilot.press("slash")
        app.screen.query_one("#search-text", Input).value = "documented features"
        await pilot.press("enter")
        await settle(pilot)
        assert shown(app) is None and "0 pending candidate(s) match" in screen_text(app)
        await pilot.press("slash")
        app.screen.query_one("#search-text", Input).value = ""
        await pilot.press("enter")
        await settle(pilot)
        assert shown(app) == 1 and "search ended" in screen_text(app)
    assert decision_actions(store) == [(4, "accept")]


async def test_a_search_respects_the_filters_and_a_skipped_match_comes_back_after_the_others(store: Engine) -> None:
    app = make_fixture_app(store, filters=QueueFilter(tag="billing"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"team", "enter")  # "Team" is in candidates 1 and 5 (billing) and not 2-4
        await settle(pilot)
        assert shown(app) == 1
        await pilot.press("s")
        await settle(pilot)
        assert shown(app) == 5
        await pilot.press("a")
        await settle(pilot)
        assert shown(app) == 1
    assert decision_actions(store) == [(5, "accept")]


def filtered_store(engine: Engine) -> None:
    build_review_store(engine)
    add_filtered_candidates(engine)


def write(engine: Engine) -> Any:
    from generator.store.db import write_session

    return write_session(engine)


async def test_the_filtered_view_is_read_only_and_restores_one_candidate_as_check_restore_does(engine: Engine) -> None:
    filtered_store(engine)
    app = make_review_app(engine=engine, reviewer="ann", clock=FakeClock(), blink=False, browse_filtered=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, FilteredScreen)
        screen = screen_text(app)
        assert "1 of 2 filtered" in screen and "read-only" in screen
        assert "filtered: exact duplicate" in screen and "matches candidate:5" in screen
        # The review keys decide nothing here (the gate: only pending candidates get decisions).
        await pilot.press("a", "r", "1", "e", "s", "u")
        await settle(pilot)
        assert isinstance(app.screen, FilteredScreen)
        assert "read-only: filtered candidates get no decision here" in screen_text(app)
        assert decision_actions(engine) == []
        assert status(engine, 6) == status(engine, 7) == "filtered"
        await pilot.press("n")
        await settle(pilot)
        assert "2 of 2 filtered" in screen_text(app) and "structural defect" in screen_text(app)
        await pilot.press("R", "y")  # a structural defect is not a trainable conversation: refused
        await settle(pilot)
        assert "not restored: candidates with a structural defect cannot be restored" in screen_text(app)
        await pilot.press("p")
        await settle(pilot)
        await pilot.press("R")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")  # changed their mind: nothing happens
        await settle(pilot)
        assert status(engine, 6) == "filtered"
        await pilot.press("R", "y")
        await settle(pilot)
        assert "restored #6 to the review queue" in screen_text(app) and "1 of 1 filtered" in screen_text(app)
    assert decision_actions(engine) == []
    with read_session(engine) as session:
        restored = session.get(Candidate, 6)
        assert restored is not None
        assert (restored.status, restored.filter_reason) == ("pending", None)
        assert {"kind": "restored", "detail": "exact duplicate: candidate:5"} in restored.flags
    # Back in the queue, it is decided like any pending candidate, by a named reviewer.
    review = make_fixture_app(engine, filters=QueueFilter(tag="billing"))
    async with review.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for _ in range(2):
            await pilot.press("a")
            await settle(pilot)
        assert shown(review) == 6
        assert "restored: exact duplicate: candidate:5" in screen_text(review)


# --- 8: flags on corrected text -----------------------------------------------------------------


async def test_a_correction_that_cuts_the_answer_off_shows_the_flag_and_needs_a_second_save(store: Engine) -> None:
    app = make_fixture_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("e")
        answer = app.screen.query_one("#turn-2", TextArea)
        answer.text = "The funct"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, EditScreen)
        screen = screen_text(app)
        assert "Not saved yet: the checks flag your corrected text" in screen
        assert "truncation: the answer stops mid-sentence: …The funct" in screen
        assert decision_actions(store) == []
        answer.text = "The function"  # changed again: checked again, still cut off
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, EditScreen) and "…The function" in screen_text(app)
        await pilot.press("ctrl+s")  # seen: the reviewer saves it as it is
        await settle(pilot)
        assert shown(app) == 2
    assert decision_actions(store) == [(1, "edit")]


# --- 4: the summary on quit ---------------------------------------------------------------------


async def test_the_summary_counts_this_sessions_decisions_and_says_what_is_left(store: Engine) -> None:
    clock = FakeClock()
    app = make_fixture_app(store, clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for keys in (["a"], ["r", "1"], ["e"]):
            clock.advance(10)
            await pilot.press(*keys)
            await settle(pilot)
        answer = app.screen.query_one("#turn-2", TextArea)
        answer.text = answer.text + " Or pay by card."
        await pilot.press("ctrl+s")
        await settle(pilot)
        clock.advance(10)
        await pilot.press("u")  # the edit is taken back: it no longer counts
        await settle(pilot)
        await pilot.press("q")
    summary = app.summary()
    assert summary is not None
    assert "This session: 2 decided — 1 accepted (0 of them edited), 1 rejected; 20.0 s per decision." in summary
    assert "3 left in the queue: run `synthgate review` to go on." in summary


async def test_the_summary_names_export_and_verify_when_the_queue_is_empty(store: Engine) -> None:
    app = make_fixture_app(store, filters=QueueFilter(tag="invoices"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("e")
        app.screen.query_one("#turn-2", TextArea).text = "Open the invoice and choose Send again."
        await pilot.press("ctrl+s")
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        await pilot.press("q")
    summary = app.summary(command="synthgate --db sqlite:///x.db")
    assert summary is not None
    assert "2 decided — 2 accepted (1 of them edited), 0 rejected" in summary
    assert "Nothing left for your filters; 3 left in the whole queue" in summary
    engine_empty = app.client.engine
    from generator.store.db import write_session

    with write_session(engine_empty) as session:  # the rest decided by someone else
        for candidate_id in (1, 3, 5):
            from generator.store.queue import record_decision

            record_decision(session, candidate_id=candidate_id, reviewer="bob", action="accept")
    summary = app.summary(command="synthgate --db sqlite:///x.db")
    assert summary is not None
    assert "The queue is empty." in summary
    assert (
        "synthgate --db sqlite:///x.db export -o train.jsonl" in summary and "synthgate --db sqlite:///x.db verify train.jsonl" in summary
    )


# --- 13: 80x24 and remembered filters ------------------------------------------------------------


@pytest.mark.parametrize("size", [(80, 24), (120, 36)])
async def test_the_reject_reasons_line_up_in_as_many_columns_as_fit(store: Engine, size: tuple[int, int]) -> None:
    app = make_fixture_app(store)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await pilot.press("r")
        await settle(pilot)
        rows = [line for line in screen_text(app).splitlines() if re.search(r" [1-9]  [a-z]", line)]
        # Every reason on a row of its own cells (a row too wide for the panel used to wrap out of line).
        starts = {re.search(r" [1-9]  [a-z]", row).start() for row in rows}  # type: ignore[union-attr]
        assert len(starts) == 1, rows
        assert sum(len(re.findall(r" [1-9]  [a-z]", row)) for row in rows) == len(app.config.reject_reasons)


@pytest.mark.parametrize("filters", [QueueFilter(), QueueFilter(flagged_only=True)], ids=["none", "flagged"])
async def test_at_80x24_the_header_shows_the_counts_and_the_filter(store: Engine, filters: QueueFilter) -> None:
    app = make_fixture_app(store, filters=filters)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        header = screen_text(app).splitlines()[0]
        assert header_counts(app) == database_counts(store, filters)
        assert "ann" in header and "you 1 · " in header
        if filters.flagged_only:
            assert "flagged only" in header
        assert "a Accept" in screen_text(app).splitlines()[-1]  # the footer's first keys still show


async def test_filters_chosen_in_the_app_are_remembered_per_reviewer_and_store(store: Engine) -> None:
    key = filter_memory.store_key(store)
    app = make_review_app(
        engine=store,
        reviewer="ann",
        clock=FakeClock(),
        blink=False,
        remember_filters=lambda chosen: filter_memory.remember(store=key, reviewer="ann", filters=chosen),
    )
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("f", *"billing", "tab", "tab", "space", "enter")
        await settle(pilot)
    assert filter_memory.recall(store=key, reviewer="ann") == QueueFilter(tag="billing", flagged_only=True)
    assert filter_memory.recall(store=key, reviewer="bob") is None
    assert filter_memory.recall(store="another-store", reviewer="ann") is None


def test_a_broken_memory_file_is_ignored(tmp_path: Path) -> None:
    filter_memory.memory_file().parent.mkdir(parents=True, exist_ok=True)
    filter_memory.memory_file().write_text("{not json")
    assert filter_memory.recall(store="s", reviewer="ann") is None
    filter_memory.remember(store="s", reviewer="ann", filters=QueueFilter(flagged_only=True))
    assert filter_memory.recall(store="s", reviewer="ann") == QueueFilter(flagged_only=True)
