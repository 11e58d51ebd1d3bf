"""The one-statement chain append on PostgreSQL: the hash the database joins is synthgate's hash, under any text, under contention."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlmodel import col, select

from generator.examples import Example, Message, canonical_json
from generator.store.audit import decision_body, verify_chain
from generator.store.chain import hash_text_around
from generator.store.db import open_store, read_session, write_session
from generator.store.models import Decision
from generator.store.queue import claim_next_candidate, record_decision
from generator.store.signing import load_key, store_identity
from generator.store.team import add_reviewer
from tests.test_export import add, chat

AWKWARD = ['quote " backslash \\ slash /', "tab\tnewline\ncontrol \x01\x1f del \x7f", "é 漢字 🙂 \u2028 \u00a0", ""]


@pytest.mark.parametrize("text", AWKWARD)
def test_the_three_pieces_join_into_the_canonical_json_the_hash_is_taken_over(text: str) -> None:
    fields: dict[str, Any] = {
        "candidate_id": 7,
        "reviewer": text or "r",
        "action": "edit",
        "reasons": [text, "x"],
        "note": text,
        "edited_messages": [{"role": "user", "content": text}, {"role": "assistant", "content": text + "!"}],
        "content_hash": "ab" * 32,
        "undoes_id": None,
        "seconds": 1.2345,
        "created_at": datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
    }
    before_id, before_prev, after_prev = hash_text_around(fields)
    for decision_id, prev_hash in ((1, ""), (123456, "f" * 64)):
        joined = before_id + str(decision_id) + before_prev + prev_hash + after_prev
        assert joined == canonical_json(decision_body(**fields, id=decision_id, prev_hash=prev_hash))


def _connect_as(url: str, role: str) -> Engine:
    return open_store(make_url(url).set(username=role).render_as_string(hide_password=False))


def test_reviewer_roles_deciding_at_once_leave_one_signed_chain(pg_store_url: str, test_role_prefix: str) -> None:
    owner = open_store(pg_store_url)
    roles = [f"{test_role_prefix}chain{n}" for n in range(4)]
    for role in roles:
        add_reviewer(owner, role)
    add(owner, *[chat(n) for n in range(40)])
    errors: list[BaseException] = []
    start = threading.Barrier(len(roles))

    def review(role: str, n: int) -> None:
        engine = _connect_as(pg_store_url, role)
        try:
            start.wait()
            while True:
                with write_session(engine) as session:
                    candidate = claim_next_candidate(session, reviewer=role, lease_seconds=60)
                    if candidate is None:
                        return
                    text = AWKWARD[(candidate.id + n) % len(AWKWARD)]
                    if candidate.id % 5 == 0:  # a correction carrying the awkward text in the edited turns
                        messages = [*candidate.messages[:-1], Message(role="assistant", content=f"fixed {text}")]
                        record_decision(session, candidate_id=candidate.id, reviewer=role, action="edit", edited=Example(messages=messages))
                    elif candidate.id % 3 == 0:
                        record_decision(
                            session, candidate_id=candidate.id, reviewer=role, action="reject", reasons=[text or "dull"], note=text
                        )
                    else:
                        record_decision(session, candidate_id=candidate.id, reviewer=role, action="accept", note=text, seconds=2.5)
        except BaseException as exc:  # noqa: BLE001 - reported below, in the test's thread
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=review, args=(role, n)) for n, role in enumerate(roles)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with read_session(owner) as session:
        key = load_key(store_identity(session))
        made = session.exec(select(Decision).order_by(col(Decision.id))).all()
        assert key is not None
        assert list(verify_chain(session, key=key)) == []  # hashes, links, head and every proof hold
    assert [d.id for d in made] == list(range(1, 41))
    assert sorted(d.candidate_id for d in made) == list(range(1, 41))  # each candidate decided once
    assert {d.reviewer for d in made} <= set(roles)
    owner.dispose()
