"""The review app and the factory that builds it, shared by `synthgate review`, the tests and the benchmark."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Engine
from textual.app import App

from generator.config import ReviewSection
from generator.store.queue import QueueFilter
from review_tui.queue_client import QueueClient
from review_tui.screens.filtered import FilteredScreen
from review_tui.screens.review import ReviewScreen
from review_tui.summary import session_summary


class ReviewApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "synthgate review"
    # The palette would offer commands around the review keys; one way to do each thing is enough.
    ENABLE_COMMAND_PALETTE = False

    def __init__(
        self,
        *,
        client: QueueClient,
        config: ReviewSection,
        clock: Callable[[], float],
        blink: bool,
        browse_filtered: bool = False,
        remember_filters: Callable[[QueueFilter], None] | None = None,
    ) -> None:
        super().__init__()
        self.client = client
        self.config = config
        self.clock = clock
        self.blink = blink
        self.browse_filtered = browse_filtered
        self.remember_filters = remember_filters
        self.review: ReviewScreen | None = None  # kept after exit: the summary reads its tally

    def on_mount(self) -> None:
        if self.browse_filtered:
            self.push_screen(FilteredScreen(client=self.client))
            return
        self.set_keymap(self.config.keys)
        self.review = ReviewScreen(
            client=self.client,
            reasons=self.config.reject_reasons,
            keys=self.config.keys,
            clock=self.clock,
            blink=self.blink,
            remember_filters=self.remember_filters,
        )
        self.push_screen(self.review)

    def summary(self, *, command: str = "synthgate") -> str | None:
        """What to print once the app has closed: this session's decisions and what to run next (None: nothing was reviewed)."""
        if self.review is None:
            return None
        left: int | None = None
        left_in_store: int | None = None
        waiting = 0
        try:
            left = self.client.counts(self.client.filters)["pending"]
            whole = self.client.counts(QueueFilter())
            left_in_store, waiting = whole["pending"], whole.get("waiting", 0)
        except Exception:  # noqa: BLE001 (the summary is informational: without the counts it still reports the session)
            pass
        return session_summary(
            tally=self.review.tally, now=self.clock(), left=left, left_in_store=left_in_store, waiting=waiting, command=command
        )

    async def action_quit(self) -> None:
        """ctrl+q quits like the review screen's quit key: the shown candidate goes back to the pool first."""
        review = next((screen for screen in self.screen_stack if isinstance(screen, ReviewScreen)), None)
        if review is None:
            self.exit()
        else:
            review.action_quit()


def make_review_app(
    *,
    engine: Engine,
    reviewer: str,
    config: ReviewSection | None = None,
    filters: QueueFilter | None = None,
    clock: Callable[[], float] = time.monotonic,
    blink: bool = True,
    client_kind: str = "terminal",
    adjudicate: bool = False,
    browse_filtered: bool = False,
    length_factor: float = 3.0,
    remember_filters: Callable[[QueueFilter], None] | None = None,
) -> ReviewApp:
    """A review app for `reviewer` over the store behind `engine`.

    `clock` (seconds, monotonic) times each decision and the session's pace; tests pass a fake one.
    `blink=False` stops cursors blinking, so screenshots are deterministic.
    `client_kind` is recorded with each decision: "terminal", or "browser" when synthgate serve runs the app.
    `adjudicate`: show disagreements on overlapped candidates with the reviewers' decisions; this reviewer's word is final.
    `browse_filtered`: browse the machine-filtered candidates read-only (a key restores one to the queue).
    `length_factor`: [checks] length_factor, for the flags the editor shows on corrected text.
    `remember_filters`: called with the filters whenever the reviewer changes them (kept for their next session).
    """
    config = config or ReviewSection()
    client = QueueClient(
        engine=engine,
        reviewer=reviewer,
        lease_seconds=config.lease_seconds,
        filters=filters or QueueFilter(),
        client_kind=client_kind,
        canary_rate=0.0 if adjudicate else config.canary_rate,
        adjudicate=adjudicate,
        length_factor=length_factor,
    )
    return ReviewApp(
        client=client, config=config, clock=clock, blink=blink, browse_filtered=browse_filtered, remember_filters=remember_filters
    )
