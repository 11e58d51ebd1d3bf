"""Snapshots of the review app's screens (update only through `make snapshots`, and review the diff)."""

from __future__ import annotations

from sqlalchemy import Engine

from tests.review_snapshot_app import build_review_store, make_fixture_app, settle

SIZE = (120, 36)


def press_after_settling(*keys: str):  # type: ignore[no-untyped-def]
    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await settle(pilot)
        await pilot.press(*keys)
        await settle(pilot)

    return run_before


def test_snapshot_main_screen(snap_compare, store: Engine) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_fixture_app(store), terminal_size=SIZE, run_before=press_after_settling())


def test_snapshot_untrusted_candidate(snap_compare, store: Engine) -> None:  # type: ignore[no-untyped-def]
    """Candidate 3 carries markup and escape sequences: shown as literal, highlighted text."""
    assert snap_compare(make_fixture_app(store), terminal_size=SIZE, run_before=press_after_settling("a", "a"))


def test_snapshot_reject_dialog(snap_compare, store: Engine) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_fixture_app(store), terminal_size=SIZE, run_before=press_after_settling("r"))


def test_snapshot_edit_screen(snap_compare, store: Engine) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_fixture_app(store), terminal_size=SIZE, run_before=press_after_settling("e"))


def test_snapshot_help_screen(snap_compare, store: Engine) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_fixture_app(store), terminal_size=SIZE, run_before=press_after_settling("question_mark"))


def test_snapshot_empty_queue(snap_compare, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    build_review_store(engine, [])
    assert snap_compare(make_fixture_app(engine), terminal_size=SIZE, run_before=press_after_settling())
