"""Checks over the stored queue: re-check pending candidates, restore filtered ones, name matches by candidate id.

Nothing here accepts or rejects: re-checking moves pending -> filtered (or updates flags and the
nearest seed), restoring moves filtered -> pending. Decisions stay the reviewers' alone.
"""

from __future__ import annotations

import difflib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, bindparam, or_, select, update
from sqlmodel import col

from generator.batching import batched
from generator.checks.reference import as_messages
from generator.checks.result import FILTER_REASONS, RESTORED, CheckResult, overruled_reasons, restored_flag
from generator.checks.runner import CandidateChecker
from generator.errors import UserError
from generator.project import Project
from generator.store.db import read_session, write_session
from generator.store.models import Candidate, Flag, utcnow

_TABLE = Candidate.__table__  # type: ignore[attr-defined]
_CHUNK = 5000  # candidates checked at a time
_WRITE_CHUNK = 20_000  # rows written per transaction: few fsyncs, write locks of well under a second


@dataclass
class RecheckSummary:
    checked: int = 0
    compared_with: dict[str, int] = field(default_factory=dict)  # seeds, holdout examples, reviewed candidates
    filtered: Counter[str] = field(default_factory=Counter)  # newly filtered, by reason
    flagged: Counter[str] = field(default_factory=Counter)  # still pending, by flag kind
    refreshed: int = 0  # still pending, with new flags or a new nearest seed
    left_alone: int = 0  # a reviewer held or decided it while the checks ran


def recheck_pending(engine: Engine, *, project: Project) -> RecheckSummary:
    """Check every pending candidate again (current thresholds, seeds and holdout) and store what changed.

    Each pending candidate is compared with the seeds, the holdout set, every reviewed candidate
    and the pending ones before it. Candidates a reviewer holds right now are not filtered under
    their hands; they are counted as left alone.
    """
    summary = RecheckSummary()
    filtering: list[dict[str, Any]] = []
    refreshing: list[dict[str, Any]] = []
    with read_session(engine) as session:
        checker = CandidateChecker.from_store(session, project=project, earlier_statuses=("accepted", "rejected"))
        summary.compared_with = checker.reference_counts
        rows = session.execute(
            select(
                col(Candidate.id),
                col(Candidate.messages),
                col(Candidate.flags),
                col(Candidate.nearest_seed_id),
                col(Candidate.nearest_seed_similarity),
            )
            .where(col(Candidate.status) == "pending")
            .order_by(col(Candidate.id)),
            execution_options={"yield_per": _CHUNK},
        )
        for chunk in batched(rows, _CHUNK):
            restored = {f"candidate:{row.id}": [Flag(**f) for f in row.flags if f["kind"] == RESTORED] for row in chunk}
            results = checker.check_many(
                [(f"candidate:{row.id}", as_messages(row.messages)) for row in chunk],
                overruled={name: overruled_reasons(flags) for name, flags in restored.items() if flags},
            )
            for row, result in zip(chunk, results, strict=True):
                summary.checked += 1
                change = _change(row.id, result, restored[f"candidate:{row.id}"])
                if result.status == "filtered":
                    summary.filtered[result.filter_reason or ""] += 1
                    filtering.append(change)
                    continue
                summary.flagged.update(flag.kind for flag in result.flags)
                stored = (row.flags, row.nearest_seed_id, row.nearest_seed_similarity)
                if stored != (change["new_flags"], change["new_seed"], change["new_similarity"]):
                    refreshing.append(change)
    summary.refreshed = len(refreshing)
    summary.left_alone = _write(engine, _filter_statement(utcnow()), filtering) + _write(engine, _refresh_statement(), refreshing)
    return summary


def _change(candidate_id: int, result: CheckResult, restored: list[Flag]) -> dict[str, Any]:
    """The bound parameters of one row's UPDATE (named apart from the columns they set)."""
    return {
        "row_id": candidate_id,
        "new_reason": result.filter_reason,
        "new_match": result.filter_match,
        "new_flags": [flag.model_dump() for flag in [*result.flags, *restored]],
        "new_seed": result.nearest_seed_id,
        "new_similarity": result.nearest_seed_similarity,
    }


def _filter_statement(now: datetime) -> Any:
    free = or_(_TABLE.c.lease_expires_at.is_(None), _TABLE.c.lease_expires_at <= now)
    return (
        update(_TABLE)
        .where(_TABLE.c.id == bindparam("row_id"), _TABLE.c.status == "pending", free)
        .values(
            status="filtered",
            filter_reason=bindparam("new_reason"),
            filter_match=bindparam("new_match"),
            flags=bindparam("new_flags"),
            nearest_seed_id=bindparam("new_seed"),
            nearest_seed_similarity=bindparam("new_similarity"),
        )
    )


def _refresh_statement() -> Any:
    return (
        update(_TABLE)
        .where(_TABLE.c.id == bindparam("row_id"), _TABLE.c.status == "pending")
        .values(
            flags=bindparam("new_flags"),
            nearest_seed_id=bindparam("new_seed"),
            nearest_seed_similarity=bindparam("new_similarity"),
        )
    )


def _write(engine: Engine, statement: Any, changes: list[dict[str, Any]]) -> int:
    """Apply one UPDATE to many rows, a chunk per transaction; return how many rows it did not match."""
    missed = 0
    for start in range(0, len(changes), _WRITE_CHUNK):
        chunk = changes[start : start + _WRITE_CHUNK]
        with write_session(engine) as session:
            result = cast(CursorResult[Any], session.execute(statement, chunk))  # a Core UPDATE: a cursor result
            missed += len(chunk) - result.rowcount
    return missed


def restore_filtered(engine: Engine, *, reason: str) -> int:
    """Put every candidate filtered for `reason` back to pending, flagged `restored`; return how many.

    Structural defects cannot be restored: they are not trainable conversations.
    """
    if reason not in FILTER_REASONS:
        close = difflib.get_close_matches(reason, FILTER_REASONS, n=1)
        raise UserError(
            f"unknown filter reason {reason!r}",
            fix=(f"did you mean {close[0]!r}? " if close else "") + "reasons: " + ", ".join(repr(r) for r in FILTER_REASONS),
        )
    _refuse_structural(reason)
    return _restore(engine, col(Candidate.filter_reason) == reason)


def restore_candidate(engine: Engine, *, candidate_id: int) -> int:
    """Put one filtered candidate back to pending, flagged `restored` like `restore_filtered` does; return 1, or 0 if it is not filtered.

    The review app's filtered view calls this (a person looked at the candidate and overruled its filter).
    """
    with read_session(engine) as session:
        reason = session.execute(
            select(col(Candidate.filter_reason)).where(col(Candidate.id) == candidate_id, col(Candidate.status) == "filtered")
        ).scalar_one_or_none()
    if reason is None:
        return 0
    _refuse_structural(reason)
    return _restore(engine, col(Candidate.id) == candidate_id)


def _refuse_structural(reason: str) -> None:
    if reason == "structural defect":
        raise UserError(
            "candidates with a structural defect cannot be restored: they are not trainable conversations",
            fix="correct the prompt template or model settings and generate again",
        )


def _restore(engine: Engine, which: Any) -> int:
    """Restore the filtered candidates `which` selects, each flagged with the reason it overrules."""
    with write_session(engine) as session:
        rows = session.execute(
            select(col(Candidate.id), col(Candidate.flags), col(Candidate.filter_reason), col(Candidate.filter_match)).where(
                col(Candidate.status) == "filtered", which
            )
        ).all()
        changes = [
            {"row_id": row.id, "new_flags": [*row.flags, restored_flag(row.filter_reason, row.filter_match).model_dump()]} for row in rows
        ]
        if changes:
            statement = (
                update(_TABLE)
                .where(_TABLE.c.id == bindparam("row_id"), _TABLE.c.status == "filtered")
                .values(status="pending", filter_reason=None, filter_match=None, flags=bindparam("new_flags"))
            )
            session.execute(statement, changes)
    return len(changes)
