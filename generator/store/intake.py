"""The machine side's writes into the store: syncing verified seeds and adding new candidates."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlmodel import Session

from generator.examples import Conversation, messages_hash
from generator.project import display_path
from generator.seeds import Seed
from generator.store.models import Candidate, Flag, SeedRecord, utcnow


def sync_seeds(session: Session, seeds: Sequence[Seed], *, root: Path) -> int:
    """Make the seed table mirror the seed files (first occurrence wins on a repeated id)."""
    rows: dict[str, dict[str, Any]] = {}
    now = utcnow()
    for seed in seeds:
        rows.setdefault(
            seed.id,
            {
                "id": seed.id,
                "content_hash": seed.content_hash,
                "messages": seed.example.messages_as_dicts(),
                "tags": list(seed.example.tags),
                "source": display_path(seed.file, root),
                "line": seed.line,
                "verified_by": seed.verified_by,
                "synced_at": now,
            },
        )
    session.execute(delete(SeedRecord))
    if rows:
        session.execute(insert(SeedRecord), list(rows.values()))
    session.commit()
    return len(rows)


class NewCandidate(BaseModel):
    """A parsed model output on its way into the queue, with provenance and check results."""

    source_key: str  # idempotency key, e.g. "<call id>:<position in the answer>"
    messages: list[dict[str, str]]
    tags: list[str] = Field(default_factory=list)
    run_id: str | None = None
    call_id: int | None = None
    seed_ids: list[str] = Field(default_factory=list)
    template_hash: str | None = None
    model: str | None = None
    status: str = "pending"  # or "filtered" (never "accepted": only a reviewer accepts)
    filter_reason: str | None = None
    filter_match: str | None = None
    flags: list[Flag] = Field(default_factory=list)
    nearest_seed_id: str | None = None
    nearest_seed_similarity: float | None = None

    @classmethod
    def from_example(cls, example: Conversation, **provenance: Any) -> NewCandidate:
        return cls(messages=example.messages_as_dicts(), tags=list(example.tags), **provenance)


def add_candidates(session: Session, candidates: Sequence[NewCandidate]) -> list[int]:
    """Insert candidates, skipping any whose source_key is already stored; return their ids in order.

    Idempotent, so a resumed run that re-parses a stored answer adds nothing twice (an already
    stored key gives the stored id). A filter match naming a candidate by source key (see
    SOURCE_MATCH_PREFIX) is stored naming it by id. Use it in a write_session: the write lock
    makes the check-then-insert atomic, and the caller's transaction commits it.
    """
    now = utcnow()
    ids: list[int] = []
    # Core statements: the ORM's bulk paths cost about a millisecond more per statement, and the
    # generation writer calls this for every few answers.
    connection = session.connection()
    for start in range(0, len(candidates), _CHUNK):
        rows = [_row(candidate, now) for candidate in candidates[start : start + _CHUNK]]
        keys = [row["source_key"] for row in rows]
        stored = set(connection.execute(select(_TABLE.c.source_key).where(_TABLE.c.source_key.in_(keys))).scalars())
        fresh = [row for row in rows if row["source_key"] not in stored]
        if fresh:
            connection.execute(insert(_TABLE), fresh)
        # source key of a new candidate -> source key of the candidate its filter match names
        originals = {
            row["source_key"]: row["filter_match"].removeprefix(SOURCE_MATCH_PREFIX)
            for row in fresh
            if (row["filter_match"] or "").startswith(SOURCE_MATCH_PREFIX)
        }
        by_key = dict(
            connection.execute(select(_TABLE.c.source_key, _TABLE.c.id).where(_TABLE.c.source_key.in_([*keys, *originals.values()]))).all()
        )
        ids += [by_key[key] for key in keys]
        if originals:
            connection.execute(
                _RELINK, [{"row_id": by_key[key], "match": f"candidate:{by_key[original]}"} for key, original in originals.items()]
            )
    return ids


# A filter match that names a candidate by its source key: the checks name a candidate that
# has no id yet (an earlier one of the same generation run) this way.
SOURCE_MATCH_PREFIX = "source:"
_CHUNK = 500  # keeps IN (...) lists well under every database's bound-parameter limit
_TABLE: Table = Candidate.__table__  # type: ignore[attr-defined]  # set by SQLModel when the class is made
_RELINK = update(_TABLE).where(_TABLE.c.id == bindparam("row_id")).values(filter_match=bindparam("match"))


def _row(candidate: NewCandidate, now: datetime) -> dict[str, Any]:
    if candidate.status not in ("pending", "filtered"):
        raise ValueError("new candidates are pending or filtered; only a reviewer's decision accepts or rejects")
    row = candidate.model_dump()
    row["flags"] = [flag.model_dump() for flag in candidate.flags]
    row["content_hash"] = messages_hash(candidate.messages)
    row["created_at"] = now
    row["review_order"] = 0
    return row
