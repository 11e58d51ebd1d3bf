"""The gate as a query: stream exactly the candidates whose latest live decision accepts them, with that decision.

"Accepted" is derived from the decisions themselves, never from `candidate.status` alone: a row
is exported only when its latest live (not undone) decision is `accept` or `edit`, was made by
a named reviewer, still hashes to the value the chain recorded, carries a proof made with the
store's key (where this machine holds the key), and is about the very content being exported. A
raw `UPDATE candidate SET status='accepted'` therefore exports nothing, and nor does a decision
inserted by raw SQL with its hash recomputed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Select, Text, cast, func, or_, select
from sqlalchemy.orm import aliased
from sqlmodel import Session

from generator.examples import messages_hash
from generator.store.audit import HASHED_FIELDS, NO_PROOF, decision_hash, latest_live_decision_id, live
from generator.store.models import ACCEPTING_ACTIONS, Candidate, Decision
from generator.store.signing import SigningKey, load_key, store_identity

_candidate = Candidate.__table__  # type: ignore[attr-defined]  # set by SQLModel when the class is made
_decision = Decision.__table__  # type: ignore[attr-defined]  # set by SQLModel when the class is made

# Rows fetched per round trip: large enough to amortise the driver, small enough to stream.
STREAM_BATCH = 2000


@dataclass(slots=True)  # not frozen: a frozen dataclass is markedly slower to build, a million times over
class AcceptedCandidate:
    """One example that passed the gate: its final content and the decision that let it through."""

    candidate_id: int
    messages: list[dict[str, Any]]  # final content: the reviewer's correction where edited
    original_messages: list[dict[str, Any]]  # what the model wrote
    content_hash: str  # of the final content, as the decision recorded it
    tags: list[str]
    run_id: str | None
    template_hash: str | None
    decision_id: int
    reviewer: str
    action: str  # "accept" or "edit"
    decided_at: datetime
    decision_hash: str
    reasons: list[str]  # the reviewer's reason tags (what a reject says is wrong)
    variant_group: str | None = None  # generate --variants: the answers to one question share it

    @property
    def edited(self) -> bool:
        return self.action == "edit"


@dataclass
class GateTally:
    """What the gate saw while streaming, beyond what it let through."""

    # Rows whose status says accepted and that a live accepting decision backs (passed or
    # refused): the other "accepted" statuses were set without one.
    backed_statuses: int = 0


@dataclass(frozen=True, slots=True)
class Refusal:
    """A candidate the decisions seem to accept but the gate still refuses, and why."""

    candidate_id: int
    decision_id: int | None
    reason: str


# Said once by export and promote when the proofs could not be checked on this machine.
PROOFS_UNCHECKED = (
    "decision proofs were not checked here: this review store's signing key is not on this machine; "
    "run `synthgate verify` on the export where the key is"
)


@dataclass(frozen=True)
class ProofCheck:
    """How the gate checks decision proofs: with the store's key, from the decision where signing began."""

    key: SigningKey | None  # None: the key is not on this machine, so proofs cannot be checked here
    # The key file's word, not the store's: raising it in the store would pass forgeries off as legacy.
    signed_from: int
    # Decisions a key would have to prove exist, but the key is not here (export and promote say so once).
    unchecked: bool = False

    def problem(self, decision_id: int, decision_hash: str, proof: str | None) -> str | None:
        """Why the decision's proof does not let it through (None: it does, it is legacy, or there is no key here)."""
        if self.key is None or decision_id < self.signed_from or self.key.proves(decision_hash, proof):
            return None
        return f"the decision {NO_PROOF}"


def proof_check(session: Session) -> ProofCheck:
    """The store's key as the gate uses it: read once per export, never created here."""
    meta = store_identity(session)
    key = load_key(meta)
    if key is not None:
        return ProofCheck(key, key.signed_from_decision)
    newest = session.execute(select(func.max(_decision.c.id))).scalar_one()
    # The store's boundary alone cannot be trusted (it may have been raised): a proof anywhere means a key exists.
    unchecked = newest is not None and (
        newest >= meta.signed_from_decision
        or session.execute(select(_decision.c.id).where(_decision.c.proof.is_not(None)).limit(1)).first() is not None
    )
    return ProofCheck(None, meta.signed_from_decision, unchecked=unchecked)


def _json_text(column: Any, name: str) -> Any:
    # JSON columns are fetched as text and decoded with orjson: several times faster than the
    # driver's json.loads, which matters at a million rows.
    return cast(column, Text).label(name)


_CANDIDATE_COLUMNS = 6  # the candidate's columns come first in _decided_rows, then the decision's
# A human's "not like this": exported only as a negative, by formats that carry labels (trl-kto).
REJECTING_ACTIONS: tuple[str, ...] = ("reject",)


def _decided_rows(actions: tuple[str, ...]) -> Select[Any]:
    # Driven by the candidate primary key, so rows arrive in id order with no sort, and the
    # decision is reached through its indexes: this streams at a million rows.
    plain = [c for c in _decision.c if c.name in HASHED_FIELDS and c.name not in ("reasons", "edited_messages")]
    return (
        select(
            _json_text(_candidate.c.messages, "candidate_messages"),
            _json_text(_candidate.c.tags, "tags"),
            _candidate.c.run_id,
            _candidate.c.template_hash,
            _candidate.c.status,
            _candidate.c.variant_group,
            *plain,
            _json_text(_decision.c.reasons, "reasons"),
            _json_text(_decision.c.edited_messages, "edited_messages"),
            _decision.c.hash,
            _decision.c.proof,
        )
        .select_from(_candidate)
        .join(_decision, _decision.c.id == latest_live_decision_id(_candidate.c.id))
        .where(_decision.c.action.in_(actions), _decision.c.kind != "canary", _overlap_settled(actions))
        .order_by(_candidate.c.id)
    )


def _overlap_settled(actions: tuple[str, ...]) -> ColumnElement[bool]:
    # An overlapped candidate passes only when as many reviewers as it needs decided the same way
    # on this very content, or when the latest decision is an adjudicator's: one accept of two is
    # not enough. A canary decision (on a filtered candidate) never lets anything through.
    d = aliased(_decision)
    agreeing = (
        select(func.count(func.distinct(d.c.reviewer)))
        .where(
            d.c.candidate_id == _candidate.c.id,
            d.c.kind == "review",
            d.c.action.in_(actions),
            d.c.content_hash == _decision.c.content_hash,
            live(d),
        )
        .scalar_subquery()
    )
    return or_(_candidate.c.reviews_needed <= 1, _decision.c.kind == "adjudication", agreeing >= _candidate.c.reviews_needed)


def hashed_fields(row: Any) -> dict[str, Any]:
    """A decision row's hashed fields, as gate_problem takes them."""
    return {name: getattr(row, name) for name in HASHED_FIELDS}


def gate_problem(
    fields: dict[str, Any],
    *,
    stored_hash: str,
    final_messages: list[dict[str, Any]],
    actions: tuple[str, ...] = ACCEPTING_ACTIONS,
    hash_proven: bool = False,
) -> str | None:
    """Why this decision cannot let `final_messages` through (None: it can). Reasons name no ids, so they group.

    `actions`: what the decision must be; REJECTING_ACTIONS only where a format holds a human's "not like this" as a negative.
    `hash_proven`: the caller recomputed this very row's hash already (verify's chain walk, same snapshot).
    """
    if fields["action"] not in actions:
        return f"the latest decision is '{fields['action']}', not an acceptance"
    if not (fields["reviewer"] or "").strip():
        return "the decision names no reviewer"
    if not hash_proven and decision_hash(**fields) != stored_hash:
        return "the decision was altered after it was made (its hash does not recompute)"
    if messages_hash(final_messages) != fields["content_hash"]:
        return "the content differs from what the decision accepted"
    return None


def iter_accepted(
    session: Session,
    *,
    tags: Iterable[str] = (),
    id_range: tuple[int, int] | None = None,
    on_refusal: Callable[[Refusal], None] | None = None,
    tally: GateTally | None = None,
    proofs: ProofCheck | None = None,
    actions: tuple[str, ...] = ACCEPTING_ACTIONS,
    grouped_only: bool = False,
) -> Iterator[AcceptedCandidate]:
    """Every candidate that passes the gate, in candidate id order, streamed in batches.

    With `actions=REJECTING_ACTIONS`, instead every candidate a named reviewer rejected, under the
    same checks (a live decision, its hash and proof, its content): the negatives of a labelled
    format. A rejected candidate is never yielded by the default call, the positives.

    With `tags`, only candidates carrying at least one of them; with `id_range` (first, last),
    only those ids. Candidates whose decisions accept them but fail a gate check are passed to
    `on_refusal` and never yielded. `tally` counts what else the gate saw. `proofs`: how to check
    decision proofs (default: with the key proof_check finds on this machine). `grouped_only`: only
    candidates of a variant group (generate --variants).
    """
    wanted = set(tags)
    if proofs is None:
        proofs = proof_check(session)
    # One statement streamed in batches (a server-side cursor where the driver has one), read
    # in one transaction: the export sees one consistent snapshot of the store.
    statement = _decided_rows(actions)
    expected_status = "accepted" if actions == ACCEPTING_ACTIONS else "rejected"
    if id_range is not None:
        statement = statement.where(_candidate.c.id.between(*id_range))
    if grouped_only:
        statement = statement.where(_candidate.c.variant_group.is_not(None))
    result = session.connection().execution_options(yield_per=STREAM_BATCH).execute(statement)
    names = tuple(result.keys())[_CANDIDATE_COLUMNS:]
    # Plain tuples unpacked by position: attribute access on a million rows costs seconds.
    for candidate_json, tags_json, run_id, template_hash, status, variant_group, *decision_values in result:
        if tally is not None and status == "accepted" and actions == ACCEPTING_ACTIONS:
            tally.backed_statuses += 1
        fields = dict(zip(names, decision_values, strict=True))
        stored_hash = fields.pop("hash")
        stored_proof = fields.pop("proof")
        try:
            row_tags = orjson.loads(tags_json)
            if wanted and wanted.isdisjoint(row_tags):
                continue
            original = orjson.loads(candidate_json)
            fields["reasons"] = orjson.loads(fields["reasons"])
            fields["edited_messages"] = orjson.loads(fields["edited_messages"])
        except orjson.JSONDecodeError:
            problem: str | None = "its stored JSON does not decode (invalid text in the database)"
        else:
            final = fields["edited_messages"] if fields["action"] == "edit" else original
            problem = gate_problem(fields, stored_hash=stored_hash, final_messages=final or [], actions=actions)
            if problem is None:
                # After the hash check, so one HMAC per decision that would otherwise pass.
                problem = proofs.problem(fields["id"], stored_hash, stored_proof)
            if problem is None and status != expected_status:
                problem = "its status disagrees with its decisions (the store is inconsistent)"
        if problem is not None:
            if on_refusal is not None:
                on_refusal(Refusal(fields["candidate_id"], fields["id"], problem))
            continue
        yield AcceptedCandidate(
            candidate_id=fields["candidate_id"],
            messages=final,
            original_messages=original,
            content_hash=fields["content_hash"],
            tags=row_tags,
            run_id=run_id,
            template_hash=template_hash,
            decision_id=fields["id"],
            reviewer=fields["reviewer"],
            action=fields["action"],
            decided_at=fields["created_at"],
            decision_hash=stored_hash,
            reasons=fields["reasons"] or [],
            variant_group=variant_group,
        )


@dataclass(frozen=True, slots=True)
class VariantPair:
    """Two answers to one question that humans told apart: `chosen` accepted, `rejected` rejected, each by its own live decision."""

    chosen: AcceptedCandidate
    rejected: AcceptedCandidate


def iter_variant_pairs(
    session: Session,
    *,
    tags: Iterable[str] = (),
    on_refusal: Callable[[Refusal], None] | None = None,
    proofs: ProofCheck | None = None,
    on_unpaired: Callable[[AcceptedCandidate], None] | None = None,
) -> Iterator[VariantPair]:
    """Every (accepted, rejected) combination within each variant group, both sides through the gate, by group then ids.

    `on_unpaired` hears of each accepted member whose group holds no rejected answer: it makes no pair.

    A pair needs an accepting human decision for `chosen` AND a rejecting one for `rejected`: each
    side is streamed by iter_accepted under every gate check. Rejections the gate refuses go to
    `on_refusal` (an accepted side's refusal is reported where it is rendered on its own).
    Memory: the decided members of grouped candidates, held until every group is complete.
    """
    proofs = proofs if proofs is not None else proof_check(session)
    groups: dict[str, tuple[list[AcceptedCandidate], list[AcceptedCandidate]]] = {}
    for item in iter_accepted(session, tags=tags, proofs=proofs, grouped_only=True):
        groups.setdefault(item.variant_group or "", ([], []))[0].append(item)
    for item in iter_accepted(session, tags=tags, on_refusal=on_refusal, proofs=proofs, actions=REJECTING_ACTIONS, grouped_only=True):
        if item.variant_group in groups:
            groups[item.variant_group][1].append(item)
    for group in sorted(groups):
        accepted, rejected = groups[group]
        if not rejected and on_unpaired is not None:
            for chosen in accepted:
                on_unpaired(chosen)
        for chosen in accepted:
            for loser in rejected:
                yield VariantPair(chosen, loser)


def count_accepted_statuses(session: Session, *, id_range: tuple[int, int] | None = None) -> int:
    """Candidates whose status says accepted (served by the queue index, no table scan)."""
    statement = select(func.count()).select_from(_candidate).where(_candidate.c.status == "accepted")
    if id_range is not None:
        statement = statement.where(_candidate.c.id.between(*id_range))
    return int(session.execute(statement).scalar_one())
