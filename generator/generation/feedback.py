"""Reviewers' verdicts fed back into generation: the most common recent reasons for rejecting a template's output."""

from __future__ import annotations

from collections import Counter

from sqlmodel import Session, col, select

from generator.store.audit import live
from generator.store.models import Candidate, Decision

RECENT_DECISIONS = 200
TOP_REASONS = 5


def rejection_reasons(session: Session, *, template_hash: str) -> list[tuple[str, int]]:
    """(reason, times) for live (not undone) rejections of candidates made with this template, most common first."""
    rows = session.exec(
        select(Decision.reasons)
        .join(Candidate, col(Candidate.id) == Decision.candidate_id)
        .where(Decision.action == "reject", Candidate.template_hash == template_hash, live(Decision.__table__))  # type: ignore[attr-defined]
        .order_by(col(Decision.id).desc())
        .limit(RECENT_DECISIONS)
    ).all()
    counts = Counter(reason for reasons in rows for reason in reasons)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP_REASONS]
