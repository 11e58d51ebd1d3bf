"""The review app driven key by key with Pilot; every test checks what the database holds afterwards."""

from __future__ import annotations

import re
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlmodel import col, select
from textual.widgets import Input, TextArea

from generator.config import ReviewSection
from generator.store.audit import verify_chain
from generator.store.db import open_store, read_session, write_session
from generator.store.intake import NewCandidate, add_candidates
from generator.store.models import Decision, utcnow
from generator.store.queue import QueueFilter, get_candidate, record_decision
from review_tui.app import ReviewApp
from review_tui.messages import CandidateShown, QueueCounted
from review_tui.screens.confirm import ConfirmScreen
from review_tui.screens.edit import EditScreen
from review_tui.screens.review import ReviewScreen
from tests.review_snapshot_app import (
    UNTRUSTED,
    FakeClock,
    build_review_store,
    conversation,
    fixture_candidates,
    make_fixture_app,
    review_screen,
    screen_text,
    settle,
)

SIZE = (140, 40)


def database_file(engine: Engine) -> str:
    assert engine.url.database is not None
    return engine.url.database


def decisions(engine: Engine) -> list[tuple]:
    """Read through a fresh raw connection: only committed decisions are visible to it."""
    connection = sqlite3.connect(database_file(engine))
    try:
        return connection.execute(
            "SELECT candidate_id, reviewer, action, reasons, note, COALESCE(edited_messages, 'null') != 'null', seconds FROM decision ORDER BY id"
        ).fetchall()
    finally:
        connection.close()


def decision_rows(engine: Engine, candidate_id: int) -> list[Decision]:
    with read_session(engine) as session:
        return list(session.exec(select(Decision).where(Decision.candidate_id == candidate_id).order_by(col(Decision.id))))


def status_of(engine: Engine, candidate_id: int) -> tuple[Any, ...]:
    connection = sqlite3.connect(database_file(engine))
    try:
        row: tuple[Any, ...] = connection.execute("SELECT status, lease_owner FROM candidate WHERE id = ?", (candidate_id,)).fetchone()
        return row
    finally:
        connection.close()


def review(app: ReviewApp) -> ReviewScreen:
    """The review screen, which every test here expects to be on the stack."""
    screen = review_screen(app)
    assert screen is not None, "no review screen"
    return screen


def rejecting(app: ReviewApp) -> bool:
    return review(app).rejecting and review(app).query_one("#reject-panel").display


def shown(app: ReviewApp) -> int | None:
    candidate = review(app).candidate
    return candidate.id if candidate else None


async def test_accept_is_committed_with_its_seconds_before_the_next_candidate_is_shown(store: Engine) -> None:
    clock = FakeClock()
    app = make_fixture_app(store, clock=clock)
    committed_when_shown: dict[int | None, list[tuple]] = {}

    def hook(message: object) -> None:
        if isinstance(message, CandidateShown):
            committed_when_shown[message.candidate_id] = decisions(store)

    async with app.run_test(size=SIZE, message_hook=hook) as pilot:
        await settle(pilot)
        assert shown(app) == 1
        clock.advance(12.5)
        await pilot.press("a")
        await settle(pilot)
        assert shown(app) == 2
    assert decisions(store) == [(1, "ann", "accept", "[]", None, 0, 12.5)]
    # The moment candidate 2 appeared, the accept of candidate 1 was already durable.
    assert committed_when_shown[2] == [(1, "ann", "accept", "[]", None, 0, 12.5)]
    assert status_of(store, 1) == ("accepted", None)


async def test_reject_with_a_digit_records_that_reason_at_once(store: Engine) -> None:
    app = make_fixture_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("r")
        assert rejecting(app) and "Reject candidate #1: why?" in screen_text(app)
        await pilot.press("3")
        await settle(pilot)
        assert shown(app) == 2
        assert "rejected #1 (unhelpful)" in screen_text(app)
    assert decisions(store)[0][:5] == (1, "ann", "reject", '["unhelpful"]', None)
    assert status_of(store, 1)[0] == "rejected"


async def test_reject_with_a_note_written_first(store: Engine) -> None:
    app = make_fixture_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("r", "n", *"Team is $39, not $29 (1 user)", "enter")
        assert rejecting(app)  # enter only ends the note (its digits stayed text); the digit decides
        await pilot.press("1")
        await settle(pilot)
    assert decisions(store)[0][:5] == (1, "ann", "reject", '["factually wrong"]', "Team is $39, not $29 (1 user)")


async def test_escape_closes_the_reject_reasons_and_other_keys_wait_for_a_reason(store: Engine) -> None:
    app = make_fixture_app(store, config=ReviewSection(reject_reasons=["wrong", "off-policy"]))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("r", "5", "a", "s", "u")  # no 5th reason; no accept, skip or undo meanwhile
        await settle(pilot)
        assert rejecting(app) and shown(app) == 1
        await pilot.press("escape")
        await settle(pilot)
        assert not rejecting(app) and shown(app) == 1
        await pilot.press("1")  # the panel is closed: a digit alone decides nothing
        await settle(pilot)
    assert decisions(store) == []
    assert status_of(store, 1) == ("pending", "ann")


async def test_a_valid_edit_is_recorded_as_an_edit_keeping_both_versions(store: Engine) -> None:
    app = make_fixture_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("e")
        assert isinstance(app.screen, EditScreen)
        assert app.focused is not None and app.focused.id == "turn-2"  # the assistant's answer
        answer = app.screen.query_one("#turn-2", TextArea)
        answer.move_cursor(answer.document.end)
        await pilot.press(*" Both of you can.", "ctrl+s")
        await settle(pilot)
        assert shown(app) == 2
    (row,) = decisions(store)
    assert row[:3] == (1, "ann", "edit") and row[5] == 1
    (edit,) = decision_rows(store, 1)
    with read_session(store) as session:
        original = get_candidate(session, candidate_id=1)
    assert edit.edited_messages is not None
    assert edit.edited_messages[-1]["content"].endswith("billing cycle. Both of you can.")
    assert original.messages[-1].content.endswith("billing cycle.")  # the model's version is kept too
    assert [m["role"] for m in edit.edited_messages] == ["system", "user", "assistant"]


async def test_an_invalid_edit_shows_the_error_inline_and_saves_nothing(store: Engine) -> None:
    app = make_fixture_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("e")
        app.screen.query_one("#turn-2", TextArea).clear()
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, EditScreen)
        assert "Not saved: message 3 (assistant) has empty content" in screen_text(app)
        assert decisions(store) == []
        await pilot.press("escape")  # changes were made: confirm discarding them
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(pilot)
        assert shown(app) == 1
    assert decisions(store) == []


async def test_an_unchanged_edit_accepts_only_after_the_reviewer_confirms(store: Engine) -> None:
    app = make_fixture_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("e", "ctrl+s")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert isinstance(app.screen, EditScreen)
        assert decisions(store) == []
        await pilot.press("ctrl+s", "y")
        await settle(pilot)
        assert shown(app) == 2
    assert [row[:3] for row in decisions(store)] == [(1, "ann", "accept")]


async def test_skip_sends_the_candidate_to_the_back_and_it_comes_back_last(store: Engine) -> None:
    app = make_fixture_app(store)
    seen = []
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("s")
        await settle(pilot)
        for _ in range(5):
            seen.append(shown(app))
            await pilot.press("a")
            await settle(pilot)
        assert shown(app) is None
        assert "Nothing left to review." in screen_text(app)
    assert seen == [2, 3, 4, 5, 1]
    assert decisions(store)[-1][:3] == (1, "ann", "accept")


async def test_undo_several_times_brings_each_candidate_back_newest_first(store: Engine) -> None:
    app = make_fixture_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        await pilot.press("r", "2")
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        back = []
        for _ in range(3):
            await pilot.press("u")
            await settle(pilot)
            back.append(shown(app))
        assert back == [3, 2, 1]
        await pilot.press("u")  # nothing left to undo: said so, nothing recorded
        await settle(pilot)
        assert shown(app) == 1
        header = screen_text(app).splitlines()[0]
        assert "0 decided · 5 left" in header and "session 0" in header
    assert [row[2] for row in decisions(store)] == ["accept", "reject", "accept", "undo", "undo", "undo"]
    assert [status_of(store, i)[0] for i in (1, 2, 3)] == ["pending"] * 3
    with read_session(store) as session:
        assert list(verify_chain(session)) == []


async def test_quit_gives_the_candidate_back_and_a_new_session_resumes_where_it_stopped(store: Engine) -> None:
    app = make_fixture_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0
    assert status_of(store, 2) == ("pending", None)  # released, not left leased for 15 minutes
    again = make_fixture_app(store)
    async with again.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert shown(again) == 2
    assert [row[:3] for row in decisions(store)] == [(1, "ann", "accept")]


async def test_after_a_crash_the_same_reviewer_gets_their_leased_candidate_back(store: Engine) -> None:
    first = make_fixture_app(store)
    async with first.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("s")
        await settle(pilot)
    # No quit: the lease on candidate 2 is still held, as after a kill -9.
    assert status_of(store, 2) == ("pending", "ann")
    other = make_fixture_app(store, reviewer="bob")
    again = make_fixture_app(store)
    async with other.run_test(size=SIZE) as other_pilot, again.run_test(size=SIZE) as pilot:
        await settle(other_pilot)
        await settle(pilot)
        assert shown(again) == 2
        assert shown(other) == 3


async def test_the_lease_is_renewed_while_shown_and_a_lost_lease_moves_on(store: Engine) -> None:
    app = make_fixture_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        soon = utcnow() + timedelta(seconds=5)
        with write_session(store) as session:
            session.execute(text("UPDATE candidate SET lease_expires_at = :t WHERE id = 1"), {"t": soon})
        review(app).renew_lease()
        await settle(pilot)
        with read_session(store) as session:
            renewed = session.execute(text("SELECT lease_expires_at FROM candidate WHERE id = 1")).scalar_one()
        assert renewed > soon.replace(tzinfo=None).isoformat(sep=" ")
        # Someone else took it after the lease ran out: the screen moves on, nothing is recorded.
        with write_session(store) as session:
            session.execute(text("UPDATE candidate SET lease_owner = 'bob' WHERE id = 1"))
        review(app).renew_lease()
        await settle(pilot)
        assert shown(app) == 2
    assert decisions(store) == []


async def test_a_candidate_decided_by_someone_else_meanwhile_is_not_decided_twice(store: Engine) -> None:
    app = make_fixture_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        with write_session(store) as session:
            session.execute(text("UPDATE candidate SET lease_expires_at = '2000-01-01 00:00:00.000000' WHERE id = 1"))
        with write_session(store) as session:
            record_decision(session, candidate_id=1, reviewer="bob", action="reject", reasons=["duplicate"])
        await pilot.press("a")
        await settle(pilot)
        assert shown(app) == 2
    assert [row[:3] for row in decisions(store)] == [(1, "bob", "reject")]


async def test_keys_do_nothing_while_a_queue_call_is_in_flight(store: Engine) -> None:
    app = make_fixture_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        review(app).busy = True  # as between a keypress and the next candidate appearing
        await pilot.press("a", "s", "r", "u")
        await app.workers.wait_for_complete()  # a call a key wrongly started has finished by now
        assert decisions(store) == []
        assert status_of(store, 1) == ("pending", "ann")  # neither decided nor skipped away
        assert app.screen is review_screen(app) and not rejecting(app)


async def test_untrusted_text_is_shown_literally_and_never_reaches_the_terminal_raw(engine: Engine) -> None:
    hostile = NewCandidate(source_key="hostile", messages=conversation("[b]q[/b]", UNTRUSTED), tags=["x"], model="[red]m[/red]")
    build_review_store(engine, [hostile])
    app = make_fixture_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = screen_text(app)
        for literal in ("[bold]x[/]", "[link=x]y[/link]", "[@click=app.quit]z[/]", "[b]q[/b]", "[red]m[/red]"):
            assert literal in screen
        assert "\\x1b[31mred\\x1b[0m" in screen and "\\x1b]52;c;aGk=\\x07" in screen
        assert "\x1b" not in screen and "\x07" not in screen
        await pilot.click("#transcript", offset=(10, 13))  # on the would-be @click link
        await pilot.press("e")
        editor = screen_text(app)
        assert "␛[31mred␛[0m" in editor and "\x1b" not in editor
        await pilot.press("escape")
        await settle(pilot)
        assert app.is_running


async def test_two_apps_on_one_database_never_hold_the_same_candidate(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    ann_engine, bob_engine = open_store(url), open_store(url)
    build_review_store(ann_engine)
    ann, bob = make_fixture_app(ann_engine, reviewer="ann"), make_fixture_app(bob_engine, reviewer="bob")
    seen_together = []
    async with ann.run_test(size=SIZE) as ann_pilot, bob.run_test(size=SIZE) as bob_pilot:
        await settle(ann_pilot)
        await settle(bob_pilot)
        for _ in range(2):
            seen_together.append((shown(ann), shown(bob)))
            await ann_pilot.press("a")
            await bob_pilot.press("a")
            await settle(ann_pilot)
            await settle(bob_pilot)
        seen_together.append((shown(ann), shown(bob)))
    for ann_id, bob_id in seen_together:
        assert ann_id != bob_id
    decided = [(row[0], row[1]) for row in decisions(ann_engine)]
    assert len(decided) == 4 and len({cid for cid, _ in decided}) == 4


async def test_an_empty_queue_says_what_to_do_and_picks_up_new_candidates(engine: Engine) -> None:
    build_review_store(engine, [])
    app = make_fixture_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = screen_text(app)
        assert "Nothing left to review." in screen and "synthgate generate" in screen and "synthgate export" in screen
        await pilot.press("a")  # no candidate: nothing to accept
        with write_session(engine) as session:
            add_candidates(session, fixture_candidates()[:1])
        review(app).poll_empty_queue()  # the 10-second timer's job
        await settle(pilot)
        assert shown(app) == 1
    assert decisions(engine) == []


async def test_filters_from_the_command_line_and_changed_inside_the_app(store: Engine) -> None:
    app = make_fixture_app(store, filters=QueueFilter(tag="invoices"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert shown(app) == 2
        assert "filter: tag invoices" in screen_text(app).splitlines()[0]
        await pilot.press("f")
        tag = app.screen.query_one("#filter-tag", Input)
        tag.value = ""
        await pilot.press("tab", "tab", "space", "ctrl+s")  # flagged only, any tag
        await settle(pilot)
        assert shown(app) == 1
        assert status_of(store, 2) == ("pending", None)  # what no longer matches is given back
        await pilot.press("a")
        await settle(pilot)
        assert shown(app) == 3
    assert [row[0] for row in decisions(store)] == [1]


async def test_enter_applies_the_filters_even_with_the_checkbox_focused(store: Engine) -> None:
    """Found by hand in tmux: enter on the checkbox toggled it back instead of applying."""
    app = make_fixture_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("f", "tab", "tab", "space", "enter")
        await settle(pilot)
        assert review_screen(app) is app.screen  # the dialog closed
        assert "filter: flagged only" in screen_text(app).splitlines()[0]


async def test_keys_are_remapped_from_the_config(store: Engine) -> None:
    app = make_fixture_app(store, config=ReviewSection(keys={"accept": "y", "reject": "x"}))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        assert decisions(store) == []
        await pilot.press("y")
        await settle(pilot)
        assert "y Accept" in screen_text(app).splitlines()[-1]
    assert [row[:3] for row in decisions(store)] == [(1, "ann", "accept")]


async def test_help_lists_the_keys_as_mapped(store: Engine) -> None:
    app = make_fixture_app(store, config=ReviewSection(keys={"skip": "k"}))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        screen = screen_text(app)
        assert "Only what you accept" in screen
        assert re.search(r"\bk +Decide later", screen)
        await pilot.press("escape")
        assert app.screen is review_screen(app)


async def test_editing_keeps_untouched_turns_exactly_and_saves_changed_turns_as_shown(engine: Engine) -> None:
    build_review_store(engine, [NewCandidate(source_key="c", messages=conversation("q\x1b[2J?", "bad \x1b[31manswer"))])
    app = make_fixture_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("e")
        answer = app.screen.query_one("#turn-2", TextArea)
        assert answer.text == "bad ␛[31manswer"
        answer.move_cursor(answer.document.end)
        await pilot.press("!", "ctrl+s")
        await settle(pilot)
    (edit,) = decision_rows(engine, 1)
    assert edit.edited_messages is not None
    assert edit.edited_messages[1]["content"] == "q\x1b[2J?"  # untouched: byte for byte
    assert edit.edited_messages[2]["content"] == "bad ␛[31manswer!"  # changed: what the reviewer saw and saved


async def test_a_count_made_for_earlier_filters_never_reaches_the_header(store: Engine) -> None:
    app = make_fixture_app(store, filters=QueueFilter(tag="billing"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "0 decided · 2 left" in screen_text(app).splitlines()[0]
        stale = {"pending": 99, "accepted": 0, "rejected": 0, "filtered": 0}
        review(app).post_message(QueueCounted(stale, QueueFilter()))  # e.g. from before a filter change
        await settle(pilot)
        header = screen_text(app).splitlines()[0]
        assert "99 left" not in header and "0 decided · 2 left" in header
