"""One snapshot of the store for a whole export, even when spawned worker processes render its candidates.

Rendering is CPU-bound (the gate recomputes two sha256 hashes over canonical JSON per row), so a
large store is rendered by several processes over ranges of candidate ids. Measured back to back
on this 2-core machine with 1,000,000 accepted candidates (benchmarks/export_scale.py; load ~2):
one process 146.5 s, two spawned workers 83.6 s (peak 212 MB over the tree), the former forked
workers 85.1 s, byte-identical output. The machine ran ~4.5x slower that day than when the README
figure (18.8 s) was taken: scaled, one process would take 32-46 s, past the 30 s target, so the
workers stay.

Workers are started with `spawn`, the only start method every OS has, and receive plain data
only: a PartJob (ids, names, the spool folder) and the store's URL. Each opens its own engine.

Consistency: the parent's read transaction fixes its snapshot with its first read, the chain
head. A worker reads the chain head first in its own transaction. Every decision advances the
head, so a worker that saw the parent's head saw the parent's decisions; a range whose worker saw
another head (a review was saved meanwhile) is rendered again in the parent's own snapshot. The
export therefore holds exactly the decisions up to the head its manifest records.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace

from sqlalchemy import func, select
from sqlmodel import Session, col

from generator.export.render import Part, PartJob, render_candidates
from generator.store.models import Candidate, DecisionChain

# Below this span of candidate ids one process is quicker: a spawned worker imports synthgate
# afresh (about a second) before it renders its first row.
PARALLEL_FROM = 100_000
MAX_WORKERS = 4
# More ranges than workers: a worker that finishes early takes the next range, so one busy core
# does not leave the others idle at the end.
RANGES_PER_WORKER = 4


@dataclass(frozen=True)
class ChainHead:
    seq: int
    head_hash: str


def begin_snapshot(session: Session) -> ChainHead:
    """Start the session's read transaction and return the decision-chain head it sees.

    SQLite (WAL) fixes a transaction's snapshot at its first read. PostgreSQL's default, READ
    COMMITTED, takes a new snapshot per statement, so ask for REPEATABLE READ first (the level
    can only be set before the transaction's first statement).
    """
    if session.get_bind().dialect.name == "postgresql" and not session.in_transaction():
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    head = session.get(DecisionChain, 1)
    return ChainHead(head.seq, head.head_hash) if head else ChainHead(0, "")


def render_all_candidates(session: Session, job: PartJob, *, head: ChainHead, workers: int | None = None) -> list[Part]:
    """Render the candidates in this process, or in spawned workers over consecutive ranges of ids.

    `head`: what begin_snapshot returned for this session. `workers`: processes to use (default:
    one per CPU, up to MAX_WORKERS, once the store spans PARALLEL_FROM ids).
    """
    low, high = session.execute(select(func.min(col(Candidate.id)), func.max(col(Candidate.id)))).one()
    base = replace(job, name="candidates")
    count = 1 if low is None else _worker_count(session, workers, high - low + 1)
    if count == 1:
        return [render_candidates(session, base)]
    step = (high - low + count * RANGES_PER_WORKER) // (count * RANGES_PER_WORKER)
    jobs = [
        replace(base, name=f"candidates-{index}", id_range=(start, min(start + step - 1, high)))
        for index, start in enumerate(range(low, high + 1, step))
    ]
    url = session.get_bind().engine.url.render_as_string(hide_password=False)
    with ProcessPoolExecutor(max_workers=count, mp_context=multiprocessing.get_context("spawn")) as pool:
        rendered = list(pool.map(_render_in_worker, jobs, [url] * len(jobs)))
    return [part if seen == head else render_candidates(session, part_job) for part_job, (part, seen) in zip(jobs, rendered, strict=True)]


def _render_in_worker(job: PartJob, db_url: str) -> tuple[Part, ChainHead]:
    from generator.store.db import create_store_engine, read_session

    engine = create_store_engine(db_url)
    try:
        with read_session(engine) as session:
            seen = begin_snapshot(session)
            return render_candidates(session, job), seen
    finally:
        engine.dispose()


def _worker_count(session: Session, requested: int | None, span: int) -> int:
    url = session.get_bind().engine.url
    if url.get_backend_name() == "sqlite" and (not url.database or url.database == ":memory:" or "mode=memory" in str(url)):
        return 1  # an in-memory store exists only in this process
    if requested is not None:
        return max(1, requested)
    return min(os.cpu_count() or 1, MAX_WORKERS) if span >= PARALLEL_FROM else 1
