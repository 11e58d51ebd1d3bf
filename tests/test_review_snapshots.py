"""Snapshots of the review app's screens (update only through `make snapshots`, and review the diff)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import Engine
from textual.pilot import Pilot

from tests.review_snapshot_app import build_review_store, make_fixture_app, settle

SIZE = (120, 36)


# pytest-textual-snapshot's fixture: compare(app, terminal_size=..., run_before=...) -> bool
SnapCompare = Callable[..., bool]


def press_after_settling(*keys: str) -> Callable[[Pilot[Any]], Awaitable[None]]:
    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press(*keys)
        await settle(pilot)

    return run_before


def test_snapshot_main_screen(snap_compare: SnapCompare, store: Engine) -> None:
    assert snap_compare(make_fixture_app(store), terminal_size=SIZE, run_before=press_after_settling())


def test_snapshot_untrusted_candidate(snap_compare: SnapCompare, store: Engine) -> None:
    """Candidate 3 carries markup and escape sequences: shown as literal, highlighted text."""
    assert snap_compare(make_fixture_app(store), terminal_size=SIZE, run_before=press_after_settling("a", "a"))


def test_snapshot_reject_dialog(snap_compare: SnapCompare, store: Engine) -> None:
    assert snap_compare(make_fixture_app(store), terminal_size=SIZE, run_before=press_after_settling("r"))


def test_snapshot_edit_screen(snap_compare: SnapCompare, store: Engine) -> None:
    assert snap_compare(make_fixture_app(store), terminal_size=SIZE, run_before=press_after_settling("e"))


def test_snapshot_help_screen(snap_compare: SnapCompare, store: Engine) -> None:
    assert snap_compare(make_fixture_app(store), terminal_size=SIZE, run_before=press_after_settling("question_mark"))


def test_snapshot_empty_queue(snap_compare: SnapCompare, engine: Engine) -> None:
    build_review_store(engine, [])
    assert snap_compare(make_fixture_app(engine), terminal_size=SIZE, run_before=press_after_settling())


def test_snapshot_main_screen_at_80x24(snap_compare: SnapCompare, store: Engine) -> None:
    """The smallest common terminal: the header drops words, never the counts."""
    assert snap_compare(make_fixture_app(store), terminal_size=(80, 24), run_before=press_after_settling())


def test_snapshot_filtered_view(snap_compare: SnapCompare, engine: Engine) -> None:
    """review --filtered: read-only, with the reason each candidate was filtered."""
    from review_tui.app import make_review_app
    from tests.review_snapshot_app import FakeClock, add_filtered_candidates

    build_review_store(engine)
    add_filtered_candidates(engine, with_broken=False)
    app = make_review_app(engine=engine, reviewer="ann", clock=FakeClock(), blink=False, browse_filtered=True)
    assert snap_compare(app, terminal_size=SIZE, run_before=press_after_settling())
