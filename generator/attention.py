"""Attention checks per reviewer: how long candidates were on screen, how many decisions came faster than reading, canaries caught."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from generator.store.models import Candidate, Decision

# Skimming tops out around 600-700 words a minute (Rayner et al., "So much to read, so little
# time", 2016), about 6 characters a word with its space: 60-70 characters a second. We take 60,
# the fast end, so a reviewer marked here was faster than skimming, not merely quick.
SKIM_CHARS_PER_SECOND = 60


def reading_floor_seconds(chars: int, *, min_dwell_ms: int) -> float:
    """The least time a human needs for a candidate of `chars` characters: orienting plus skimming it."""
    return min_dwell_ms / 1000 + chars / SKIM_CHARS_PER_SECOND


@dataclass
class ReviewerAttention:
    decisions: int  # on real candidates (reviews and adjudications; undos and canaries apart)
    median_dwell_seconds: float | None
    below_reading_floor: int  # decisions made faster than reading_floor_seconds
    share_below_reading_floor: float | None
    sessions: int
    canaries_shown: int  # canaries decided (a canary left undecided is not recorded)
    canaries_caught: int  # ... and rejected


def _chars(messages: list[dict[str, Any]] | None) -> int:
    return sum(len(str(message.get("content", ""))) for message in messages or [])


def attention_by_reviewer(session: Session, *, min_dwell_ms: int) -> dict[str, dict[str, Any]]:
    """Each reviewer's attention figures. Marks only: nothing here changes, accepts or rejects anything."""
    d = Decision.__table__  # type: ignore[attr-defined]  # set by SQLModel when the class is made
    c = Candidate.__table__  # type: ignore[attr-defined]
    # The length of what the reviewer read: the turns' text, not the JSON around it (~30 characters
    # a turn, half a second of skimming each, would mark careful reviewers of short candidates).
    rows = session.execute(
        select(d.c.reviewer, d.c.kind, d.c.action, d.c.seconds, d.c.session_id, c.c.messages)
        .join(c, c.c.id == d.c.candidate_id)
        .where(d.c.action != "undo")
        .order_by(d.c.reviewer)
    ).all()
    figures: dict[str, dict[str, Any]] = {}
    grouped: dict[str, list[Any]] = {}
    for row in rows:
        grouped.setdefault(row[0], []).append(row)
    for reviewer, decisions in grouped.items():
        real = [row for row in decisions if row.kind != "canary"]
        canaries = [row for row in decisions if row.kind == "canary"]
        dwell = [row.seconds for row in real if row.seconds is not None]
        fast = sum(
            1
            for row in real
            if row.seconds is not None and row.seconds < reading_floor_seconds(_chars(row.messages), min_dwell_ms=min_dwell_ms)
        )
        figures[reviewer] = asdict(
            ReviewerAttention(
                decisions=len(real),
                median_dwell_seconds=round(statistics.median(dwell), 3) if dwell else None,
                below_reading_floor=fast,
                share_below_reading_floor=round(fast / len(dwell), 4) if dwell else None,
                sessions=len({row.session_id for row in decisions if row.session_id}),
                canaries_shown=len(canaries),
                canaries_caught=sum(1 for row in canaries if row.action == "reject"),
            )
        )
    return figures
