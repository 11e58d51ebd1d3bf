"""Review latency with 1,000,000 candidates queued: startup, and keypress -> next candidate shown.

Targets: startup under 1.5 s; p95 keypress -> next candidate shown under 50 ms.

Pilot drives the real app through 500 decisions (two accepts, then a reject by reason digit, and
again). Latency runs from the moment the app dispatches the deciding key (`a`, or the reason
digit) to the moment the next candidate is on screen: the decision committed, the next candidate
claimed under a lease, the widgets updated and the screen refreshed (the app's `CandidateShown`,
posted after the refresh). Startup is measured twice: in-process (app created -> first candidate
shown) and as a user sees it, `synthgate review` started in a pseudo-terminal until the first
candidate's text is painted (interpreter, imports, store open included).

The baseline, measured in the same run, is the same procedure on a store of 1,000 candidates: the
ratio shows whether the queue's cost grows with its size (it should not: every statement is an
index seek). The two are measured in interleaved rounds, so both meet the same machine load.
Terminal and in-app startup are the medians over the rounds.

    .venv/bin/python benchmarks/review_latency.py                       # 1,000,000 candidates
    .venv/bin/python benchmarks/review_latency.py --candidates 100000 --decisions 200
    .venv/bin/python benchmarks/review_latency.py --keep /tmp/review-1m.db   # reuse the big store next time
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import Engine, insert

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from textual import events  # noqa: E402

from generator.init_project import init_project  # noqa: E402
from generator.store.db import open_store, read_session, write_session  # noqa: E402
from generator.store.models import Candidate, utcnow  # noqa: E402
from generator.store.queue import queue_counts  # noqa: E402
from review_tui.app import make_review_app  # noqa: E402
from review_tui.messages import CandidateShown  # noqa: E402
from tests.review_snapshot_app import Terminal  # noqa: E402

SYSTEM = "You are Ledgerly's support assistant. Answer accurately and concisely, using only documented features."
TAGS = ["billing", "invoices", "payments", "bank-sync", "reports", "account", "tax", "exports"]
CHUNK = 50_000


def build_store(path: Path, count: int) -> Engine:
    """A store with `count` pending candidates, bulk-inserted (a few reused if it already holds them)."""
    engine = open_store(f"sqlite:///{path}")
    with read_session(engine) as session:
        pending = queue_counts(session)["pending"]
    if pending:  # a kept store from an earlier run
        print(f"  reusing {path}: {pending:,} candidates pending", flush=True)
        return engine
    now = utcnow()
    started = time.perf_counter()
    for start in range(0, count, CHUNK):
        rows = [
            {
                "source_key": f"bench:{i}",
                "content_hash": f"{i:064x}",
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": f"How do I change the due date on invoice INV-{i}?"},
                    {
                        "role": "assistant",
                        "content": f"Open invoice INV-{i}, choose Edit, set the due date and save. Reminders follow the new date.",
                    },
                ],
                "tags": [TAGS[i % len(TAGS)]],
                "seed_ids": [],
                "flags": [{"kind": "length", "detail": "longer than the seeds"}] if i % 10 == 3 else [],
                "status": "pending",
                "review_order": 0,
                "created_at": now,
            }
            for i in range(start, min(count, start + CHUNK))
        ]
        with write_session(engine) as session:
            session.execute(insert(Candidate), rows)
    print(f"  queued {count:,} candidates in {time.perf_counter() - started:.1f} s", flush=True)
    return engine


async def drive(engine: Engine, decisions: int, reviewer: str) -> tuple[float, list[float]]:
    """Start the app, make `decisions` decisions; return startup seconds and per-decision latencies."""
    shown = asyncio.Event()
    marks: dict[str, float] = {}

    def hook(message: object) -> None:
        if isinstance(message, events.Key) and "key" not in marks:
            marks["key"] = time.perf_counter()  # first dispatch of the key (to the app)
        elif isinstance(message, CandidateShown):
            marks["shown"] = time.perf_counter()
            shown.set()

    created = time.perf_counter()
    app = make_review_app(engine=engine, reviewer=reviewer)
    latencies: list[float] = []
    async with app.run_test(size=(140, 40), message_hook=hook) as pilot:
        await shown.wait()
        startup = marks["shown"] - created
        for n in range(decisions):
            if n % 3 == 2:
                await pilot.press("r")  # the dialog opens; the digit is the deciding key
            marks.pop("key", None)
            shown.clear()
            await pilot.press("2" if n % 3 == 2 else "a")
            await shown.wait()
            latencies.append(marks["shown"] - marks["key"])
        await pilot.press("q")
    return startup, latencies


def terminal_startup(engine: Engine, reviewer: str) -> float:
    """Seconds from starting `synthgate review` in a pseudo-terminal to the first candidate painted."""
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder) / "project"
        init_project(project)
        started = time.perf_counter()
        terminal = Terminal(["--db", str(engine.url), "review", "--reviewer", reviewer], cwd=project)
        try:
            terminal.wait_for("choose Edit, set the due date")
            return time.perf_counter() - started
        finally:
            terminal.kill()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class Samples:
    """One store's measurements, gathered over several interleaved rounds."""

    def __init__(self, label: str, engine: Engine) -> None:
        self.label, self.engine = label, engine
        self.terminal: list[float] = []
        self.in_app: list[float] = []
        self.latencies: list[float] = []

    def round(self, number: int, decisions: int) -> None:
        self.terminal.append(terminal_startup(self.engine, reviewer=f"{self.label}-terminal-{number}"))
        startup, latencies = asyncio.run(drive(self.engine, decisions, reviewer=f"{self.label}-pilot-{number}"))
        self.in_app.append(startup)
        self.latencies += latencies

    def figures(self) -> dict[str, float]:
        return {
            "terminal startup s": statistics.median(self.terminal),
            "in-app startup s": statistics.median(self.in_app),
            "p50 ms": statistics.median(self.latencies) * 1000,
            "p95 ms": percentile(self.latencies, 0.95) * 1000,
            "max ms": max(self.latencies) * 1000,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=1_000_000, help="Candidates queued for the measured run.")
    parser.add_argument("--decisions", type=int, default=500, help="Decisions made through the app, per store.")
    parser.add_argument("--rounds", type=int, default=5, help="Interleaved rounds (baseline, measured, baseline, ...).")
    parser.add_argument("--keep", type=Path, help="Store file for the big queue, kept (and reused) between runs.")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        small_count = max(1_000, 2 * args.decisions)
        print(f"baseline store: {small_count:,} candidates", flush=True)
        baseline = Samples("baseline", build_store(Path(folder) / "small.db", small_count))
        print(f"measured store: {args.candidates:,} candidates", flush=True)
        measured = Samples("measured", build_store(args.keep or Path(folder) / "big.db", args.candidates))
        # Interleaved, so both stores meet the same machine: other processes come and go.
        per_round = [args.decisions // args.rounds + (1 if n < args.decisions % args.rounds else 0) for n in range(args.rounds)]
        loads = []
        for number, decisions in enumerate(per_round, start=1):
            for samples in (baseline, measured):
                samples.round(number, decisions)
            loads.append(os.getloadavg()[0])
            print(f"  round {number}/{args.rounds}: {decisions} decisions each, load average {loads[-1]:.2f}", flush=True)
        base, figures = baseline.figures(), measured.figures()

    print()
    print(
        f"{args.decisions} decisions per store in {args.rounds} interleaved rounds; "
        f"load average (1 min) {min(loads):.2f}-{max(loads):.2f} on {os.cpu_count()} CPUs (other processes included)"
    )
    print(f"{'':22}{f'{small_count:,} queued':>14}{f'{args.candidates:,} queued':>20}{'ratio':>8}")
    for name, target in (("terminal startup s", 1.5), ("in-app startup s", None), ("p50 ms", None), ("p95 ms", 50.0), ("max ms", None)):
        ratio = figures[name] / base[name] if base[name] else float("nan")
        verdict = "" if target is None else (f"  ok (target < {target:g})" if figures[name] < target else f"  MISSED (target < {target:g})")
        print(f"{name:<22}{base[name]:>14.3f}{figures[name]:>20.3f}{ratio:>8.2f}{verdict}")


if __name__ == "__main__":
    main()
