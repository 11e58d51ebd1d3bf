"""What the checks did, for `synthgate stats`: filtered candidates by reason, flags by kind."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import String, cast, func, select
from sqlmodel import Session, col

from generator.store.models import Candidate


def filtered_by_reason(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(col(Candidate.filter_reason), func.count()).where(col(Candidate.status) == "filtered").group_by(col(Candidate.filter_reason))
    )
    return {reason or "(no reason)": count for reason, count in sorted(rows, key=lambda row: (-row[1], row[0] or ""))}


def flags_by_kind(session: Session) -> dict[str, int]:
    """Candidates carrying each kind of flag, among those a reviewer sees or saw (filtered ones excluded)."""
    counts: Counter[str] = Counter()
    rows = session.execute(
        select(col(Candidate.flags)).where(col(Candidate.status) != "filtered", cast(Candidate.flags, String) != "[]"),
        execution_options={"yield_per": 5000},
    )
    for (flags,) in rows:
        counts.update({flag["kind"] for flag in flags})
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
