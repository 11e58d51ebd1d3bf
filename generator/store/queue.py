"""The review queue API: claim the next candidate under a lease, record decisions, undo, skip, count.

This is the only way decisions are written. Every function takes the session explicitly and
returns plain pydantic views, never live ORM rows, so the UI cannot write around it.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import (
    Boolean,
    ColumnElement,
    Connection,
    Integer,
    Row,
    String,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal,
    or_,
    text,
    true,
    update,
)
from sqlalchemy import (
    select as core_select,
)
from sqlmodel import Session, col, select

from generator.examples import Example, Message, messages_hash
from generator.store.audit import live
from generator.store.chain import Signer, append_decision, signer
from generator.store.models import (
    CANDIDATE_STATUSES,
    Candidate,
    Decision,
    Flag,
    Run,
    SeedRecord,
    utcnow,
)
from generator.store.overlap import awaiting_adjudication, canary_for, open_to_reviewer, settled_status

REVIEW_ACTIONS = ("accept", "reject", "edit")
_CANDIDATES = Candidate.__table__  # type: ignore[attr-defined]  # set by SQLModel when the class is made
_EFFECT = {"accept": "accepted", "edit": "accepted", "reject": "rejected"}


# The candidate's columns a reviewer is shown (view_of_row reads these): claims return only these.
_SHOWN = [
    _CANDIDATES.c[name]
    for name in (
        "id",
        "messages",
        "tags",
        "status",
        "flags",
        "filter_reason",
        "filter_match",
        "nearest_seed_id",
        "nearest_seed_similarity",
        "run_id",
        "model",
        "template_hash",
        "seed_ids",
        "content_hash",
        "created_at",
        "variant_index",
        "variant_group",
    )
]


class QueueError(ValueError):
    """A decision the queue refuses (e.g. the candidate was already decided by someone else)."""


class QueueFilter(BaseModel):
    tag: str | None = None
    run_id: str | None = None
    flagged_only: bool = False


class SeedView(BaseModel):
    id: str
    messages: list[Message]
    tags: list[str]
    source: str
    line: int


class CandidateView(BaseModel):
    id: int
    messages: list[Message]
    tags: list[str]
    status: str
    flags: list[Flag]
    filter_reason: str | None
    filter_match: str | None
    nearest_seed: SeedView | None
    nearest_seed_similarity: float | None
    run_id: str | None
    model: str | None
    template: str | None
    template_hash: str | None
    seed_ids: list[str]
    content_hash: str
    created_at: datetime
    # generate --variants: this answer's place in its group (1-based) and the group's size; None outside a group.
    variant_position: int | None = None
    variant_size: int | None = None


class DecisionView(BaseModel):
    id: int
    candidate_id: int
    reviewer: str
    action: str
    reasons: list[str]
    note: str | None
    edited_messages: list[Message] | None
    seconds: float | None
    created_at: datetime
    undoes_id: int | None
    hash: str
    kind: str = "review"  # review | adjudication | canary


def _require_reviewer(reviewer: str) -> str:
    name = (reviewer or "").strip()
    if not name:
        raise QueueError("a decision needs a named reviewer")
    return name


def filter_clauses(filters: QueueFilter | None) -> list[ColumnElement[bool]]:
    """The WHERE clauses that keep the candidates `filters` select (none: every candidate)."""
    clauses: list[ColumnElement[bool]] = []
    if filters is None:
        return clauses
    if filters.tag:
        # Tags are a JSON list; match the quoted tag so 'bill' does not match 'billing', and
        # escape LIKE's wildcards so 'edge_case' does not match 'edge-case'.
        literal = filters.tag.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        clauses.append(cast(Candidate.tags, String).like(f'%"{literal}"%', escape="\\"))
    if filters.run_id:
        clauses.append(col(Candidate.run_id) == filters.run_id)
    if filters.flagged_only:
        clauses.append(cast(Candidate.flags, String) != "[]")
    return clauses


@dataclass(frozen=True)
class NextClaim:
    """The reviewer's next candidate, leased in the same transaction as their decision (`record_decision_and_claim`)."""

    lease_seconds: int
    filters: QueueFilter | None = None
    canary_rate: float = 0.0


def claim_next_candidate(
    session: Session,
    *,
    reviewer: str,
    lease_seconds: int,
    filters: QueueFilter | None = None,
    now: datetime | None = None,
    canary_rate: float = 0.0,
    rng: random.Random | None = None,
) -> CandidateView | None:
    """Reserve the next pending candidate for `reviewer` and return it (None: nothing left).

    One atomic UPDATE ... WHERE id = (SELECT ...): two reviewers can never hold the same candidate.
    A candidate the reviewer already holds is returned first (e.g. after a restart). An overlapped
    candidate is offered until it has the reviews it needs, never twice to one reviewer. With
    `canary_rate`, that share of claims is a filtered candidate shown as if pending (a canary).
    """
    reviewer = _require_reviewer(reviewer)
    if session.get_bind().dialect.name == "postgresql":
        # A lease is not a decision: one lost to a server crash only puts the candidate back in the pool,
        # so its commit need not wait for the disk (2-3 ms of each claim here). Decisions still do.
        session.execute(text("SET LOCAL synchronous_commit = off"))
    claimed = _lease_next(session, reviewer, NextClaim(lease_seconds, filters, canary_rate), now=now, rng=rng)
    session.commit()
    return None if claimed is None else _candidate_view(session, claimed)


def _lease_next(
    session: Session,
    reviewer: str,
    claim: NextClaim,
    *,
    now: datetime | None = None,
    rng: random.Random | None = None,
    passing_over: int = 0,
) -> Row[Any] | None:
    """Lease the reviewer's next candidate (the caller commits); `passing_over`: a candidate id not to take (the one just decided)."""
    now = now or utcnow()
    expires = now + timedelta(seconds=claim.lease_seconds)
    values = {"claim_reviewer": reviewer, "claim_now": now, "claim_expires": expires, "claim_passing_over": passing_over}
    filters = claim.filters or QueueFilter()
    postgresql = session.get_bind().dialect.name == "postgresql"
    held_statement, claim_statement = _claim_statements(filters.tag, filters.run_id, filters.flagged_only, postgresql)
    # A canary is shown only when the reviewer holds nothing (the held candidate comes back first).
    if (
        claim.canary_rate > 0
        and (rng or random).random() < claim.canary_rate
        and session.exec(held_statement, params=values).first() is None
    ):
        free = or_(col(Candidate.lease_expires_at).is_(None), col(Candidate.lease_expires_at) <= now)
        canary = _lease_canary(session, reviewer=reviewer, expires=expires, free=and_(free, col(Candidate.id) != passing_over))
        if canary is not None:
            return canary
    # RETURNING the columns shown: the view then reads nothing more of the row (one round trip less per claim).
    return _core(session).execute(claim_statement, values).first()


@functools.lru_cache(maxsize=64)
def _claim_statements(tag: str | None, run_id: str | None, flagged_only: bool, postgresql: bool = False) -> tuple[Any, Any]:
    """The held-candidate query and the claim for these filters, built once; the reviewer and the times are bound per call.

    Building them per claim (the overlap clause aliases the decision table twice) cost a reviewer's
    process ~3 ms of CPU per claim (its decide-and-claim loop on PostgreSQL: 9.7 -> 6.8 ms, load ~5,
    under cProfile), with 8 reviewers on 2 CPUs the largest share of each claim-to-next. The claim is
    one statement: it renews the candidate the reviewer holds, if any (COALESCE evaluates the next
    candidate's subquery, and takes its row lock, only when they hold none), else leases the next one.
    """
    matching = filter_clauses(QueueFilter(tag=tag, run_id=run_id, flagged_only=flagged_only))
    times = _CANDIDATES.c.lease_expires_at.type  # bound as the column binds them, on either backend
    reviewer, now = bindparam("claim_reviewer", type_=String), bindparam("claim_now", type_=times)
    passing_over = bindparam("claim_passing_over", type_=Integer)
    held = (
        select(Candidate.id)
        .where(col(Candidate.status) == "pending", col(Candidate.lease_owner) == reviewer, col(Candidate.lease_expires_at) > now, *matching)
        .order_by(col(Candidate.review_order), col(Candidate.id))
        .limit(1)
    )
    free = or_(col(Candidate.lease_expires_at).is_(None), col(Candidate.lease_expires_at) <= now)
    next_id = (
        select(Candidate.id)
        # Not the candidate just decided in this transaction: its decision is appended after this claim.
        .where(col(Candidate.status) == "pending", free, col(Candidate.id) != passing_over, open_to_reviewer(reviewer), *matching)
        .order_by(col(Candidate.review_order), col(Candidate.id))
        .limit(1)
        # PostgreSQL: a row another reviewer is claiming right now is passed over, not waited for
        # (and not lost: without it, the loser's UPDATE re-checks a row that is no longer free and
        # claims nothing although the queue is full). SQLite takes the write lock first and ignores it.
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    claim = (
        update(Candidate)
        .where(
            col(Candidate.id) == func.coalesce(held.scalar_subquery(), next_id),
            col(Candidate.status) == "pending",
            or_(free, col(Candidate.lease_owner) == reviewer),
        )
        .values(lease_owner=reviewer, lease_expires_at=bindparam("claim_expires", type_=times))
        .returning(*_SHOWN)
    )
    if postgresql:
        # The claimed row with what it is shown with, in one statement (SQLite has no UPDATE in a WITH):
        # a round trip less on every claim.
        claimed = claim.cte("claimed")
        shown = core_select(claimed, *_surroundings(claimed.c.run_id, claimed.c.variant_group)).select_from(
            claimed.outerjoin(_SEEDS, _SEEDS.c.id == claimed.c.nearest_seed_id)
        )
        return held, shown
    return held, claim


def lease_candidate(
    session: Session, next_id: Any, *, status: str, reviewer: str, expires: datetime, free: ColumnElement[bool]
) -> Row[Any] | None:
    """Lease the candidate `next_id` selects if it is still free and in `status`; the leased row, or None when another reviewer won it.

    The caller commits.
    """
    return (
        _core(session)
        .execute(
            update(Candidate)
            .where(col(Candidate.id) == next_id, col(Candidate.status) == status, free)
            .values(lease_owner=reviewer, lease_expires_at=expires)
            .returning(*_SHOWN)
        )
        .first()
    )


def _lease_canary(session: Session, *, reviewer: str, expires: datetime, free: ColumnElement[bool]) -> Row[Any] | None:
    # A candidate the checks filtered, leased like any other (and shown as if pending: _candidate_view).
    next_id = select(Candidate.id).where(canary_for(reviewer), free).order_by(col(Candidate.id)).limit(1).scalar_subquery()
    return lease_candidate(session, next_id, status="filtered", reviewer=reviewer, expires=expires, free=free)


def _candidate_view(session: Session, claimed: Row[Any]) -> CandidateView:
    """The leased candidate as the reviewer sees it: a canary (a filtered one) exactly as a pending one would be
    (its filter reason hidden): rejecting it is what an attentive reviewer does."""
    view = view_of_row(session, claimed)
    if view.status == "filtered":
        return view.model_copy(update={"status": "pending", "filter_reason": None, "filter_match": None})
    return view


def renew_lease(session: Session, *, candidate_id: int, reviewer: str, lease_seconds: int, now: datetime | None = None) -> bool:
    """Extend the reviewer's lease on a candidate still on their screen; False if they no longer hold it."""
    reviewer = _require_reviewer(reviewer)
    now = now or utcnow()
    renewed = session.exec(  # an UPDATE through exec(): typed as the cursor result it is, with its rowcount
        update(Candidate)
        .where(col(Candidate.id) == candidate_id, col(Candidate.status) == "pending", col(Candidate.lease_owner) == reviewer)
        .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
    )
    session.commit()
    return renewed.rowcount == 1


def release_leases(session: Session, *, reviewer: str) -> int:
    """Give back every candidate the reviewer holds (on quit, or when their filters change); returns how many."""
    released = session.exec(
        update(Candidate)
        .where(col(Candidate.lease_owner) == reviewer, col(Candidate.status) == "pending")
        .values(lease_owner=None, lease_expires_at=None)
    )
    session.commit()
    return released.rowcount


def skip_candidate(session: Session, *, candidate_id: int, reviewer: str) -> None:
    """Send a candidate to the back of the queue and release it: it comes back later."""
    back = _back_of_queue(session)
    session.execute(
        update(Candidate)
        .where(col(Candidate.id) == candidate_id, col(Candidate.status) == "pending", col(Candidate.lease_owner) == reviewer)
        .values(lease_owner=None, lease_expires_at=None, review_order=back)
    )
    session.commit()


def record_decision(session: Session, **decision: Any) -> DecisionView:
    """Append a reviewer's accept, reject or edit (= accept a corrected version) and commit it
    (`record_decision_and_claim`'s arguments, less `then_claim`)."""
    return record_decision_and_claim(session, **decision).decision


@dataclass(frozen=True)
class Decided:
    """A recorded decision, where it left its candidate, and the candidate leased next."""

    decision: DecisionView
    # The candidate's status after the decision, as queue_counts counts it for its reviewer ("waiting":
    # pending, but not theirs to review any more); None when it does not match the claim's filters.
    status: str | None
    next_candidate: CandidateView | None  # leased by the same transaction (None: nothing left, or no claim asked)


def record_decision_and_claim(
    session: Session,
    *,
    candidate_id: int,
    reviewer: str,
    action: str,
    then_claim: NextClaim | None = None,
    reasons: Sequence[str] = (),
    note: str | None = None,
    edited: Example | None = None,
    seconds: float | None = None,
    client: str = "terminal",
    session_id: str | None = None,
    adjudicate: bool = False,
) -> Decided:
    """Append a reviewer's accept, reject or edit (= accept a corrected version) and commit it; with
    `then_claim`, the reviewer's next candidate is leased in the same transaction.

    `client` says where it was made: "terminal" (synthgate review) or "browser" (synthgate serve);
    `session_id`, in which sitting. `adjudicate`: the final word on an overlapped candidate its
    reviewers disagree on. A decision on a canary (a filtered candidate leased to this reviewer as
    if pending) is recorded as such and changes nothing.
    The candidate must be pending. A reject needs at least one reason; an edit needs the
    corrected example, which must differ from the candidate.

    The review app's loop is decide, then show the next candidate. As one transaction it is four
    round trips on PostgreSQL (BEGIN; the candidate's update; the claim, which returns what the next
    candidate is shown with; the decision with its COMMIT), where deciding and then claiming took
    fourteen: with 8 reviewers on 2 CPUs every round trip costs the reviewer's process and the server
    CPU time. The claim comes before the decision's append, which takes the chain lock: the lock is
    held for the last statement only. benchmarks/team_review.py, 8 reviewer roles: claim-to-next
    p95 45.9 -> 28.7-29.7 ms (5 runs), with this and the other changes of 2026-12-05.
    """
    reviewer = _require_reviewer(reviewer)
    who = signer(session)
    reviewer = who.role or reviewer  # a reviewer's role on PostgreSQL: the database records the decision under it
    if action not in REVIEW_ACTIONS:
        raise QueueError(f"unknown action {action!r}; use one of {', '.join(REVIEW_ACTIONS)}")
    reasons = [r.strip() for r in reasons if r.strip()]
    if action == "reject" and not reasons:
        raise QueueError("a rejection needs a reason")
    if (action == "edit") != (edited is not None):
        raise QueueError("an edited example goes with the 'edit' action, and only with it")
    edited_messages = edited.messages_as_dicts() if edited is not None else None
    filters = (then_claim.filters if then_claim else None) or QueueFilter()
    # One statement reads what the decision needs and moves the candidate, which it locks: the overlap
    # checks below then read a settled history. Someone else's live lease means the candidate is on
    # their screen: deciding it here would race them (an expired lease is fair game).
    moved = (
        _core(session)
        .execute(
            _decide_statement(filters.tag, filters.run_id, filters.flagged_only),
            {
                "decide_id": candidate_id,
                "decide_reviewer": reviewer,
                "decide_now": utcnow(),
                "decide_effect": _EFFECT[action],
                "decide_canary": not adjudicate,
            },
        )
        .first()
    )
    if moved is None:
        session.rollback()
        raise QueueError(_refusal(session, candidate_id))
    status, reviews_needed, candidate_hash, matching = moved
    content_hash = messages_hash(edited_messages) if edited_messages is not None else candidate_hash
    if edited_messages is not None and content_hash == candidate_hash:
        session.rollback()
        raise QueueError("the edit changes nothing; accept the candidate instead")
    # A decision on a filtered candidate is one on a canary: the statement left it filtered, and
    # took it off the reviewer's screen.
    kind = "canary" if status == "filtered" else "adjudication" if adjudicate else "review"
    overlapped = reviews_needed > 1
    if kind != "canary" and (overlapped or adjudicate):
        refusal = _overlap_refusal(session, candidate_id=candidate_id, reviewer=reviewer, adjudicate=adjudicate)
        if refusal is not None:
            session.rollback()
            raise QueueError(refusal)
    if overlapped and kind != "canary":  # settled before the chain lock is taken, counting this decision
        status = _settle(session, candidate_id=candidate_id, reviews_needed=reviews_needed, adding=(reviewer, action, content_hash, kind))
    claimed = _lease_next(session, reviewer, then_claim, passing_over=candidate_id) if then_claim else None
    # Read before the append, in this transaction: after its COMMIT it would take a transaction of its own.
    next_candidate = None if claimed is None else _candidate_view(session, claimed)
    stored = append_decision(
        session,
        signed_by=who,
        commit=True,
        candidate_id=candidate_id,
        reviewer=reviewer,
        action=action,
        reasons=reasons,
        note=(note or "").strip() or None,
        edited_messages=edited_messages,
        content_hash=content_hash,
        undoes_id=None,
        seconds=seconds,
        client=client,
        kind=kind,
        session_id=session_id,
    )
    return Decided(
        decision=DecisionView.model_validate(stored),
        # This reviewer decided it: pending now means it waits for another reviewer or the adjudicator.
        status=("waiting" if status == "pending" else status) if matching else None,
        next_candidate=next_candidate,
    )


@functools.lru_cache(maxsize=64)
def _decide_statement(tag: str | None, run_id: str | None, flagged_only: bool) -> Any:
    """The UPDATE a decision starts with, built once per filters (building it per decision cost more CPU than running it).

    It takes the candidate off the reviewer's screen and gives it the decision's effect (an overlapped
    one stays pending until settled; a canary stays filtered), and returns what the decision needs:
    the new status, the reviews it needs, its content hash, and whether it matches `filters`.
    """
    times = _CANDIDATES.c.lease_expires_at.type
    reviewer, now = bindparam("decide_reviewer", type_=String), bindparam("decide_now", type_=times)
    not_held_by_another = or_(
        col(Candidate.lease_owner).is_(None), col(Candidate.lease_owner) == reviewer, col(Candidate.lease_expires_at) <= now
    )
    # A canary: a filtered candidate leased to this reviewer as if pending (never under --adjudicate).
    canary = and_(bindparam("decide_canary", type_=Boolean), col(Candidate.status) == "filtered", col(Candidate.lease_owner) == reviewer)
    matching = filter_clauses(QueueFilter(tag=tag, run_id=run_id, flagged_only=flagged_only))
    return (
        update(Candidate)
        .where(col(Candidate.id) == bindparam("decide_id"), or_(and_(col(Candidate.status) == "pending", not_held_by_another), canary))
        .values(
            # SET reads the row as it was: the status before this decision.
            status=case(
                (col(Candidate.status) == "filtered", "filtered"),
                (col(Candidate.reviews_needed) > 1, "pending"),
                else_=bindparam("decide_effect", type_=String),
            ),
            lease_owner=None,
            lease_expires_at=None,
        )
        .returning(col(Candidate.status), col(Candidate.reviews_needed), col(Candidate.content_hash), and_(true(), *matching))
    )


def _refusal(session: Session, candidate_id: int) -> str:
    """Why the candidate could not be decided (read after the refused update was rolled back)."""
    candidate = session.get(Candidate, candidate_id)
    if candidate is None:
        return f"no candidate {candidate_id}"
    if candidate.status == "pending" and candidate.lease_owner:
        return f"candidate {candidate_id} is being reviewed by {candidate.lease_owner}"
    return f"candidate {candidate_id} is not pending (status {candidate.status}); someone may have decided it"


def _overlap_refusal(session: Session, *, candidate_id: int, reviewer: str, adjudicate: bool) -> str | None:
    """Why this reviewer may not decide this candidate now (None: they may)."""
    this = col(Candidate.id) == candidate_id
    if adjudicate:
        if session.exec(select(Candidate.id).where(this, awaiting_adjudication())).first() is None:
            return f"candidate {candidate_id} does not await adjudication"
        reviewed = session.exec(
            select(Decision.id).where(
                col(Decision.candidate_id) == candidate_id, col(Decision.reviewer) == reviewer, col(Decision.kind) == "review"
            )
        ).first()
        if reviewed is not None:
            return f"candidate {candidate_id} has your own review: another adjudicator must settle it"
        return None
    if session.exec(_OPEN_TO_REVIEWER, params={"open_candidate": candidate_id, "open_reviewer": reviewer}).first() is None:
        return f"candidate {candidate_id} already has your decision, or every review it needs"
    return None


# Built once (the overlap clause aliases the decision table twice): an overlapped decision asks it every time.
_OPEN_TO_REVIEWER = select(Candidate.id).where(
    col(Candidate.id) == bindparam("open_candidate"), open_to_reviewer(bindparam("open_reviewer", type_=String))
)


def _settle(session: Session, *, candidate_id: int, reviews_needed: int, adding: tuple[str, str, str, str] | None = None) -> str:
    status, disputed = settled_status(session, candidate_id=candidate_id, reviews_needed=reviews_needed, adding=adding)
    values: dict[str, Any] = {"status": status}
    if disputed:
        # Only an adjudicator takes it now (in id order): behind every pending candidate, so reviewers'
        # claims, which read the pending queue in order, stop stepping over it. Left in place,
        # disagreements piled up at the queue's head: 47 of them, each checked on every claim, 1.3 ms
        # of a claim midway through benchmarks/team_review.py.
        values["review_order"] = _back_of_queue(session)
    session.execute(update(Candidate).where(col(Candidate.id) == candidate_id).values(**values))
    return status


def _back_of_queue(session: Session) -> int:
    # Behind every pending candidate; decided ones do not matter. Restricting to pending lets the
    # queue index answer in one seek instead of reading a million rows.
    return (session.exec(select(func.max(col(Candidate.review_order))).where(col(Candidate.status) == "pending")).one() or 0) + 1


def undo_last_decision(session: Session, *, reviewer: str, lease_seconds: int = 900, client: str = "terminal") -> DecisionView | None:
    """Undo this reviewer's most recent live decision (an undo is itself a decision).

    The candidate returns to pending, leased to the reviewer so it is shown to them again.
    Returns the undo decision, or None when there is nothing left to undo.
    """
    reviewer = _require_reviewer(reviewer)
    who = signer(session)
    reviewer = who.role or reviewer
    # live() is a NOT EXISTS: it walks the reviewer's decisions newest first and stops at the first
    # live one, probing the undoes_id index; NOT IN would collect every undo in the database first.
    decisions = Decision.__table__  # type: ignore[attr-defined]  # set by SQLModel when the class is made
    target = session.exec(
        select(Decision)
        .where(col(Decision.reviewer) == reviewer, col(Decision.action) != "undo", live(decisions))
        .order_by(col(Decision.id).desc())
        .limit(1)
    ).first()
    if target is None:
        return None
    candidate = session.get(Candidate, target.candidate_id)
    overlapped = candidate is not None and candidate.reviews_needed > 1
    this = col(Candidate.id) == target.candidate_id
    lease = {"lease_owner": reviewer, "lease_expires_at": utcnow() + timedelta(seconds=lease_seconds)}
    if target.kind == "canary":  # a canary's candidate stays filtered; only the decision is undone
        changed = session.exec(update(Candidate).where(this, col(Candidate.status) == "filtered").values(lease_owner=None))
    elif overlapped:  # its status is settled again from the decisions that remain
        changed = session.exec(update(Candidate).where(this, col(Candidate.status) != "filtered").values(status="pending", **lease))
    else:
        changed = session.exec(
            update(Candidate).where(this, col(Candidate.status) == _EFFECT[target.action]).values(status="pending", **lease)
        )
    if changed.rowcount != 1:
        session.rollback()
        raise QueueError(f"candidate {target.candidate_id} changed since decision {target.id}; it cannot be undone")
    view = _append_decision(
        session,
        who,
        candidate_id=target.candidate_id,
        reviewer=reviewer,
        action="undo",
        reasons=[],
        note=None,
        edited_messages=None,
        content_hash=target.content_hash,
        undoes_id=target.id,
        seconds=None,
        client=client,
        kind=target.kind,
        session_id=None,
    )
    if overlapped and target.kind != "canary" and candidate is not None:
        _settle(session, candidate_id=target.candidate_id, reviews_needed=candidate.reviews_needed)
    session.commit()
    return view


def _append_decision(session: Session, who: Signer, **fields: Any) -> DecisionView:
    # The chain head's lock is the last thing a decision takes (see generator.store.chain).
    return DecisionView.model_validate(append_decision(session, signed_by=who, **fields))


def _decision_view(row: Decision) -> DecisionView:
    return DecisionView.model_validate(row, from_attributes=True)


def _core(session: Session) -> Connection:
    """The session's connection, for the statements run on every decision and claim.

    Run through the ORM session, each was copied and its cache key computed again on every call
    (~0.17 ms of the reviewer's CPU per statement, under cProfile); on the connection, the statement
    built once is reused as it is. They change rows only by statements, never loaded ORM objects.
    """
    return session.connection()


_ONE_CANDIDATE = core_select(*_SHOWN).where(_CANDIDATES.c.id == bindparam("candidate_id"))


def get_candidate(session: Session, *, candidate_id: int) -> CandidateView:
    row = _core(session).execute(_ONE_CANDIDATE, {"candidate_id": candidate_id}).first()
    if row is None:
        raise QueueError(f"no candidate {candidate_id}")
    return view_of_row(session, row)


_SEEDS = SeedRecord.__table__  # type: ignore[attr-defined]
_RUNS = Run.__table__  # type: ignore[attr-defined]


def _surroundings(run_id: Any, variant_group: Any) -> list[Any]:
    """What showing a candidate reads besides its row: its nearest seed (joined by the caller), its run's template,
    and the size of its variant group."""
    return [
        _SEEDS.c.id.label("seed_id"),
        _SEEDS.c.messages.label("seed_messages"),
        _SEEDS.c.tags.label("seed_tags"),
        _SEEDS.c.source.label("seed_source"),
        _SEEDS.c.line.label("seed_line"),
        core_select(_RUNS.c.template).where(_RUNS.c.id == run_id).scalar_subquery().label("run_template"),
        core_select(func.count())
        .select_from(_CANDIDATES)
        .where(_CANDIDATES.c.variant_group == variant_group)
        .scalar_subquery()
        .label("group_size"),
    ]


# One round trip for a candidate read on its own (it was three); the seed a row of NULLs when it has none.
_SURROUNDINGS = core_select(*_surroundings(bindparam("run_id", type_=String), bindparam("variant_group", type_=String))).select_from(
    core_select(literal(1)).subquery().outerjoin(_SEEDS, _SEEDS.c.id == bindparam("seed_id", type_=String))
)


def view_of_row(session: Session, row: Row[Any]) -> CandidateView:
    """The view of a candidate's row as a lease returns it (its shown columns); the surroundings are read
    unless the row carries them (a PostgreSQL claim)."""
    around: Any = row if "run_template" in row._fields else None
    if around is None and (row.nearest_seed_id or row.run_id or row.variant_group):
        binds = {"seed_id": row.nearest_seed_id, "run_id": row.run_id, "variant_group": row.variant_group}
        around = _core(session).execute(_SURROUNDINGS, binds).one()
    seed = None
    if around is not None and around.seed_id is not None:
        seed = SeedView(
            id=around.seed_id,
            messages=[Message(**m) for m in around.seed_messages],
            tags=around.seed_tags,
            source=around.seed_source,
            line=around.seed_line,
        )
    return CandidateView(
        id=row.id,
        messages=[Message(**m) for m in row.messages],
        tags=row.tags,
        status=row.status,
        flags=[Flag(**f) for f in row.flags],
        filter_reason=row.filter_reason,
        filter_match=row.filter_match,
        nearest_seed=seed,
        nearest_seed_similarity=row.nearest_seed_similarity,
        run_id=row.run_id,
        model=row.model,
        template=None if around is None else around.run_template,
        template_hash=row.template_hash,
        seed_ids=row.seed_ids,
        content_hash=row.content_hash,
        created_at=row.created_at,
        variant_position=None if row.variant_index is None else row.variant_index + 1,
        variant_size=around.group_size if row.variant_group and around is not None else None,
    )


def queue_counts(session: Session, *, filters: QueueFilter | None = None, reviewer: str | None = None) -> dict[str, int]:
    """Candidates per status (every status present, zero when empty).

    With `reviewer`, "pending" counts only what that reviewer may still take, and "waiting" the rest:
    overlapped candidates they decided (or that wait for the adjudicator), pending but not theirs to review.
    """
    rows = session.exec(select(Candidate.status, func.count()).where(*filter_clauses(filters)).group_by(Candidate.status)).all()
    counts = dict.fromkeys(CANDIDATE_STATUSES, 0)
    counts.update({status: n for status, n in rows})
    if reviewer is not None:
        closed = ~open_to_reviewer(reviewer)
        counts["waiting"] = session.exec(
            select(func.count()).select_from(Candidate).where(col(Candidate.status) == "pending", closed, *filter_clauses(filters))
        ).one()
        counts["pending"] -= counts["waiting"]
    return counts
