"""The adjudication queue: overlapped candidates whose reviewers disagree, claimed one at a time with both decisions."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import Engine, exists, func, or_, text, update
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from generator.errors import UserError
from generator.store.audit import live
from generator.store.models import CANDIDATE_STATUSES, Candidate, Decision, utcnow
from generator.store.overlap import awaiting_adjudication
from generator.store.queue import CandidateView, DecisionView, _decision_view, _require_reviewer, get_candidate

_decision = Decision.__table__  # type: ignore[attr-defined]  # set by SQLModel when the class is made


class Disagreement(BaseModel):
    """A candidate awaiting adjudication and the reviewers' live decisions on it, side by side."""

    candidate: CandidateView
    decisions: list[DecisionView]


def claim_for_adjudication(session: Session, *, adjudicator: str, lease_seconds: int, now: datetime | None = None) -> Disagreement | None:
    """Reserve the next disagreement this adjudicator did not review themselves (None: none left)."""
    adjudicator = _require_reviewer(adjudicator)
    now = now or utcnow()
    expires = now + timedelta(seconds=lease_seconds)
    d = aliased(_decision)
    not_theirs = ~exists().where(d.c.candidate_id == col(Candidate.id), d.c.reviewer == adjudicator, d.c.kind == "review")
    free = or_(col(Candidate.lease_expires_at).is_(None), col(Candidate.lease_expires_at) <= now, col(Candidate.lease_owner) == adjudicator)
    next_id = select(Candidate.id).where(awaiting_adjudication(), not_theirs, free).order_by(col(Candidate.id)).limit(1)
    # A disagreement the adjudicator already holds (after a restart) comes back first.
    held = session.exec(next_id.where(col(Candidate.lease_owner) == adjudicator)).first()
    candidate_id = held if held is not None else session.exec(next_id).first()
    if candidate_id is None:
        return None
    claimed = session.exec(  # an UPDATE through exec(): typed as its cursor result
        update(Candidate)
        .where(col(Candidate.id) == candidate_id, col(Candidate.status) == "pending", free)
        .values(lease_owner=adjudicator, lease_expires_at=expires)
    )
    session.commit()
    if claimed.rowcount != 1:  # another adjudicator took it between the two statements: try the next one
        return claim_for_adjudication(session, adjudicator=adjudicator, lease_seconds=lease_seconds, now=now)
    return Disagreement(
        candidate=get_candidate(session, candidate_id=candidate_id), decisions=live_reviews(session, candidate_id=candidate_id)
    )


def live_reviews(session: Session, *, candidate_id: int) -> list[DecisionView]:
    """The reviewers' live review decisions on a candidate, oldest first."""
    decisions = Decision.__table__  # type: ignore[attr-defined]
    rows = session.exec(
        select(Decision)
        .where(col(Decision.candidate_id) == candidate_id, col(Decision.kind) == "review", col(Decision.action) != "undo", live(decisions))
        .order_by(col(Decision.id))
    ).all()
    return [_decision_view(row) for row in rows]


def count_awaiting_adjudication(session: Session) -> int:
    """Disagreements no adjudicator has settled yet."""
    return session.exec(select(func.count()).select_from(Candidate).where(awaiting_adjudication())).one()


def adjudication_counts(session: Session) -> dict[str, int]:
    """The adjudication queue in queue_counts' shape: "pending" the disagreements left, "accepted"/"rejected" those settled.

    A settled one is a candidate whose latest live adjudication stands; an undone adjudication puts it back among those left.
    """
    d = aliased(_decision)
    settled = (
        select(Candidate.status, func.count())
        .where(exists().where(d.c.candidate_id == col(Candidate.id), d.c.kind == "adjudication", d.c.action != "undo", live(d)))
        .where(col(Candidate.status).in_(("accepted", "rejected")))
        .group_by(Candidate.status)
    )
    counts = dict.fromkeys(CANDIDATE_STATUSES, 0)
    counts.update({status: n for status, n in session.exec(settled).all()})
    counts["pending"] = count_awaiting_adjudication(session)
    return counts


def may_adjudicate(session: Session) -> bool:
    """On PostgreSQL, whether the connecting role is on this store's adjudicator list; on SQLite (one person) always."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    return bool(session.execute(text("SELECT EXISTS (SELECT 1 FROM adjudicator WHERE name = current_user)")).scalar())


def grant_adjudicator(engine: Engine, name: str) -> None:
    """Put the reviewer role `name` on this store's adjudicator list (PostgreSQL, run by the owner).

    A list in the store, not a server-wide role: an adjudicator of one project is none on another
    project's store on the same server (migration 0009).
    """
    with engine.begin() as connection:
        if connection.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :name"), {"name": name}).first() is None:
            raise UserError(f"no role {name!r} on this server", fix=f"add the reviewer first: synthgate team add-reviewer {name}")
        connection.execute(text("INSERT INTO adjudicator (name) VALUES (:name) ON CONFLICT DO NOTHING"), {"name": name})
