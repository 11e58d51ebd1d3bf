"""The review app's store queries beside the queue (generator/store/browse.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from generator.store import browse
from generator.store.db import read_session, write_session
from generator.store.intake import NewCandidate, add_candidates
from generator.store.queue import QueueFilter, claim_next_candidate, record_decision
from tests.review_snapshot_app import build_review_store, conversation

pytestmark = pytest.mark.both_stores


def test_search_reads_user_and_assistant_turns_in_any_case_and_escaped_text(engine: Engine) -> None:
    build_review_store(engine)
    with write_session(engine) as session:
        add_candidates(
            session,
            [NewCandidate(source_key="quotes", messages=conversation('What does "100% café_1" mean?', "A literal.\nSecond line."))],
        )
    with read_session(engine) as session:
        assert browse.search_pending(session, text="PayRoll", reviewer="ann", filters=QueueFilter()) == [4]
        # Quotes, %, _ and non-ASCII are matched as text, not as JSON escapes or LIKE wildcards.
        assert browse.search_pending(session, text='"100% café_1"', reviewer="ann", filters=QueueFilter()) == [6]
        assert browse.search_pending(session, text="100x café", reviewer="ann", filters=QueueFilter()) == []
        assert browse.search_pending(session, text="literal.\nsecond", reviewer="ann", filters=QueueFilter()) == [6]
        assert browse.search_pending(session, text="documented features", reviewer="ann", filters=QueueFilter()) == []  # system only
        assert browse.search_pending(session, text="team", reviewer="ann", filters=QueueFilter(tag="billing")) == [1, 5]


def test_a_search_result_is_leased_to_one_reviewer_and_decided_ones_are_passed_over(engine: Engine) -> None:
    build_review_store(engine)
    with write_session(engine) as session:
        ann = browse.claim_candidate(session, candidate_id=4, reviewer="ann", lease_seconds=60)
        assert ann is not None and ann.id == 4
        assert browse.claim_candidate(session, candidate_id=4, reviewer="bob", lease_seconds=60) is None  # on ann's screen
        assert browse.claim_candidate(session, candidate_id=4, reviewer="ann", lease_seconds=60) is not None  # hers still
        nxt = claim_next_candidate(session, reviewer="bob", lease_seconds=60)
        assert nxt is not None and nxt.id != 4
        record_decision(session, candidate_id=4, reviewer="ann", action="accept")
        assert browse.claim_candidate(session, candidate_id=4, reviewer="ann", lease_seconds=60) is None  # decided
    with read_session(engine) as session:
        assert browse.search_pending(session, text="payroll", reviewer="ann", filters=QueueFilter()) == []


def test_tags_and_statuses_for_the_header_and_the_tag_check(engine: Engine) -> None:
    build_review_store(engine)
    with read_session(engine) as session:
        assert browse.tag_in_store(session, "edge:hostile") and not browse.tag_in_store(session, "edge")
        assert browse.pending_tags(session)["billing"] == 2
        assert browse.status_if_matching(session, candidate_id=2, filters=QueueFilter(flagged_only=True), reviewer="ann") is None
        assert browse.status_if_matching(session, candidate_id=1, filters=QueueFilter(flagged_only=True), reviewer="ann") == "pending"
        assert browse.filtered_ids(session, filters=QueueFilter()) == []
