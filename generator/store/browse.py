"""Read-mostly queries the review app needs beside the queue: text search, filtered candidates, known tags, one candidate's status.

Nothing here records a decision. The one write, `claim_candidate`, leases a pending candidate the
way `queue.claim_next_candidate` does, so a search result is shown to one reviewer at a time and
decided only through `queue.record_decision`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import String, and_, cast, or_
from sqlmodel import Session, col, select

from generator.store.models import Candidate, utcnow
from generator.store.overlap import open_to_reviewer
from generator.store.queue import CandidateView, QueueFilter, filter_clauses, lease_candidate, view_of_row

# Turns a search reads: the system prompt is the same in most candidates and would match everything.
SEARCHED_ROLES = ("user", "assistant")
_SEARCH_CHUNK = 500  # rows read per round while looking for matches


def status_if_matching(session: Session, *, candidate_id: int, filters: QueueFilter, reviewer: str) -> str | None:
    """The candidate's status if it matches `filters` (None: it does not, or does not exist), as `queue_counts`
    counts it for `reviewer`: "waiting" for a pending candidate that is not theirs to review (any more)."""
    matching = (col(Candidate.id) == candidate_id, *filter_clauses(filters))
    row = session.exec(select(Candidate.status, open_to_reviewer(reviewer)).where(*matching)).first()
    if row is None:
        return None
    status, open_to_them = row
    return "waiting" if status == "pending" and not open_to_them else status


def tag_in_store(session: Session, tag: str) -> bool:
    """Whether any candidate (of any status) carries `tag`."""
    return session.exec(select(Candidate.id).where(*filter_clauses(QueueFilter(tag=tag))).limit(1)).first() is not None


def pending_tags(session: Session) -> Counter[str]:
    """Tags of the pending candidates, with how many carry each (read in Python: tags are a JSON list on both backends)."""
    counts: Counter[str] = Counter()
    rows = session.exec(select(Candidate.tags).where(col(Candidate.status) == "pending"), execution_options={"yield_per": 5000})
    for tags in rows:
        counts.update(tags or ())
    return counts


def _json_fragment(text: str) -> str:
    """`text` as it appears inside the stored JSON (quotes, newlines and non-ASCII escaped like the column's serializer)."""
    return json.dumps(text)[1:-1]


def _like_literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _turns_contain(messages: Sequence[dict[str, object]], needle: str) -> bool:
    return any(m.get("role") in SEARCHED_ROLES and needle in str(m.get("content", "")).casefold() for m in messages)


def search_pending(session: Session, *, text: str, reviewer: str, filters: QueueFilter, limit: int = 200) -> list[int]:
    """Ids of pending candidates this reviewer may claim whose user or assistant turns contain `text`
    (case-insensitive), in queue order, at most `limit`.

    The database narrows by a LIKE over the stored JSON; each row is then read to keep only matches
    in the user and assistant turns.
    """
    needle = text.strip().casefold()
    if not needle:
        return []
    pattern = f"%{_like_literal(_json_fragment(needle))}%"
    query = (
        select(col(Candidate.id), col(Candidate.messages))
        .where(
            col(Candidate.status) == "pending",
            cast(Candidate.messages, String).ilike(pattern, escape="\\"),
            open_to_reviewer(reviewer),
            *filter_clauses(filters),
        )
        .order_by(col(Candidate.review_order), col(Candidate.id))
    )
    found: list[int] = []
    for candidate_id, messages in session.execute(query, execution_options={"yield_per": _SEARCH_CHUNK}):
        if _turns_contain(messages, needle):
            found.append(candidate_id)
            if len(found) >= limit:
                break
    return found


def claim_candidate(
    session: Session, *, candidate_id: int, reviewer: str, lease_seconds: int, now: datetime | None = None
) -> CandidateView | None:
    """Lease this pending candidate to `reviewer` (a search result they chose); None if it is decided, on someone else's
    screen, or (overlapped) already reviewed by them.

    One atomic UPDATE, the queue's own lease: two reviewers can never hold the same candidate.
    """
    now = now or utcnow()
    free = or_(col(Candidate.lease_expires_at).is_(None), col(Candidate.lease_expires_at) <= now, col(Candidate.lease_owner) == reviewer)
    claimed = lease_candidate(
        session,
        candidate_id,
        status="pending",
        reviewer=reviewer,
        expires=now + timedelta(seconds=lease_seconds),
        free=and_(free, open_to_reviewer(reviewer)),
    )
    session.commit()
    return None if claimed is None else view_of_row(session, claimed)  # the leased row, not read again


def filtered_ids(session: Session, *, filters: QueueFilter) -> list[int]:
    """Ids of the candidates the machine checks filtered (never reviewable as they are), oldest first."""
    query = select(col(Candidate.id)).where(col(Candidate.status) == "filtered", *filter_clauses(filters)).order_by(col(Candidate.id))
    return [candidate_id for (candidate_id,) in session.execute(query)]
