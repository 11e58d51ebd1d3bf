"""Builds the review app over a store filled from fixture data: for pilot tests, snapshots and trying it by hand.

Also drives the real `synthgate review` in a pseudo-terminal (`Terminal`), for end-to-end tests and the benchmark.

Run `python -m tests.review_snapshot_app DIR` to create DIR/queue.db and open the app on it.
"""

from __future__ import annotations

import fcntl
import io
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from sqlalchemy import Engine
from textual.app import App
from textual.pilot import Pilot

from generator.config import ReviewSection
from generator.seeds import load_seeds
from generator.store.db import open_store, write_session
from generator.store.intake import NewCandidate, add_candidates, sync_seeds
from generator.store.models import Flag, Run
from generator.store.queue import QueueFilter
from review_tui.app import ReviewApp, make_review_app
from review_tui.screens.review import ReviewScreen

REPO = Path(__file__).resolve().parent.parent
SYSTEM = (
    "You are Ledgerly's support assistant. Answer questions about Ledgerly accurately and concisely, using only "
    "Ledgerly's documented features and policies."
)
RUN_ID = "run-2f9c01"
UNTRUSTED = "[bold]x[/] [link=x]y[/link] [@click=app.quit]z[/] \x1b[31mred\x1b[0m \x1b]52;c;aGk=\x07 done"


def conversation(user: str, assistant: str, *, system: bool = True) -> list[dict[str, str]]:
    turns = [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return ([{"role": "system", "content": SYSTEM}] if system else []) + turns


def fixture_candidates() -> list[NewCandidate]:
    """Five pending candidates, in queue order: flagged and not, tagged differently, one hostile."""
    provenance = {"run_id": RUN_ID, "model": "gpt-4o-mini", "template_hash": "3f2a9c1d5e6b7a80", "seed_ids": ["billing-001", "billing-002"]}
    return [
        NewCandidate(
            source_key="fixture:1",
            messages=conversation(
                "We're a two-person studio. Can both of us send invoices on Solo?",
                "Solo is for one user. For two people, Team fits: $39/month or $372/year, room for 3 users, "
                "team roles and bank sync for up to 10 bank accounts. You can upgrade from Solo at any time; "
                "you pay only the prorated difference for the rest of the billing cycle.",
            ),
            tags=["billing"],
            flags=[Flag(kind="near-duplicate", detail="0.71 similar to seed billing-001")],
            nearest_seed_id="billing-001",
            nearest_seed_similarity=0.71,
            **provenance,
        ),
        NewCandidate(
            source_key="fixture:2",
            messages=conversation(
                "How do I resend an invoice my client says they never got?",
                "Open the invoice, choose Send again, check the client's email address and press Send. "
                "Ledgerly logs every send on the invoice's activity tab.",
            ),
            tags=["invoices"],
            nearest_seed_id="invoices-001",
            nearest_seed_similarity=0.34,
            **provenance,
        ),
        NewCandidate(
            source_key="fixture:3",
            messages=conversation("Can I pay my Ledgerly bill by bank transfer?", "Yes: " + UNTRUSTED),
            tags=["payments", "edge:hostile"],
            flags=[Flag(kind="markup", detail="[red]escape[/red] \x1b[2J in the answer")],
            nearest_seed_id="payments-001",
            nearest_seed_similarity=0.12,
            **provenance,
        ),
        NewCandidate(
            source_key="fixture:4",
            messages=conversation(
                "Does Ledgerly do payroll?",
                "Ledgerly does not run payroll. It handles invoices, payments, expenses and reports; "
                "for payroll, use a payroll provider and record the totals in Ledgerly as expenses.",
            ),
            tags=["invoices", "edge:out-of-scope"],
            **provenance,
        ),
        NewCandidate(
            source_key="fixture:5",
            messages=conversation(
                "Is there a discount for paying yearly?",
                "Yes. Yearly plans cost about 20% less than paying monthly: Solo is $144/year and Team $372/year.",
            ),
            tags=["billing"],
            **provenance,
        ),
    ]


def build_review_store(engine: Engine, candidates: list[NewCandidate] | None = None) -> list[int]:
    """Sync the repository's seeds, record the run, queue the candidates; return their ids in queue order."""
    seeds = load_seeds([REPO / "seeds" / "support.jsonl"]).seeds
    with write_session(engine) as session:
        sync_seeds(session, seeds, root=REPO)
    with write_session(engine) as session:
        session.merge(
            Run(id=RUN_ID, provider="openai", model="gpt-4o-mini", template="prompts/generate.jinja", template_hash="3f2a9c1d5e6b7a80")
        )
    with write_session(engine) as session:
        return add_candidates(session, fixture_candidates() if candidates is None else candidates)


@pytest.fixture
def store(engine: Engine) -> Engine:
    """A store holding the fixture candidates (the review tests' common starting point)."""
    build_review_store(engine)
    return engine


class FakeClock:
    """A monotonic clock that moves only when a test says so: decision seconds and pace are exact."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def add_filtered_candidates(engine: Engine, *, with_broken: bool = True) -> None:
    """Two candidates the checks filtered (an exact duplicate, and a structural defect unless `with_broken` is False)."""
    filtered = [
        NewCandidate(
            source_key="filtered:dup",
            messages=conversation("Can I pay yearly?", "Yes: yearly plans cost about 20% less."),
            tags=["billing"],
            status="filtered",
            filter_reason="exact duplicate",
            filter_match="candidate:5",
        )
    ]
    if with_broken:
        filtered.append(
            NewCandidate(
                source_key="filtered:broken",
                messages=conversation("Broken?", ""),
                status="filtered",
                filter_reason="structural defect",
                filter_match="message 3 (assistant) has empty content",
            )
        )
    with write_session(engine) as session:
        add_candidates(session, filtered)


def make_fixture_app(
    engine: Engine,
    *,
    reviewer: str = "ann",
    config: ReviewSection | None = None,
    filters: QueueFilter | None = None,
    clock: FakeClock | None = None,
) -> ReviewApp:
    """The app as `synthgate review` builds it, with a fake clock and no cursor blink (deterministic screens)."""
    return make_review_app(engine=engine, reviewer=reviewer, config=config, filters=filters, clock=clock or FakeClock(), blink=False)


async def settle(pilot: Pilot[Any]) -> None:
    """Wait until queue work has finished and its result is on screen (no sleeping, no timing)."""
    app = pilot.app
    for _ in range(50):
        await app.workers.wait_for_complete()
        await pilot.pause()
        review = review_screen(app)
        if not any(worker.is_running for worker in app.workers) and (review is None or not review.busy):
            await pilot.pause()
            return
    raise AssertionError("the review app did not settle")


def review_screen(app: App[Any]) -> ReviewScreen | None:
    return next((screen for screen in app.screen_stack if isinstance(screen, ReviewScreen)), None)


def screen_text(app: ReviewApp) -> str:
    """The terminal's text as the reviewer sees it (Textual's own screenshot path, without styles)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, record=True, legacy_windows=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text(styles=False)


class Terminal:
    """`synthgate review` in a pseudo-terminal, as a user runs it."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 140, 0, 0))
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "140", "LINES": "40"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "generator", *args], cwd=cwd, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
        )
        os.close(slave)
        self.output = b""

    def wait_for(self, text: str, timeout: float = 60) -> None:
        """Read the screen stream until `text` appears (a generous deadline; never a fixed sleep)."""
        deadline = time.monotonic() + timeout
        while text.encode() not in self.output:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.process.poll() is not None:
                raise AssertionError(f"{text!r} never appeared; the terminal showed:\n{self.output[-3000:]!r}")
            ready, _, _ = select.select([self.master], [], [], remaining)
            if ready:
                try:
                    self.output += os.read(self.master, 65536)
                except OSError:
                    break

    def press(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        os.close(self.master)


if __name__ == "__main__":
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "review-demo")
    demo_store = open_store(f"sqlite:///{folder.resolve() / 'queue.db'}")
    if not build_review_store(demo_store):
        print("store already filled; reviewing what is left", file=sys.stderr)
    make_review_app(engine=demo_store, reviewer=sys.argv[2] if len(sys.argv) > 2 else "demo").run()
