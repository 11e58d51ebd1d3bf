"""Overlap: a share of candidates reviewed blind by two reviewers; disagreements adjudicated; the gate exports only what they settle to accept."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from generator.examples import Example
from generator.export.selection import REJECTING_ACTIONS, iter_accepted
from generator.store.adjudication import claim_for_adjudication, count_awaiting_adjudication
from generator.store.db import read_session, write_session
from generator.store.intake import NewCandidate, add_candidates
from generator.store.models import Candidate
from generator.store.overlap import mark_overlap
from generator.store.queue import QueueError, claim_next_candidate, get_candidate, record_decision, undo_last_decision
from review_tui.queue_client import QueueClient

pytestmark = pytest.mark.both_stores  # every store test here runs on SQLite and on PostgreSQL


def _candidates(engine: Engine, n: int, prefix: str = "q") -> list[int]:
    with write_session(engine) as session:
        return add_candidates(
            session,
            [
                NewCandidate(
                    source_key=f"{prefix}{i}",
                    messages=[{"role": "user", "content": f"{prefix} {i}?"}, {"role": "assistant", "content": f"answer {i}"}],
                    tags=["t"],
                )
                for i in range(n)
            ],
        )


def _exported(engine: Engine) -> dict[int, str]:
    with read_session(engine) as session:
        return {row.candidate_id: row.messages[-1]["content"] for row in iter_accepted(session)}


def _status(engine: Engine, candidate_id: int) -> str:
    with read_session(engine) as session:
        return get_candidate(session, candidate_id=candidate_id).status


def _decide_all(client: QueueClient, verdicts: dict[int, str]) -> list[int]:
    """Claim until the queue is empty, deciding each candidate as `verdicts` says; returns the ids in claim order."""
    seen = []
    while (candidate := client.claim()) is not None:
        seen.append(candidate.id)
        verdict = verdicts[candidate.id]
        if verdict == "edit":
            edited = Example(messages=[*candidate.messages[:-1], {"role": "assistant", "content": "corrected"}])
            client.decide(candidate_id=candidate.id, action="edit", edited=edited)
        elif verdict == "reject":
            client.decide(candidate_id=candidate.id, action="reject", reasons=["factually wrong"])
        else:
            client.decide(candidate_id=candidate.id, action="accept")
    return seen


def test_overlap_is_chosen_by_content_hash_and_never_lowered(engine: Engine) -> None:
    ids = _candidates(engine, 200)
    with write_session(engine) as session:
        marked = mark_overlap(session, share=0.25, reviewers=2)
        rows = {c.id: c for c in session.exec(select(Candidate)).all()}
    expected = {i for i in ids if int(rows[i].content_hash[:4], 16) < 0.25 * 16**4}
    assert marked == len(expected) and 20 < marked < 80  # about a quarter, and exactly the hash's choice
    assert {i for i in ids if rows[i].reviews_needed == 2} == expected
    with write_session(engine) as session:
        assert mark_overlap(session, share=0.25, reviewers=2) == 0  # idempotent
        assert mark_overlap(session, share=0.0, reviewers=2) == 0  # turning it off changes no candidate


def test_two_reviewers_blind_then_adjudication_then_the_export_holds_what_they_settled(engine: Engine) -> None:
    ids = _candidates(engine, 6)
    with write_session(engine) as session:
        mark_overlap(session, share=1.0, reviewers=2)
    c1, c2, c3, c4, c5, c6 = ids
    ann = QueueClient(engine=engine, reviewer="ann", lease_seconds=60)
    bob = QueueClient(engine=engine, reviewer="bob", lease_seconds=60)

    seen_by_ann = _decide_all(ann, {c1: "accept", c2: "accept", c3: "accept", c4: "reject", c5: "reject", c6: "accept"})
    assert sorted(seen_by_ann) == ids  # she got each once, then nothing: the rest waits for a second reviewer
    assert {_status(engine, i) for i in ids} == {"pending"}  # one decision of two settles nothing
    assert _exported(engine) == {}  # the gate: one accept of two exports nothing

    seen_by_bob = _decide_all(bob, {c1: "accept", c2: "reject", c3: "accept", c4: "reject", c5: "accept", c6: "edit"})
    assert sorted(seen_by_bob) == ids
    assert ann.claim() is None and bob.claim() is None
    assert [_status(engine, i) for i in ids] == ["accepted", "pending", "accepted", "rejected", "pending", "pending"]
    assert _exported(engine) == {c1: "answer 0", c3: "answer 2"}  # agreement to accept; accept vs a different edit is a disagreement

    with read_session(engine) as session:
        assert count_awaiting_adjudication(session) == 3
    with write_session(engine) as session:
        assert claim_for_adjudication(session, adjudicator="ann", lease_seconds=60) is None  # never her own reviews
        with pytest.raises(QueueError, match="your own review"):
            record_decision(session, candidate_id=c2, reviewer="ann", action="accept", adjudicate=True)
        with pytest.raises(QueueError, match="not pending"):
            record_decision(session, candidate_id=c1, reviewer="cat", action="reject", reasons=["x"], adjudicate=True)

    cat = QueueClient(engine=engine, reviewer="cat", lease_seconds=60, adjudicate=True)
    shown = cat.claim()
    assert shown is not None and shown.id == c2
    assert [(d.reviewer, d.action) for d in cat.reviews_shown[c2]] == [("ann", "accept"), ("bob", "reject")]
    assert cat.reviews_shown[c2][1].reasons == ["factually wrong"]
    assert _decide_all(cat, {c2: "accept", c5: "reject", c6: "accept"}) == [c2, c5, c6]
    assert [_status(engine, i) for i in ids] == ["accepted", "accepted", "accepted", "rejected", "rejected", "accepted"]
    assert _exported(engine) == {c1: "answer 0", c2: "answer 1", c3: "answer 2", c6: "answer 5"}  # c6: the adjudicator kept the original
    with read_session(engine) as session:
        negatives = {row.candidate_id for row in iter_accepted(session, actions=REJECTING_ACTIONS)}
    assert negatives == {c4, c5}


def test_undoing_one_of_two_agreeing_accepts_takes_the_candidate_out_of_the_export(engine: Engine) -> None:
    (c1,) = _candidates(engine, 1)
    with write_session(engine) as session:
        mark_overlap(session, share=1.0, reviewers=2)
        for reviewer in ("ann", "bob"):
            assert claim_next_candidate(session, reviewer=reviewer, lease_seconds=60) is not None
            record_decision(session, candidate_id=c1, reviewer=reviewer, action="accept")
    assert _exported(engine) == {c1: "answer 0"}
    with write_session(engine) as session:
        undo_last_decision(session, reviewer="bob")
    assert _status(engine, c1) == "pending" and _exported(engine) == {}
    with write_session(engine) as session:  # bob sees it again (his decision is gone), ann does not
        assert claim_next_candidate(session, reviewer="ann", lease_seconds=60) is None
        again = claim_next_candidate(session, reviewer="bob", lease_seconds=60)
        assert again is not None and again.id == c1


def test_a_reviewer_cannot_decide_an_overlapped_candidate_twice(engine: Engine) -> None:
    (c1,) = _candidates(engine, 1)
    with write_session(engine) as session:
        mark_overlap(session, share=1.0, reviewers=2)
        record_decision(session, candidate_id=c1, reviewer="ann", action="accept")
        with pytest.raises(QueueError, match="already has your decision"):
            record_decision(session, candidate_id=c1, reviewer="ann", action="reject", reasons=["x"])
    assert _status(engine, c1) == "pending"


def test_a_disagreement_goes_behind_the_pending_queue_and_stays_the_adjudicators(engine: Engine) -> None:
    first, *rest = _candidates(engine, 5, prefix="d")
    with write_session(engine) as session:
        mark_overlap(session, share=1.0, reviewers=2)
    for reviewer, action in (("ann", "accept"), ("bob", "reject")):
        with write_session(engine) as session:
            assert claim_next_candidate(session, reviewer=reviewer, lease_seconds=60).id == first  # type: ignore[union-attr]
            record_decision(session, candidate_id=first, reviewer=reviewer, action=action, reasons=["off topic"])
    with read_session(engine) as session:
        orders = {c.id: c.review_order for c in session.exec(select(Candidate)).all()}
    # Reviewers' claims read the pending queue in order: the disagreement no longer sits at its head.
    assert all(orders[first] > orders[other] for other in rest)
    assert _status(engine, first) == "pending"
    with write_session(engine) as session:
        disagreement = claim_for_adjudication(session, adjudicator="cat", lease_seconds=60)
    assert disagreement is not None and disagreement.candidate.id == first


def test_decide_and_claim_never_hands_back_the_overlapped_candidate_just_decided(engine: Engine) -> None:
    ids = _candidates(engine, 3, prefix="o")
    with write_session(engine) as session:
        mark_overlap(session, share=1.0, reviewers=2)
    ann = QueueClient(engine=engine, reviewer="ann", lease_seconds=60)
    bob = QueueClient(engine=engine, reviewer="bob", lease_seconds=60)
    shown = ann.claim()
    assert shown is not None and shown.id == ids[0]
    _, moved, nxt = ann.decide_and_claim(candidate_id=shown.id, action="accept")
    # Still pending (one review of two) and open to bob, but never again to ann, even within the transaction that decided it.
    assert moved == ("pending", "waiting") and nxt is not None and nxt.id == ids[1]
    theirs = bob.claim()
    assert theirs is not None and theirs.id == ids[0]
    _, moved, _ = bob.decide_and_claim(candidate_id=theirs.id, action="accept")
    assert moved == ("pending", "accepted") and _status(engine, ids[0]) == "accepted"
