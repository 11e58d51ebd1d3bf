"""Coverage: accepted examples per tag (and per `edge:*` case) against targets, with the shortfall, and the tag a new run should aim at."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import String, cast, func
from sqlalchemy import select as sql_select
from sqlmodel import Session, col

from generator.config import CoverageSection
from generator.store.models import Candidate, SeedRecord


@dataclass(frozen=True)
class TagCoverage:
    tag: str
    edge_case: bool  # an `edge:*` tag
    seeds: int
    accepted: int
    target: int
    source: str  # "config" ([coverage] tags) or "seeds" (the seeds' share of [coverage] target)

    @property
    def shortfall(self) -> int:
        return max(0, self.target - self.accepted)

    @property
    def covered(self) -> float:
        return self.accepted / self.target if self.target else 1.0


def _tag_counts(session: Session, model: Any, *where: Any) -> Counter[str]:
    # Grouped by the tag list's text in SQL, so only distinct tag combinations reach Python.
    counts: Counter[str] = Counter()
    for tags_text, count in session.execute(
        sql_select(cast(model.tags, String), func.count()).where(*where).group_by(cast(model.tags, String))
    ):
        for tag in json.loads(tags_text or "[]"):
            counts[tag] += count
    return counts


def coverage(session: Session, settings: CoverageSection) -> list[TagCoverage]:
    """One row per tag the seeds carry or the config names, furthest below target first.

    "Accepted" is the candidate's status (a dashboard figure, one indexed scan); the export's gate
    re-proves every decision behind it.
    """
    seeds = _tag_counts(session, SeedRecord)
    seed_total = session.execute(sql_select(func.count()).select_from(SeedRecord)).scalar_one()
    accepted = _tag_counts(session, Candidate, col(Candidate.status) == "accepted")
    rows = []
    for tag in sorted(set(seeds) | set(settings.tags)):
        if tag in settings.tags:
            target, source = settings.tags[tag], "config"
        else:
            # The seeds' distribution scaled to the target size; a tag the seeds carry wants at least one.
            target, source = max(1, round(settings.target * seeds[tag] / seed_total)), "seeds"
        rows.append(TagCoverage(tag, tag.startswith("edge:"), seeds[tag], accepted[tag], target, source))
    return sorted(rows, key=lambda row: (row.covered, row.tag))


def furthest_below_target(rows: list[TagCoverage], *, seed_tags_only: bool = True) -> TagCoverage | None:
    """The tag to aim the next run at: the least covered with a shortfall (one the seeds carry: few-shot needs examples)."""
    short = [row for row in rows if row.shortfall and (row.seeds or not seed_tags_only)]
    return min(short, key=lambda row: (row.covered, -row.shortfall, row.tag), default=None)


def coverage_json(rows: list[TagCoverage]) -> dict[str, Any]:
    return {
        "tags": [{**asdict(row), "shortfall": row.shortfall} for row in rows],
        "shortfall": sum(row.shortfall for row in rows),  # summed over tags: an example with two tags counts for both
    }
