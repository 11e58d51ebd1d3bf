"""Appending a decision to the hash chain, holding the chain head's lock as briefly as the backend allows.

Every decision takes the one chain-head row's lock (so no two decisions claim the same
predecessor) and keeps it until its transaction commits: on PostgreSQL with a team it is the
queue's single file. It used to be held for five round trips per decision (advance the head, ask
who is connected, read the store identity, insert, move the head) plus a key-file read. Where the
database signs the decision (a reviewer's role, or the owner of a store that shares its key), the
lock is now taken by the one statement that also writes the decision and moves the head, and only
COMMIT follows: the database joins the decision's id and its predecessor's hash into the hash text
Python prepared, and Python re-derives the hash from the stored fields before committing, so the
chain keeps one definition (`audit.decision_body`). With the claim cut to one statement as well
(queue.py), benchmarks/team_review.py (8 reviewer roles, 100,000 queued, load 4.3-6.8 on 2 CPUs,
before and after measured back to back) went from 101 to 184-223 decisions/s, claim-to-next p95
164 -> 54-69 ms.

That one statement can also carry the COMMIT (`commit=True`): both go to the server in one round
trip (psycopg's pipeline mode), so the lock is released as soon as the server has written the
decision, not after this process has been scheduled again to read the answer and send COMMIT. With
eight reviewers on two CPUs the lock's holder often waited for a CPU in between: sampled, 3.3 of 8
backends were waiting for this lock at any moment, 1.3 with the COMMIT sent along. The hash is then
re-derived after the commit; a difference (which the tests show no text produces) is reported as
failed work, and `verify` would report the decision as a broken link: the check fails closed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text, update
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col

from generator.errors import SynthgateError, WorkFailed
from generator.examples import canonical_bytes
from generator.store.audit import HASHED_FIELDS, decision_body, decision_hash, hash_of_row
from generator.store.models import Decision, DecisionChain, utcnow
from generator.store.signing import SigningKey, key_for_signing

_IS_OWNER = "pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = 'decision'::regclass), 'MEMBER')"


@dataclass(frozen=True)
class Signer:
    """Who a connection's decisions are by, and who proves them."""

    role: str | None  # PostgreSQL reviewer role: the database names its decisions after it (None: the caller's name stands)
    database_signs: bool  # the signing trigger proves its decisions (0006) rather than this machine's key file


def signer(session: Session) -> Signer:
    """This connection's Signer, asked of the database once per connection (a pooled connection keeps its role)."""
    connection = session.connection()
    cached = connection.info.get("synthgate_signer")
    if isinstance(cached, Signer):
        return cached
    if connection.dialect.name != "postgresql":
        found = Signer(role=None, database_signs=False)
    else:
        role, is_owner = connection.execute(text(f"SELECT current_user, {_IS_OWNER}")).one()
        if not is_owner:
            found = Signer(role=str(role), database_signs=True)
        else:
            # The owner of a store whose key `team add-reviewer` shared: the trigger computes the very proof the key file would.
            shared = connection.execute(text("SELECT EXISTS (SELECT 1 FROM decision_signing_key)")).scalar_one()
            found = Signer(role=None, database_signs=bool(shared))
    if found.role is not None or not found.database_signs:
        connection.info["synthgate_signer"] = found  # a shared key can appear later: only a signer that cannot change is kept
    return found


def append_decision(session: Session, *, signed_by: Signer, commit: bool = False, **fields: Any) -> dict[str, Any]:
    """Append one decision (its fields less id, prev_hash, hash and proof) as the chain's next link; returns every stored field.

    `commit`: this is the transaction's last write, committed with it (on PostgreSQL in the same round
    trip); otherwise the caller commits.
    """
    fields["created_at"] = utcnow()
    fields["seconds"] = None if fields["seconds"] is None else round(float(fields["seconds"]), 3)
    if signed_by.role is not None:
        fields["reviewer"] = signed_by.role
    if signed_by.database_signs:
        return _append_in_one_statement(session, fields, commit=commit)
    stored = _append_with_key(session, fields)
    if commit:
        session.commit()
    return stored


def _canonical(value: Any) -> str:
    # canonical_json's very text, through orjson where it writes the same: through json.dumps these
    # 11 fields took 0.35 of a reviewer's 1.44 ms of CPU per decide-and-claim loop (under cProfile).
    return canonical_bytes(value).decode()


def hash_text_around(fields: dict[str, Any]) -> tuple[str, str, str]:
    """The canonical JSON a decision's hash is taken over, in three pieces around its id and its predecessor's hash.

    Joined as `before_id + str(id) + before_prev + prev_hash + after_prev` it is, character for
    character, canonical_json(decision_body(...)): keys sorted, `id` an integer, `prev_hash` a hex string.
    """
    hashed: dict[str, Any] = {name: fields.get(name) for name in HASHED_FIELDS} | {"id": 0, "prev_hash": ""}
    body = decision_body(**hashed)
    pieces: list[str] = []
    current = "{"
    for n, key in enumerate(sorted(body)):
        current += ("," if n else "") + _canonical(key) + ":"
        if key == "id":
            pieces.append(current)
            current = ""
        elif key == "prev_hash":
            pieces.append(current + '"')
            current = '"'
        else:
            current += _canonical(body[key])
    pieces.append(current + "}")
    before_id, before_prev, after_prev = pieces
    return before_id, before_prev, after_prev


# The chain head is locked (FOR UPDATE) by the statement that writes the decision and moves the head,
# so the lock is held for this one statement and the COMMIT after it. Under READ COMMITTED a
# statement that waited for the lock reads the head as the previous decision left it. Written for
# psycopg itself (not through SQLAlchemy): its pipeline mode sends this and COMMIT together.
_APPEND = """
    WITH head AS (
        SELECT seq + 1 AS id, head_hash AS prev_hash FROM decision_chain WHERE id = 1 FOR UPDATE
    ), hashed AS (
        SELECT id, prev_hash,
               encode(sha256(%(before_id)s::bytea || convert_to(id::text, 'UTF8') || %(before_prev)s::bytea
                             || convert_to(prev_hash, 'UTF8') || %(after_prev)s::bytea), 'hex') AS hash
        FROM head
    ), appended AS (
        INSERT INTO decision (id, prev_hash, hash, proof, candidate_id, reviewer, action, reasons, note, edited_messages,
                              content_hash, undoes_id, seconds, client, kind, session_id, created_at)
        SELECT id, prev_hash, hash, NULL, %(candidate_id)s, %(reviewer)s, %(action)s, CAST(%(reasons)s AS json), %(note)s,
               CAST(%(edited_messages)s AS json), %(content_hash)s, %(undoes_id)s, %(seconds)s, %(client)s, %(kind)s,
               %(session_id)s, %(created_at)s
        FROM hashed
        RETURNING id, prev_hash, hash, proof
    )
    UPDATE decision_chain SET seq = appended.id, head_hash = appended.hash FROM appended WHERE decision_chain.id = 1
    RETURNING appended.id, appended.prev_hash, appended.hash, appended.proof
"""


def _append_in_one_statement(session: Session, fields: dict[str, Any], *, commit: bool) -> dict[str, Any]:
    before_id, before_prev, after_prev = hash_text_around(fields)
    values = {
        **fields,
        "before_id": before_id.encode(),
        "before_prev": before_prev.encode(),
        "after_prev": after_prev.encode(),
        # JSON text as the ORM writes it (None: JSON null).
        "reasons": json.dumps(list(fields["reasons"])),
        "edited_messages": json.dumps(fields["edited_messages"]),
    }
    connection = session.connection()
    driver: Any = connection.connection.dbapi_connection  # psycopg's connection, inside the session's transaction
    dbapi_error = connection.dialect.loaded_dbapi.Error
    try:
        if commit:
            with driver.pipeline():
                cursor = driver.execute(_APPEND, values)
                driver.commit()  # the session's own commit then finds nothing left to commit
        else:
            cursor = driver.execute(_APPEND, values)
        found = cursor.fetchone()
    except dbapi_error as exc:
        # As SQLAlchemy would have raised it: callers tell a store fault from a refusal by these classes.
        raise DBAPIError.instance(_APPEND, values, exc, dbapi_error, hide_parameters=True) from exc
    assert found is not None
    stored_id, prev_hash, stored_hash, proof = found
    stored = {**fields, "id": stored_id, "prev_hash": prev_hash, "hash": stored_hash, "proof": proof}
    # The database joined the pieces; the chain's one definition re-derives the hash.
    if decision_hash(**{name: stored[name] for name in HASHED_FIELDS}) != stored_hash:
        session.rollback()
        if commit:
            raise WorkFailed(
                f"decision {stored_id}: the database hashed it differently from synthgate after it was saved",
                fix="run synthgate verify on your exports: it reports this decision as a broken link",
            )
        raise WorkFailed(f"decision {stored_id}: the database hashed it differently from synthgate; nothing was recorded")
    return stored


def _append_with_key(session: Session, fields: dict[str, Any]) -> dict[str, Any]:
    # SQLite (the whole transaction holds the write lock from BEGIN IMMEDIATE anyway), or the owner of
    # a PostgreSQL store that has not shared its key: the proof needs the hash, the hash the head.
    seq, prev_hash = session.execute(
        update(DecisionChain)
        .where(col(DecisionChain.id) == 1)
        .values(seq=col(DecisionChain.seq) + 1)
        .returning(col(DecisionChain.seq), col(DecisionChain.head_hash))
    ).one()
    key = _key(session)
    row = Decision(id=seq, prev_hash=prev_hash, hash="", **fields)
    row.hash = hash_of_row(row)
    row.proof = key.proof(row.hash)  # what raw SQL cannot forge: the key is not in the store
    session.add(row)
    session.execute(update(DecisionChain).where(col(DecisionChain.id) == 1).values(head_hash=row.hash))
    session.flush()
    return {name: getattr(row, name) for name in Decision.model_fields}


def _key(session: Session) -> SigningKey:
    # Under the lock taken above, so two machines deciding at once cannot both create a key.
    try:
        return key_for_signing(session)
    except SynthgateError:
        session.rollback()  # nothing of this decision may stay behind, not even the candidate's new status
        raise
