"""The decision history: which decisions are live, how a decision's hash is computed, how the chain is re-proved."""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import ColumnElement, String, exists, func, type_coerce
from sqlalchemy import select as core_select
from sqlalchemy.orm import aliased
from sqlmodel import Session, select

from generator.examples import canonical_hash
from generator.store.models import Decision, DecisionChain

if TYPE_CHECKING:
    from generator.store.signing import SigningKey

GENESIS = ""


def decision_body(
    id: int,  # noqa: A002 (named as the column it hashes: HASHED_FIELDS is read from this signature)
    candidate_id: int,
    reviewer: str,
    action: str,
    reasons: list[str],
    note: str | None,
    edited_messages: list[dict[str, Any]] | None,
    content_hash: str,
    undoes_id: int | None,
    seconds: float | None,
    created_at: datetime,
    prev_hash: str,
) -> dict[str, Any]:
    """What a decision's hash is taken over: every field of the decision and the previous decision's hash."""
    return {
        "id": id,
        "candidate_id": candidate_id,
        "reviewer": reviewer,
        "action": action,
        "reasons": list(reasons),
        "note": note,
        "edited_messages": edited_messages,
        "content_hash": content_hash,
        "undoes_id": undoes_id,
        # Rounded: databases keep microseconds but not every float digit.
        "seconds": None if seconds is None else round(seconds, 3),
        "created_at": created_at.isoformat(timespec="microseconds"),
        "prev_hash": prev_hash,
    }


def decision_hash(**fields: Any) -> str:
    """sha256 over every field of a decision and the previous decision's hash (the canonical JSON of decision_body)."""
    return body_hash(decision_body(**fields))


def body_hash(body: dict[str, Any]) -> str:
    """The hash of a decision_body."""
    if _plain(body):
        try:
            return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
        except orjson.JSONEncodeError:
            pass  # a lone surrogate: canonical_hash decides, as it always did
    return canonical_hash(body)


def _plain(body: dict[str, Any]) -> bool:
    """A body of the shape decisions have, whose canonical bytes are orjson's (canonical_bytes would take orjson's too).

    Only the types examples.canonical_bytes hands to orjson pass, so the hash is the same bytes'
    hash; the walk over a decision's fields by shape costs ~1 us against ~3 us for the general
    walk (verify hashes every decision of a store: 30,000 decisions, 17.5 -> N us each).
    """
    seconds, reasons, edited, note, undoes = body["seconds"], body["reasons"], body["edited_messages"], body["note"], body["undoes_id"]
    return (
        type(body["id"]) is int
        and type(body["candidate_id"]) is int
        and type(body["reviewer"]) is str
        and type(body["action"]) is str
        and type(body["content_hash"]) is str
        and type(body["created_at"]) is str
        and type(body["prev_hash"]) is str
        and (note is None or type(note) is str)
        and (undoes is None or type(undoes) is int)
        and (seconds is None or type(seconds) is int or (type(seconds) is float and (seconds == 0 or 1e-4 <= abs(seconds) < 1e16)))
        # A generator only for a non-empty list, none for the text fields: with one isoformat less per
        # decision (verify_workers), the walk over 1,000,000 decisions went from 17.2 to 15.6 CPU s.
        and (not reasons or all(type(reason) is str for reason in reasons))
        and (
            edited is None
            or (
                type(edited) is list
                and all(type(turn) is dict and all(type(k) is str and type(v) is str for k, v in turn.items()) for turn in edited)
            )
        )
    )


# The fields a decision's hash covers, named as decision_body takes them.
HASHED_FIELDS: tuple[str, ...] = tuple(inspect.signature(decision_body).parameters)
assert HASHED_FIELDS[0] == "id" and HASHED_FIELDS[-1] == "prev_hash"  # verify_chain reads them by position


def hash_of_row(decision: Decision) -> str:
    return decision_hash(**{name: getattr(decision, name) for name in HASHED_FIELDS})


_decision = Decision.__table__  # type: ignore[attr-defined]


def live(decision: Any) -> ColumnElement[bool]:
    """True for a decision no undo points at (a NOT EXISTS that probes the undoes_id index)."""
    undo = aliased(_decision)
    return ~exists().where(undo.c.undoes_id == decision.c.id)


def latest_live_decision_id(candidate_id: Any) -> Any:
    """Scalar subquery: the id of the candidate's latest live non-undo decision (NULL: undecided)."""
    decision = aliased(_decision)
    return (
        select(func.max(decision.c.id))
        .where(decision.c.candidate_id == candidate_id, decision.c.action != "undo", live(decision))
        .scalar_subquery()
    )


# On SQLite these columns are read as the text SQLite keeps and decoded by _sqlite_text_reader:
# SQLAlchemy's processors for them (a JSON wrapper per value; a timezone decorator around
# fromisoformat per timestamp) cost the walk over 1,000,000 decisions 2.7 CPU s (15.6 -> 12.9 without them).
_SQLITE_TEXT = ("reasons", "edited_messages", "created_at")


def _sqlite_text_reader(connection: Any) -> Callable[[Any], tuple[Any, ...]] | None:
    """On SQLite: a row read with _SQLITE_TEXT as text -> its HASHED_FIELDS values, as SQLAlchemy's own types would give them."""
    if connection.dialect.name != "sqlite":
        return None
    dialect = connection.dialect
    # The columns' own processors, for any value but the usual ones.
    as_json = _decision.c.reasons.type.dialect_impl(dialect).result_processor(dialect, None)
    as_time = _decision.c.created_at.type.dialect_impl(dialect).result_processor(dialect, None)

    def read(row: Any) -> tuple[Any, ...]:
        values = row[:-2]  # the hash and proof after them
        decision_id, candidate_id, reviewer, action, reasons, note, edited, content_hash, undoes_id, seconds, created_at, prev_hash = values
        # What SQLAlchemy does for a timestamp SQLite keeps without an offset (UTCDateTime, after fromisoformat).
        when = datetime.fromisoformat(created_at) if type(created_at) is str else None
        return (
            decision_id,
            candidate_id,
            reviewer,
            action,
            [] if reasons == "[]" else as_json(reasons),  # the usual JSON values without a call
            note,
            None if edited == "null" else as_json(edited),
            content_hash,
            undoes_id,
            seconds,
            when.replace(tzinfo=UTC) if when is not None and when.utcoffset() is None else as_time(created_at),
            prev_hash,
        )

    return read


@dataclass(frozen=True)
class ChainBreak:
    decision_id: int | None
    problem: str


NO_PROOF = "carries no valid proof: it was not written by synthgate's review path"


def verify_chain(
    session: Session,
    *,
    key: SigningKey | None = None,
    batch: int = 5000,
    proven: bytearray | None = None,
    seen: Callable[[dict[str, Any], str], None] | None = None,
) -> Iterator[ChainBreak]:
    """Walk every decision in order; yield each place where the chain does not hold.

    Catches a row altered (its hash no longer matches), removed from the middle (the next row's
    prev_hash points at nothing) or from the end (the chain head remembers more). With the store's
    `key`, also a row added behind synthgate's back: its hash and the chain head can be recomputed
    by anyone, its proof only with the key.

    `proven`, when given, gets byte `id` set for each decision whose hash recomputes and (with a
    key, from where signing began) whose proof holds: `verify` then need not recompute them per
    line in the same snapshot (they were computed twice, a third of verify's time). `seen`, when
    given, is called with every row's decision_body and stored hash, in id order (verify learns
    each candidate's latest decision from the same walk).
    """
    previous_hash = GENESIS
    expected_id = 1
    last_id = 0
    # Plain rows, not ORM objects: loading a million Decision objects cost more than hashing them.
    connection = session.connection()
    raw = _sqlite_text_reader(connection)
    columns = [type_coerce(_decision.c[name], String) if raw and name in _SQLITE_TEXT else _decision.c[name] for name in HASHED_FIELDS]
    while True:
        statement = core_select(*columns, _decision.c.hash, _decision.c.proof).where(_decision.c.id > last_id).order_by(_decision.c.id)
        rows = connection.execute(statement.limit(batch)).all()
        if not rows:
            break
        for row in rows:
            # Positional: a dict of the fields and a keyword call cost ~1.5 us a decision.
            body, stored_hash, stored_proof = decision_body(*(raw(row) if raw else row[:-2])), row[-2], row[-1]
            row_id = body["id"]
            if seen is not None:
                seen(body, stored_hash)
            if row_id != expected_id:
                yield ChainBreak(row_id, f"decisions {expected_id}..{row_id - 1} are missing")
            if body["prev_hash"] != previous_hash:
                yield ChainBreak(row_id, "prev_hash does not match the previous decision (a decision was removed or altered)")
            if body_hash(body) != stored_hash:
                yield ChainBreak(row_id, "hash does not match the decision's content (the decision was altered)")
            elif key is not None and row_id >= key.signed_from_decision and not key.proves(stored_hash, stored_proof):
                yield ChainBreak(row_id, NO_PROOF)
            elif proven is not None:
                if row_id >= len(proven):
                    proven.extend(bytes(row_id + 1 - len(proven)))
                proven[row_id] = 1
            previous_hash, expected_id, last_id = stored_hash, row_id + 1, row_id
    head = session.get(DecisionChain, 1)
    if head is None:
        yield ChainBreak(None, "the chain head is missing")
    elif head.seq != last_id or head.head_hash != previous_hash:
        yield ChainBreak(None, f"the chain head records {head.seq} decisions but {last_id} remain (decisions were removed)")
