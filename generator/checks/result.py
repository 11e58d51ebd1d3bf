"""What the checks conclude about one candidate."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from generator.store.models import Flag


class CheckResult(BaseModel):
    status: Literal["pending", "filtered"] = "pending"
    filter_reason: str | None = None  # e.g. "exact duplicate", "near-duplicate of seed", "holdout leak"
    filter_match: str | None = None  # the proving record, e.g. "seed:billing-001", "candidate:42"
    flags: list[Flag] = Field(default_factory=list)
    nearest_seed_id: str | None = None
    nearest_seed_similarity: float | None = None

    def provenance_fields(self) -> dict[str, object]:
        """The fields a NewCandidate takes from this result."""
        return self.model_dump()
