"""Team review at scale: reviewer processes deciding as fast as they can on one store through the app's queue API.

Targets (PostgreSQL, 8 reviewers, 100,000 queued candidates): claim-to-next p95 under 30 ms,
0 double claims, 0 lost decisions. The same on SQLite with 4 reviewers, for comparison.

Each reviewer is a process started with `spawn` (as on macOS and Windows), holding its own
`QueueClient` — the object the review app calls — and loops as the app does: decide the shown
candidate (accept, or every fifth a reject with a reason) and claim the next (`decide_and_claim`).
"Claim-to-next" is one loop: from the decision key until the next candidate is reserved and
loaded, the database part of what the reviewer waits for. `[review] overlap = 0.1` is on, so a tenth of the candidates
go to two reviewers (the claim query carries the overlap clause).

Counted afterwards from the store and from what the processes saw:
- double claims: a candidate held by two reviewers at once, i.e. a decision refused because
  someone else held or had decided it, a reviewer shown one candidate twice, or a candidate
  that needs one review decided by two reviewers;
- lost decisions: decisions a reviewer saw committed that the store does not hold, and the
  decision chain re-proved end to end (`verify_chain`).

On PostgreSQL each reviewer process connects as its own reviewer role (`team add-reviewer`), as a
team runs: the database names and signs its decisions (`--as-owner`: every process connects as the
owner under a typed name, as this benchmark did before).

Each run creates its own database (PostgreSQL: a fresh database, dropped at the end; SQLite: a
temporary file) and its own signing-key folder.

    .venv/bin/python benchmarks/team_review.py                          # both backends
    .venv/bin/python benchmarks/team_review.py --backend postgresql --decisions 500
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import make_url
from sqlmodel import col, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from generator.store.audit import verify_chain  # noqa: E402
from generator.store.db import open_store, read_session, write_session  # noqa: E402
from generator.store.models import Candidate, Decision, Run, SeedRecord, utcnow  # noqa: E402
from generator.store.overlap import mark_overlap  # noqa: E402
from generator.store.signing import load_key, store_identity  # noqa: E402

PG_ADMIN = "postgresql+psycopg://root@127.0.0.1:5432/postgres"
CHUNK = 20_000


SEEDS = 500


def build_store(url: str, count: int, overlap: float) -> int:
    """Queue `count` pending candidates (distinct content hashes, as generation makes them); returns how many overlap.

    Each comes from a run and has a nearest seed, as generated ones do: showing it reads both.
    """
    engine = open_store(url)
    now = utcnow()
    started = time.perf_counter()
    with write_session(engine) as session:
        session.add(Run(id="bench-run", provider="openai", model="bench-model", template="Answer: {{ seed }}", template_hash="t" * 64))
        session.execute(
            insert(SeedRecord),
            [
                {
                    "id": f"seed-{n}",
                    "content_hash": hashlib.sha256(f"seed:{n}".encode()).hexdigest(),
                    "messages": [
                        {"role": "user", "content": f"How do I archive project {n}?"},
                        {"role": "assistant", "content": f"Open project {n}, choose Settings, then Archive."},
                    ],
                    "tags": [f"topic-{n % 8}"],
                    "source": "seeds/bench.jsonl",
                    "line": n + 1,
                    "synced_at": now,
                }
                for n in range(SEEDS)
            ],
        )
    for start in range(0, count, CHUNK):
        rows = [
            {
                "source_key": f"bench:{i}",
                "content_hash": hashlib.sha256(f"bench:{i}".encode()).hexdigest(),
                "messages": [
                    {"role": "user", "content": f"How do I change the due date on item {i}?"},
                    {"role": "assistant", "content": f"Open item {i}, choose Edit, set the due date and save."},
                ],
                "tags": [f"topic-{i % 8}"],
                "seed_ids": [f"seed-{i % SEEDS}"],
                "run_id": "bench-run",
                "model": "bench-model",
                "template_hash": "t" * 64,
                "nearest_seed_id": f"seed-{i % SEEDS}",
                "nearest_seed_similarity": 0.5,
                "flags": [],
                "status": "pending",
                "review_order": 0,
                "created_at": now,
            }
            for i in range(start, min(count, start + CHUNK))
        ]
        with write_session(engine) as session:
            session.execute(insert(Candidate), rows)
    with write_session(engine) as session:
        overlapped = mark_overlap(session, share=overlap, reviewers=2)
    if engine.dialect.name == "postgresql":
        # As a store is when a team starts reviewing (queued by generate long before): vacuumed and analysed.
        # Otherwise autovacuum's first pass over the 100,000 new rows lands in the middle of some runs and not
        # others, on the same 2 CPUs as the reviewers.
        with engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM (ANALYZE) candidate")
    print(f"  queued {count:,} candidates ({overlapped:,} overlapped) in {time.perf_counter() - started:.1f} s", flush=True)
    engine.dispose()
    return overlapped


def reviewer_process(url: str, reviewer: str, decisions: int, start: Any, results: Any) -> None:
    """One reviewer: claim, decide, claim next, as fast as possible; reports what it saw."""
    from review_tui.queue_client import QueueClient

    engine = open_store(url)
    client = QueueClient(engine=engine, reviewer=reviewer, lease_seconds=60)
    start.wait()
    cpu_began = time.process_time()
    loops: list[float] = []
    shown: list[int] = []
    committed: list[int] = []
    refused: list[str] = []
    candidate = client.claim()
    while candidate is not None and len(committed) < decisions:
        shown.append(candidate.id)
        began = time.perf_counter()
        try:
            if len(shown) % 5 == 0:
                done, _, candidate = client.decide_and_claim(candidate_id=candidate.id, action="reject", reasons=["unhelpful"], seconds=3.0)
            else:
                done, _, candidate = client.decide_and_claim(candidate_id=candidate.id, action="accept", seconds=3.0)
            committed.append(done.id)
        except ValueError as exc:  # QueueError: someone else held or decided it
            refused.append(str(exc))
            candidate = client.claim()
        loops.append(time.perf_counter() - began)
    cpu = time.process_time() - cpu_began
    engine.dispose()
    results.put({"reviewer": reviewer, "loops": loops, "shown": shown, "committed": committed, "refused": refused, "cpu": cpu})


def run(url: str, *, reviewers: int, decisions: int, roles: list[str] | None = None) -> dict[str, Any]:
    """`roles`: PostgreSQL reviewer roles, one per process, each connecting as itself (else every process connects with `url`)."""
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    results = context.Queue()
    names = roles or [f"reviewer-{n}" for n in range(reviewers)]
    urls = [make_url(url).set(username=role).render_as_string(hide_password=False) for role in roles] if roles else [url] * reviewers
    processes = [context.Process(target=reviewer_process, args=(urls[n], names[n], decisions, start, results)) for n in range(reviewers)]
    for process in processes:
        process.start()
    time.sleep(3)  # let every process import and connect before the clock starts (not a measurement)
    began = time.perf_counter()
    start.set()
    reports = [results.get(timeout=1800) for _ in processes]
    wall = time.perf_counter() - began
    for process in processes:
        process.join()
    loops = sorted(x for r in reports for x in r["loops"])
    committed = [d for r in reports for d in r["committed"]]
    engine = open_store(url)
    with read_session(engine) as session:
        stored = set(session.exec(select(Decision.id)).all())
        overlapped = session.exec(select(Candidate.id, Candidate.reviews_needed).where(col(Candidate.reviews_needed) > 1))
        needs = {cid: n for cid, n in overlapped if cid is not None}
        key = load_key(store_identity(session))
        breaks = list(verify_chain(session, key=key))
    engine.dispose()
    by_candidate: Counter[int] = Counter(c for r in reports for c in set(r["shown"]))
    shown_twice = sum(len(r["shown"]) - len(set(r["shown"])) for r in reports)
    over_reviewed = sum(1 for c, n in by_candidate.items() if n > needs.get(c, 1))
    return {
        "reviewers": reviewers,
        "decisions": len(committed),
        "wall_s": wall,
        "per_s": len(committed) / wall,
        # The reviewer processes' own CPU time per decision (the rest of the 2 CPUs is the database's).
        "client_cpu_ms": 1000 * sum(r["cpu"] for r in reports) / max(1, len(committed)),
        "p50_ms": 1000 * statistics.median(loops),
        "p95_ms": 1000 * loops[int(0.95 * (len(loops) - 1))],
        "p99_ms": 1000 * loops[int(0.99 * (len(loops) - 1))],
        "double_claims": sum(len(r["refused"]) for r in reports) + shown_twice + over_reviewed,
        "lost": len(set(committed) - stored),
        "chain_breaks": len(breaks),
    }


def postgres_run(args: argparse.Namespace) -> dict[str, Any]:
    import psycopg

    from generator.store.team import add_reviewer

    name = f"synthgate_team_bench_{os.getpid()}"
    roles = [] if args.as_owner else [f"bench_{os.getpid()}_r{n}" for n in range(args.pg_reviewers)]
    admin = psycopg.connect("host=127.0.0.1 port=5432 dbname=postgres user=root", autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = f"postgresql+psycopg://root@127.0.0.1:5432/{name}"
        build_store(url, args.candidates, args.overlap)
        # As a team runs: each reviewer its own role (`team add-reviewer`), named and signed by the database.
        engine = open_store(url)
        for role in roles:
            add_reviewer(engine, role)
        engine.dispose()
        return run(url, reviewers=args.pg_reviewers, decisions=args.decisions, roles=roles)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        for role in roles:
            admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        admin.close()


def sqlite_run(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    url = f"sqlite:///{folder / 'team.db'}"
    build_store(url, args.candidates, args.overlap)
    return run(url, reviewers=args.sqlite_reviewers, decisions=args.decisions)


def report(label: str, figures: dict[str, Any]) -> None:
    print(
        f"{label}: {figures['reviewers']} reviewers, {figures['decisions']:,} decisions in {figures['wall_s']:.1f} s "
        f"({figures['per_s']:.0f}/s); claim-to-next p50 {figures['p50_ms']:.1f} ms, p95 {figures['p95_ms']:.1f} ms "
        f"(target < 30), p99 {figures['p99_ms']:.1f} ms; double claims {figures['double_claims']}, "
        f"lost decisions {figures['lost']}, chain breaks {figures['chain_breaks']}; "
        f"reviewer processes' CPU {figures['client_cpu_ms']:.2f} ms per decision",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["postgresql", "sqlite", "both"], default="both")
    parser.add_argument("--candidates", type=int, default=100_000)
    parser.add_argument("--decisions", type=int, default=1000, help="decisions per reviewer")
    parser.add_argument("--pg-reviewers", type=int, default=8)
    parser.add_argument("--sqlite-reviewers", type=int, default=4)
    parser.add_argument("--overlap", type=float, default=0.1)
    parser.add_argument(
        "--as-owner", action="store_true", help="PostgreSQL: every process connects as the owner under a typed name (no reviewer roles)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="synthgate-team-") as folder:
        os.environ["SYNTHGATE_HOME"] = str(Path(folder) / "keys")  # this run's signing key, gone with it
        if args.backend in ("postgresql", "both"):
            print("PostgreSQL:", flush=True)
            report("PostgreSQL", postgres_run(args))
        if args.backend in ("sqlite", "both"):
            print("SQLite:", flush=True)
            report("SQLite", sqlite_run(args, Path(folder)))


if __name__ == "__main__":
    main()
