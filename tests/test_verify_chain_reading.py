"""verify's chain walk reads each decision as the ORM does, whatever shortcut it takes to read it quickly."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import col, select

from generator.export.verify_workers import ChainFacts, fingerprint
from generator.export.workers import ChainHead
from generator.store.audit import HASHED_FIELDS, decision_body, verify_chain
from generator.store.db import read_session
from generator.store.models import Decision
from tests.test_export import add, chat, decide, undo

pytestmark = pytest.mark.both_stores


def test_the_walk_sees_every_decision_as_the_orm_loads_it(engine: Engine) -> None:
    ids = add(engine, chat(0), chat(1), chat(2))
    decide(engine, ids[0], "accept")
    decide(engine, ids[1], "reject")  # reasons
    decide(engine, ids[2], "edit", messages=chat(2, answer="corrected"))  # edited messages
    undo(engine)  # undoes_id
    seen: list[dict[str, Any]] = []
    with read_session(engine) as session:
        assert list(verify_chain(session, seen=lambda body, _hash: seen.append(body))) == []
        decisions = session.exec(select(Decision).order_by(col(Decision.id))).all()
        expected = [decision_body(**{name: getattr(d, name) for name in HASHED_FIELDS}) for d in decisions]
    assert seen == expected
    assert [body["reasons"] for body in seen] == [[], ["factually wrong"], [], []]


def test_a_fingerprint_holds_the_decision_time_as_the_manifest_writes_it_on_a_whole_second() -> None:
    when = datetime(2026, 12, 5, 3, 22, 34, tzinfo=UTC)  # isoformat() leaves the microseconds out
    body = decision_body(7, 3, "ann", "accept", [], None, None, "c" * 64, None, 2.0, when, "p" * 64)
    facts = ChainFacts(ChainHead(7, "h" * 64), fingerprints=bytearray())
    facts.see(body, "h" * 64)
    assert facts.fingerprints is not None
    assert bytes(facts.fingerprints[7 * 16 : 8 * 16]) == fingerprint(3, "accept", "ann", when.isoformat(), "h" * 64, "c" * 64)
