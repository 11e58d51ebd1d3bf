"""Team review rules in the store: which candidates overlap, who may still review one, its settled status, canaries, verdicts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, Engine, and_, bindparam, case, exists, func, or_, select, update
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from generator.store.audit import live
from generator.store.db import write_session
from generator.store.models import ACCEPTING_ACTIONS, Candidate, Decision

_decision = Decision.__table__  # type: ignore[attr-defined]  # set by SQLModel when the class is made

# Overlap is chosen by the first 4 hex digits of the content hash (65,536 buckets): deterministic,
# the same on every machine and every rerun, independent of the order candidates arrived in, and
# one index-free string comparison in SQL (equal-length lowercase hex compares like the number).
_BUCKETS = 16**4


def mark_overlap(session: Session, *, share: float, reviewers: int) -> int:
    """Give the `share` of undecided candidates chosen by their content hash `reviewers` reviews each; returns how many changed.

    Only ever raises reviews_needed on a candidate nobody decided yet, so changing the setting later
    cannot turn a decision already made into a different verdict.
    """
    if share <= 0 or reviewers < 2:
        return 0
    chosen: list[ColumnElement[bool]] = []
    if share < 1:
        threshold = f"{round(share * _BUCKETS):04x}"
        chosen.append(func.substr(col(Candidate.content_hash), 1, 4) < threshold)
    d = aliased(_decision)
    undecided = ~exists().where(d.c.candidate_id == col(Candidate.id))
    marked = session.exec(  # an UPDATE through exec(): typed as its cursor result
        update(Candidate)
        .where(col(Candidate.status) == "pending", col(Candidate.reviews_needed) < reviewers, undecided, *chosen)
        .values(reviews_needed=reviewers)
    )
    session.commit()
    return int(marked.rowcount)


def mark_overlap_as_owner(engine: Engine, *, share: float, reviewers: int) -> int:
    """mark_overlap in a transaction of its own, run where candidates are queued (generate, check: the owner's commands).

    Not from a reviewer's session: a reviewer's role may not change reviews_needed (team.add_reviewer
    grants no such right), and a reviewer's own synthgate.toml must not decide how much of everyone's
    queue is reviewed twice.
    """
    with write_session(engine) as session:
        return mark_overlap(session, share=share, reviewers=reviewers)


def _reviews_so_far(candidate_id: Any) -> Any:
    d = aliased(_decision)
    return (
        select(func.count(func.distinct(d.c.reviewer)))
        .where(d.c.candidate_id == candidate_id, d.c.kind == "review", d.c.action != "undo", live(d))
        .scalar_subquery()
    )


def open_to_reviewer(reviewer: str | BindParameter[str]) -> ColumnElement[bool]:
    """A pending candidate this reviewer may claim: not overlapped, or still short of reviews and not yet decided by them.

    The reviewer never sees the other decisions (blind), and never the same candidate twice.
    """
    d = aliased(_decision)
    reviews = func.count(func.distinct(case((d.c.kind == "review", d.c.reviewer))))
    theirs = func.count(case((d.c.reviewer == reviewer, 1)))
    # One look at the candidate's few decisions (by its index), only for an overlapped candidate.
    # Written as a count and a NOT EXISTS, PostgreSQL hashed every live decision of the reviewer's
    # on each claim instead: 1.6 ms of a 3.7 ms claim once they had made 2,000 decisions.
    short_and_not_theirs = (
        select(and_(reviews < col(Candidate.reviews_needed), theirs == 0))
        .where(d.c.candidate_id == col(Candidate.id), d.c.action != "undo", live(d))
        .scalar_subquery()
    )
    return or_(col(Candidate.reviews_needed) == 1, short_and_not_theirs)


def awaiting_adjudication() -> ColumnElement[bool]:
    """A pending overlapped candidate every needed reviewer decided: they disagreed (an agreement settles it)."""
    return and_(
        col(Candidate.status) == "pending",
        col(Candidate.reviews_needed) > 1,
        _reviews_so_far(col(Candidate.id)) >= col(Candidate.reviews_needed),
    )


def canary_for(reviewer: str) -> ColumnElement[bool]:
    """A filtered candidate this reviewer has not been shown as a canary yet."""
    d = aliased(_decision)
    shown = exists().where(d.c.candidate_id == col(Candidate.id), d.c.reviewer == reviewer, d.c.kind == "canary")
    return and_(col(Candidate.status) == "filtered", ~shown)


_EFFECT = {"accept": "accepted", "edit": "accepted", "reject": "rejected"}


def settled_status(
    session: Session, *, candidate_id: int, reviews_needed: int, adding: tuple[str, str, str, str] | None = None
) -> tuple[str, bool]:
    """The status a candidate's live decisions give it, and whether it awaits adjudication (its reviewers disagree).

    The latest adjudication is final. Otherwise, below `reviews_needed` reviewers it stays pending;
    then it is accepted when they all accepted the same content, rejected when they all rejected,
    and pending (awaiting adjudication) when they disagree. Canary decisions never count.
    `adding` (reviewer, action, content_hash, kind): a decision about to be appended, counted as the
    latest, so the status is settled before the decision chain's lock is taken.
    """
    rows: list[Any] = list(session.execute(_LIVE_VERDICTS, {"settle_candidate": candidate_id}).all())
    if adding is not None and adding[3] != "canary":
        reviewer, action, content_hash, kind = adding
        rows.append(_Pending(reviewer=reviewer, action=action, content_hash=content_hash, kind=kind))
    adjudications = [row for row in rows if row.kind == "adjudication"]
    if adjudications:
        return _EFFECT[adjudications[-1].action], False
    latest_by_reviewer = {row.reviewer: row for row in rows}
    if len(latest_by_reviewer) < reviews_needed:
        return "pending", False
    verdicts = {
        (row.action in ACCEPTING_ACTIONS, row.content_hash if row.action in ACCEPTING_ACTIONS else "")
        for row in latest_by_reviewer.values()
    }
    if len(verdicts) == 1:
        return ("accepted" if next(iter(verdicts))[0] else "rejected"), False
    return "pending", True


_settled = _decision.alias("d")
# Built once, the candidate bound per call: every decision on an overlapped candidate reads it.
_LIVE_VERDICTS = (
    select(_settled.c.reviewer, _settled.c.action, _settled.c.content_hash, _settled.c.kind)
    .where(
        _settled.c.candidate_id == bindparam("settle_candidate"),
        _settled.c.action != "undo",
        _settled.c.kind != "canary",
        live(_settled),
    )
    .order_by(_settled.c.id)
)


@dataclass(frozen=True)
class _Pending:
    reviewer: str
    action: str
    content_hash: str
    kind: str


@dataclass
class Verdict:
    """One reviewer's live decision on an overlapped candidate, as agreement reads it."""

    reviewer: str
    accepted: bool
    reasons: list[str] = field(default_factory=list)


@dataclass
class OverlappedCandidate:
    candidate_id: int
    tags: list[str]
    verdicts: list[Verdict]


def overlapped_verdicts(session: Session) -> list[OverlappedCandidate]:
    """Every overlapped candidate with its reviewers' live review decisions (adjudications and canaries left out)."""
    d = _decision.alias("d")
    c = Candidate.__table__  # type: ignore[attr-defined]
    rows = session.execute(
        select(c.c.id, c.c.tags, d.c.reviewer, d.c.action, d.c.reasons)
        .join(d, d.c.candidate_id == c.c.id)
        .where(c.c.reviews_needed > 1, d.c.kind == "review", d.c.action != "undo", live(d))
        .order_by(c.c.id, d.c.id)
    ).all()
    by_candidate: dict[int, OverlappedCandidate] = {}
    for candidate_id, tags, reviewer, action, reasons in rows:
        entry = by_candidate.setdefault(candidate_id, OverlappedCandidate(candidate_id, list(tags or []), []))
        entry.verdicts = [v for v in entry.verdicts if v.reviewer != reviewer]  # the latest live decision per reviewer
        entry.verdicts.append(Verdict(reviewer, action in ACCEPTING_ACTIONS, list(reasons or [])))
    return list(by_candidate.values())
