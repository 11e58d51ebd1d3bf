"""The review app and the factory that builds it, shared by `synthgate review`, the tests and the benchmark."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Engine
from textual.app import App

from generator.config import ReviewSection
from generator.store.queue import QueueFilter
from review_tui.queue_client import QueueClient
from review_tui.screens.review import ReviewScreen


class ReviewApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "synthgate review"
    # The palette would offer commands around the review keys; one way to do each thing is enough.
    ENABLE_COMMAND_PALETTE = False

    def __init__(self, *, client: QueueClient, config: ReviewSection, clock: Callable[[], float], blink: bool) -> None:
        super().__init__()
        self.client = client
        self.config = config
        self.clock = clock
        self.blink = blink

    def on_mount(self) -> None:
        self.set_keymap(self.config.keys)
        self.push_screen(
            ReviewScreen(client=self.client, reasons=self.config.reject_reasons, keys=self.config.keys, clock=self.clock, blink=self.blink)
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
) -> ReviewApp:
    """A review app for `reviewer` over the store behind `engine`.

    `clock` (seconds, monotonic) times each decision and the session's pace; tests pass a fake one.
    `blink=False` stops cursors blinking, so screenshots are deterministic.
    `client_kind` is recorded with each decision: "terminal", or "browser" when synthgate serve runs the app.
    `adjudicate`: show disagreements on overlapped candidates with the reviewers' decisions; this reviewer's word is final.
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
    )
    return ReviewApp(client=client, config=config, clock=clock, blink=blink)
