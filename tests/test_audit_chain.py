"""The decision hash chain holds for honest writes and breaks visibly under tampering."""

from __future__ import annotations

import sqlite3

from sqlalchemy import Engine

from generator.examples import Example
from generator.store.audit import verify_chain
from generator.store.db import read_session, write_session
from generator.store.intake import NewCandidate, add_candidates
from generator.store.queue import record_decision, undo_last_decision
from generator.store.signing import load_key, store_identity


def conversation(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": f"answer {i}"}]


def decide_some(engine: Engine) -> None:
    with write_session(engine) as session:
        ids = add_candidates(session, [NewCandidate(source_key=str(i), messages=conversation(i)) for i in range(4)])
        record_decision(session, candidate_id=ids[0], reviewer="ann", action="accept", seconds=2.5)
        record_decision(session, candidate_id=ids[1], reviewer="bob", action="reject", reasons=["off-policy"], note="wrong fee")
        edited = Example(messages=[{"role": "user", "content": "question 2"}, {"role": "assistant", "content": "better answer"}])
        record_decision(session, candidate_id=ids[2], reviewer="ann", action="edit", edited=edited)
        undo_last_decision(session, reviewer="ann")


def breaks(engine: Engine, *, with_key: bool = False) -> list[str]:
    with read_session(engine) as session:
        key = load_key(store_identity(session)) if with_key else None
        return [b.problem for b in verify_chain(session, key=key)]


def tamper(engine: Engine, *statements: str) -> None:
    """What an attacker with file access could do: drop the guard, rewrite history."""
    raw = sqlite3.connect(str(engine.url.database))
    raw.execute("DROP TRIGGER decision_no_update")
    raw.execute("DROP TRIGGER decision_no_delete")
    for statement in statements:
        raw.execute(statement)
    raw.commit()
    raw.close()


def test_honest_history_verifies(engine: Engine) -> None:
    decide_some(engine)
    assert breaks(engine) == []
    assert breaks(engine, with_key=True) == []


def test_a_decision_added_with_raw_sql_keeps_the_chain_but_lacks_the_proof(engine: Engine) -> None:
    """Hash and chain head can be recomputed by anyone who reads the scheme; the proof needs the key."""
    from tests.test_decision_forgery import write_unsigned_decision

    decide_some(engine)
    forged = write_unsigned_decision(str(engine.url.database), candidate_id=4)
    assert breaks(engine) == []
    assert breaks(engine, with_key=True) == ["carries no valid proof: it was not written by synthgate's review path"]
    with read_session(engine) as session:
        assert [b.decision_id for b in verify_chain(session, key=load_key(store_identity(session)))] == [forged]


def test_an_altered_decision_is_detected(engine: Engine) -> None:
    decide_some(engine)
    tamper(engine, "UPDATE decision SET action = 'accept', reasons = '[]' WHERE id = 2")
    assert any("altered" in b for b in breaks(engine))


def test_a_decision_removed_from_the_middle_is_detected(engine: Engine) -> None:
    decide_some(engine)
    tamper(engine, "DELETE FROM decision WHERE id = 2")
    assert any("missing" in b for b in breaks(engine))


def test_the_last_decision_removed_is_detected(engine: Engine) -> None:
    decide_some(engine)
    tamper(engine, "DELETE FROM decision WHERE id = 4")
    assert any("were removed" in b for b in breaks(engine))
