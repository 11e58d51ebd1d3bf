"""The request journal: request hashing, run records, calls written before they are sent, the response cache.

Every call is journaled (status `pending`) before its request goes out: the first few by the
sending process, the rest by the writer process, ahead of the sender. A call is finished when
its answer is stored (`ok`, `invalid`, `truncated`, `refused`); `pending` and `failed` calls,
and calls not journaled yet, are what a rerun of the same command sends — after it has stored
the answers an interrupted invocation left in its answer log (see answer_log.py). A `truncated`
call's complete examples are stored with it; its missing ones get a re-ask call (planning.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from generator.examples import canonical_hash
from generator.store.models import LLMCall, Run, utcnow

ANSWERED = ("ok", "invalid", "truncated", "refused")
OPEN = ("pending", "failed")


def prompt_key(messages_hash: str, occurrence: int) -> str:
    """Identity of a prompt regardless of provider: its messages' hash and how many identical prompts came before."""
    return canonical_hash({"messages": messages_hash, "occurrence": occurrence})


def request_hash(*, identity: dict[str, Any], params: dict[str, Any], prompt: str) -> str:
    """Identity of a request: provider, model, server, parameters, answer schema and prompt (with its occurrence)."""
    return canonical_hash({"identity": identity, "params": params, "prompt": prompt})


@dataclass(frozen=True)
class OpenCall:
    """A journaled call that still needs an answer."""

    id: int
    index: int
    request_hash: str
    request: dict[str, Any]  # messages, asked, prompt_key, params
    seed_ids: list[str]


@dataclass(frozen=True)
class CutCall:
    """A stored answer that was cut off at max_tokens."""

    index: int
    request: dict[str, Any]
    response_text: str | None


def open_run(session: Session, *, run: Run) -> tuple[Run, bool]:
    """The stored run with this id (set running again), or `run` newly stored. Returns (run, resumed)."""
    stored = session.get(Run, run.id)
    if stored is None:
        session.add(run)
        session.flush()
        return run, False
    if stored.status != "complete":
        stored.status, stored.stop_reason, stored.updated_at = "running", None, utcnow()
        session.add(stored)
    return stored, True


def planned_indices(session: Session, *, run_id: str) -> set[int]:
    return set(session.exec(select(LLMCall.request_index).where(LLMCall.run_id == run_id)))


def planned_from(session: Session, *, run_id: str, first: int) -> set[int]:
    """The run's journaled request indices from `first` on (its re-asks, when `first` is the run's request count)."""
    return set(session.exec(select(LLMCall.request_index).where(LLMCall.run_id == run_id, LLMCall.request_index >= first)))


def cut_calls(session: Session, *, run_id: str) -> list[CutCall]:
    rows = session.execute(
        sa_select(col(LLMCall.request_index), col(LLMCall.request), col(LLMCall.response_text))
        .where(col(LLMCall.run_id) == run_id, col(LLMCall.status) == "truncated")
        .order_by(col(LLMCall.request_index))
    ).all()
    return [CutCall(index=r[0], request=r[1], response_text=r[2]) for r in rows]


def unanswered(session: Session, *, run_id: str, total: int) -> int:
    """Calls of the run still to be answered: open ones, and the first `total` requests not journaled yet."""
    base = session.exec(select(func.count()).where(LLMCall.run_id == run_id, LLMCall.request_index < total)).one()
    still_open = session.exec(select(func.count()).where(LLMCall.run_id == run_id, col(LLMCall.status).in_(OPEN))).one()
    return total - int(base) + int(still_open)


def journal_calls(session: Session, *, rows: Sequence[dict[str, Any]]) -> None:
    """Insert planned calls (status pending) in one statement."""
    if rows:
        now = utcnow()
        # A Core insert: the ORM's bulk path costs more than the JSON it writes.
        session.connection().execute(
            insert(LLMCall.__table__),  # type: ignore[attr-defined]  # set by SQLModel when the class is made
            [{"status": "pending", "attempts": 0, "from_cache": False, "created_at": now, **row} for row in rows],
        )


def open_calls(session: Session, *, run_id: str, after_index: int, limit: int) -> list[OpenCall]:
    # SQLAlchemy's select: SQLModel's typed overloads stop at four columns.
    rows = session.execute(
        sa_select(col(LLMCall.id), col(LLMCall.request_index), col(LLMCall.request_hash), col(LLMCall.request), col(LLMCall.seed_ids))
        .where(col(LLMCall.run_id) == run_id, col(LLMCall.status).in_(OPEN), col(LLMCall.request_index) > after_index)
        .order_by(col(LLMCall.request_index))
        .limit(limit)
    ).all()
    return [OpenCall(id=r[0], index=r[1], request_hash=r[2], request=r[3], seed_ids=r[4]) for r in rows]


def calls_by_index(session: Session, *, run_id: str, indices: Sequence[int]) -> dict[int, tuple[int, str]]:
    """The run's still-open calls at these request indices: index -> (call id, request hash)."""
    rows = session.exec(
        select(LLMCall.request_index, LLMCall.id, LLMCall.request_hash).where(
            LLMCall.run_id == run_id, col(LLMCall.request_index).in_(indices), col(LLMCall.status).in_(OPEN)
        )
    ).all()
    return {index: (call_id, request_hash) for index, call_id, request_hash in rows if call_id is not None}


def cached_bodies(session: Session, *, hashes: Sequence[str], run_id: str) -> dict[str, str]:
    """Stored response bodies for these request hashes from other runs (a response once paid for is reused)."""
    if not hashes:
        return {}
    rows = session.exec(
        select(LLMCall.request_hash, LLMCall.response_text).where(
            col(LLMCall.request_hash).in_(hashes), LLMCall.run_id != run_id, col(LLMCall.status).in_(ANSWERED)
        )
    ).all()
    return {h: body for h, body in rows if body is not None}


@dataclass(frozen=True)
class RunTotals:
    calls: dict[str, int]
    cost_usd: float

    @property
    def answered(self) -> int:
        return sum(self.calls.get(s, 0) for s in ANSWERED)


def run_totals(session: Session, *, run_id: str) -> RunTotals:
    calls = dict(session.exec(select(LLMCall.status, func.count()).where(LLMCall.run_id == run_id).group_by(LLMCall.status)).all())
    cost = session.exec(select(func.coalesce(func.sum(LLMCall.cost_usd), 0.0)).where(LLMCall.run_id == run_id)).one()
    return RunTotals(calls=calls, cost_usd=float(cost or 0.0))


def finish_run(session: Session, *, run_id: str, status: str, stop_reason: str | None) -> None:
    session.execute(update(Run).where(col(Run.id) == run_id).values(status=status, stop_reason=stop_reason, updated_at=utcnow()))
