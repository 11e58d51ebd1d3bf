"""The review queue API under the TUI: leases, renewal, release, skip, undo, filters, and index use at scale."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, text

from generator.examples import Example
from generator.store.audit import verify_chain
from generator.store.db import open_store, read_session, write_session
from generator.store.intake import NewCandidate, add_candidates
from generator.store.models import Candidate, Flag, utcnow
from generator.store.queue import (
    QueueError,
    QueueFilter,
    claim_next_candidate,
    queue_counts,
    record_decision,
    release_leases,
    renew_lease,
    skip_candidate,
    undo_last_decision,
)

pytestmark = pytest.mark.both_stores  # every store test runs on SQLite and on PostgreSQL

LEASE = 60


_keys = itertools.count()


def queue(engine: Engine, count: int, **fields: Any) -> list[int]:
    with write_session(engine) as session:
        return add_candidates(
            session,
            [
                NewCandidate(
                    source_key=f"k{next(_keys)}",
                    messages=[{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": f"answer {i}"}],
                    **fields,
                )
                for i in range(count)
            ],
        )


def claim(engine: Engine, reviewer: str, filters: QueueFilter | None = None, **kwargs: Any) -> int | None:
    with write_session(engine) as session:
        view = claim_next_candidate(session, reviewer=reviewer, lease_seconds=LEASE, filters=filters, **kwargs)
        return view.id if view else None


def row(engine: Engine, candidate_id: int) -> Candidate:
    with read_session(engine) as session:
        found = session.get(Candidate, candidate_id)
        assert found is not None
        return found


def test_two_reviewers_get_different_candidates_and_each_gets_theirs_back(engine: Engine) -> None:
    ids = queue(engine, 3)
    ann, bob = claim(engine, "ann"), claim(engine, "bob")
    assert (ann, bob) == (ids[0], ids[1])
    # Asking again (a restart) returns what each already holds, not a new candidate.
    assert claim(engine, "ann") == ids[0]
    assert claim(engine, "bob") == ids[1]
    assert row(engine, ids[0]).lease_owner == "ann"


def test_an_expired_lease_returns_the_candidate_to_the_pool(engine: Engine) -> None:
    ids = queue(engine, 1)
    assert claim(engine, "ann") == ids[0]
    assert claim(engine, "bob") is None
    later = utcnow() + timedelta(seconds=LEASE + 1)
    assert claim(engine, "bob", now=later) == ids[0]
    assert row(engine, ids[0]).lease_owner == "bob"


def test_renewing_extends_the_lease_and_fails_once_it_is_lost(engine: Engine) -> None:
    (cid,) = queue(engine, 1)
    claim(engine, "ann")
    before = row(engine, cid).lease_expires_at
    assert before is not None
    with write_session(engine) as session:
        assert renew_lease(session, candidate_id=cid, reviewer="ann", lease_seconds=LEASE * 10)
    after = row(engine, cid).lease_expires_at
    assert after is not None and after > before
    with write_session(engine) as session:
        assert not renew_lease(session, candidate_id=cid, reviewer="bob", lease_seconds=LEASE)
        record_decision(session, candidate_id=cid, reviewer="ann", action="accept")
    with write_session(engine) as session:
        assert not renew_lease(session, candidate_id=cid, reviewer="ann", lease_seconds=LEASE)


def test_release_gives_back_everything_the_reviewer_holds_and_nothing_else(engine: Engine) -> None:
    ids = queue(engine, 3)
    claim(engine, "ann")
    claim(engine, "bob")
    with write_session(engine) as session:
        record_decision(session, candidate_id=ids[2], reviewer="ann", action="accept")
        undo_last_decision(session, reviewer="ann", lease_seconds=LEASE)  # ann now holds ids[0] and ids[2]
    with write_session(engine) as session:
        assert release_leases(session, reviewer="ann") == 2
    assert [row(engine, i).lease_owner for i in ids] == [None, "bob", None]


def test_skip_moves_the_candidate_behind_every_pending_one(engine: Engine) -> None:
    ids = queue(engine, 3)
    assert claim(engine, "ann") == ids[0]
    with write_session(engine) as session:
        skip_candidate(session, candidate_id=ids[0], reviewer="ann")
    order = []
    for _ in range(3):
        cid = claim(engine, "ann")
        assert cid is not None
        order.append(cid)
        with write_session(engine) as session:
            record_decision(session, candidate_id=cid, reviewer="ann", action="accept")
    assert order == [ids[1], ids[2], ids[0]]


def test_only_the_lease_holder_can_skip(engine: Engine) -> None:
    ids = queue(engine, 2)
    claim(engine, "ann")
    with write_session(engine) as session:
        skip_candidate(session, candidate_id=ids[0], reviewer="bob")
    assert row(engine, ids[0]).lease_owner == "ann"
    assert row(engine, ids[0]).review_order == 0


def test_a_decision_on_a_candidate_leased_to_someone_else_is_refused_until_the_lease_expires(engine: Engine) -> None:
    (cid,) = queue(engine, 1)
    claim(engine, "ann")
    with write_session(engine) as session, pytest.raises(QueueError, match="being reviewed by ann"):
        record_decision(session, candidate_id=cid, reviewer="bob", action="accept")
    with write_session(engine) as session:
        session.execute(text("UPDATE candidate SET lease_expires_at = :past"), {"past": utcnow() - timedelta(seconds=1)})
    with write_session(engine) as session:
        record_decision(session, candidate_id=cid, reviewer="bob", action="reject", reasons=["duplicate"])
    assert row(engine, cid).status == "rejected"


def test_undo_walks_back_newest_first_as_many_times_as_asked(engine: Engine) -> None:
    ids = queue(engine, 3)
    with write_session(engine) as session:
        record_decision(session, candidate_id=ids[0], reviewer="ann", action="accept")
        record_decision(session, candidate_id=ids[1], reviewer="ann", action="reject", reasons=["unhelpful"])
        record_decision(session, candidate_id=ids[2], reviewer="bob", action="accept")
        edited = Example(messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": "better"}])
    with write_session(engine) as session:
        first = undo_last_decision(session, reviewer="ann", lease_seconds=LEASE)
        second = undo_last_decision(session, reviewer="ann", lease_seconds=LEASE)
        assert undo_last_decision(session, reviewer="ann", lease_seconds=LEASE) is None
    assert first is not None and second is not None
    assert (first.candidate_id, second.candidate_id) == (ids[1], ids[0])
    assert [row(engine, i).status for i in ids] == ["pending", "pending", "accepted"]
    # Undone candidates come back to the reviewer who undid them.
    assert row(engine, ids[0]).lease_owner == "ann"
    with write_session(engine) as session:
        record_decision(session, candidate_id=ids[0], reviewer="ann", action="edit", edited=edited)
        again = undo_last_decision(session, reviewer="ann", lease_seconds=LEASE)
    assert again is not None and again.candidate_id == ids[0]
    with read_session(engine) as session:
        assert list(verify_chain(session)) == []


def test_tag_filter_matches_whole_tags_and_treats_like_wildcards_literally(engine: Engine) -> None:
    billing = queue(engine, 1, tags=["billing"])
    edge_case = queue(engine, 1, tags=["edge_case"])
    edge_dash = queue(engine, 1, tags=["edge-case"])
    assert claim(engine, "ann", QueueFilter(tag="bill")) is None
    assert claim(engine, "bob", QueueFilter(tag="edge_case")) == edge_case[0]
    assert claim(engine, "cy", QueueFilter(tag="edge-case")) == edge_dash[0]
    assert claim(engine, "di", QueueFilter(tag="billing")) == billing[0]
    with read_session(engine) as session:
        assert queue_counts(session, filters=QueueFilter(tag="edge_case"))["pending"] == 1


def test_flagged_and_run_filters(engine: Engine) -> None:
    plain = queue(engine, 2)
    flagged = queue(engine, 1, flags=[Flag(kind="length", detail="long")])
    assert claim(engine, "ann", QueueFilter(flagged_only=True)) == flagged[0]
    assert claim(engine, "bob", QueueFilter(run_id="nope")) is None
    assert claim(engine, "bob") == plain[0]


def test_concurrent_claimers_on_separate_connections_never_share_a_candidate(store_url: str) -> None:
    url = store_url
    ids = queue(open_store(url), 40)
    claimed: dict[str, list[int]] = {}

    def reviewer(name: str) -> None:
        engine = open_store(url)  # its own connection pool, as another process would have
        mine = claimed.setdefault(name, [])
        for _ in range(10):
            with write_session(engine) as session:
                view = claim_next_candidate(session, reviewer=name, lease_seconds=LEASE)
                assert view is not None
                mine.append(view.id)
            with write_session(engine) as session:
                # Refused if another reviewer held it or had decided it: a shared claim would fail here.
                record_decision(session, candidate_id=view.id, reviewer=name, action="accept")
        engine.dispose()

    threads = [threading.Thread(target=reviewer, args=(f"r{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [cid for mine in claimed.values() for cid in mine]
    assert len(everything) == 40
    assert sorted(everything) == sorted(ids)


def _statements(engine: Engine, work: Callable[[], None]) -> list[tuple[str, Sequence[Any]]]:
    seen: list[tuple[str, Sequence[Any]]] = []  # SQLite's qmark style: the parameters are a tuple

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        if "candidate" in statement and not statement.startswith(("INSERT", "EXPLAIN")):
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        work()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen


@pytest.mark.sqlite_only  # reads SQLite's EXPLAIN QUERY PLAN
def test_claim_skip_and_renew_never_scan_the_candidate_table(engine: Engine) -> None:
    """At a million candidates a scan costs ~0.4 s per keypress; every queue statement must seek an index."""
    queue(engine, 5)

    def work() -> None:
        with write_session(engine) as session:
            view = claim_next_candidate(session, reviewer="ann", lease_seconds=LEASE)
            assert view is not None
            claim_next_candidate(session, reviewer="ann", lease_seconds=LEASE)
            renew_lease(session, candidate_id=view.id, reviewer="ann", lease_seconds=LEASE)
            skip_candidate(session, candidate_id=view.id, reviewer="ann")
            claim_next_candidate(session, reviewer="ann", lease_seconds=LEASE)
            release_leases(session, reviewer="ann")

    statements = _statements(engine, work)
    assert len(statements) >= 6
    with engine.connect() as connection:
        for statement, parameters in statements:
            plan = " | ".join(str(r[-1]) for r in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters))
            assert "SCAN candidate" not in plan, (statement, plan)
            where = statement.partition("WHERE")[2]
            if "lease_owner = ?" in where and "candidate.id = ?" not in where:
                # "What does this reviewer hold" must not walk the whole pending queue.
                assert "ix_candidate_lease" in plan, (statement, plan)


def test_a_running_app_keeps_its_candidate_and_a_killed_one_frees_it_within_a_minute(engine: Engine) -> None:
    """Leases follow liveness (issue 11, point 5), on an explicit clock: short leases, renewed every third."""
    from generator.config import ReviewSection
    from review_tui.queue_client import QueueClient

    lease = ReviewSection().lease_seconds
    every = QueueClient(engine=engine, reviewer="ann", lease_seconds=lease).renew_every_seconds
    assert lease <= 60 and every == lease / 3
    (cid,) = queue(engine, 1)
    tick = utcnow()
    with write_session(engine) as session:
        assert claim_next_candidate(session, reviewer="ann", lease_seconds=lease, now=tick) is not None
    # Ten minutes of an open app renewing on schedule: nobody else is ever handed the candidate.
    for _ in range(int(600 / every)):
        with write_session(engine) as session:
            just_before_next_renewal = tick + timedelta(seconds=every * 0.99)
            assert claim_next_candidate(session, reviewer="bob", lease_seconds=lease, now=just_before_next_renewal) is None
            tick += timedelta(seconds=every)
            assert renew_lease(session, candidate_id=cid, reviewer="ann", lease_seconds=lease, now=tick)
    # Killed right after a renewal: the candidate is back in the queue within about a minute.
    with write_session(engine) as session:
        taken = claim_next_candidate(session, reviewer="bob", lease_seconds=lease, now=tick + timedelta(seconds=61))
    assert taken is not None and taken.id == cid
