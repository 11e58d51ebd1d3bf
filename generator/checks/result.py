"""What the checks conclude about one candidate, and the record of a person overruling a filter."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, Field

from generator.store.models import Flag

# Every filter reason, from the most to the least serious (the order checks try them in).
FILTER_REASONS: tuple[str, ...] = (
    "structural defect",
    "holdout leak",
    "exact duplicate",
    "near-duplicate of seed",
    "near-duplicate of candidate",
)
# A person put the candidate back to pending (`synthgate check --restore`): the flag keeps what the
# filter found for the reviewer, and re-checks do not filter it again for that reason.
RESTORED = "restored"


class CheckResult(BaseModel):
    """What the checks conclude about one candidate: exactly the check fields of a NewCandidate."""

    status: Literal["pending", "filtered"] = "pending"
    filter_reason: str | None = None  # e.g. "exact duplicate", "near-duplicate of seed", "holdout leak"
    filter_match: str | None = None  # the proving record, e.g. "seed:billing-001", "candidate:42"
    flags: list[Flag] = Field(default_factory=list)
    nearest_seed_id: str | None = None
    nearest_seed_similarity: float | None = None


def restored_flag(reason: str, match: str | None) -> Flag:
    return Flag(kind=RESTORED, detail=f"{reason}: {match}" if match else reason)


def overruled_reasons(flags: Iterable[Flag]) -> set[str]:
    """The filter reasons a person has overruled for a candidate (from its `restored` flags)."""
    return {
        reason
        for flag in flags
        if flag.kind == RESTORED
        for reason in FILTER_REASONS
        if flag.detail == reason or flag.detail.startswith(f"{reason}: ")
    }
