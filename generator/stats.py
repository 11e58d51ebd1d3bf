"""What the store holds, as one JSON-ready dict (the `synthgate stats` contract: keys are only ever added)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from generator.checks.report import filtered_by_reason, flags_by_kind
from generator.store.models import Decision, Run, SeedRecord
from generator.store.queue import queue_counts


def collect_stats(session: Session) -> dict[str, Any]:
    return {
        "seeds": session.exec(select(func.count()).select_from(SeedRecord)).one(),
        "runs": session.exec(select(func.count()).select_from(Run)).one(),
        "decisions": session.exec(select(func.count()).select_from(Decision)).one(),
        "candidates": queue_counts(session),
        "filtered_by_reason": filtered_by_reason(session),
        "flags_by_kind": flags_by_kind(session),
    }
