"""Attention checks: each decision's client, session and dwell; decisions faster than reading marked; canaries caught, never exported."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import select
from typer.testing import CliRunner

from generator.attention import SKIM_CHARS_PER_SECOND, attention_by_reviewer, reading_floor_seconds
from generator.cli import app
from generator.export.selection import REJECTING_ACTIONS, iter_accepted
from generator.store.db import read_session, write_session
from generator.store.intake import NewCandidate, add_candidates
from generator.store.models import Decision
from generator.store.queue import claim_next_candidate, get_candidate, undo_last_decision
from review_tui.queue_client import QueueClient

pytestmark = pytest.mark.both_stores  # every store test here runs on SQLite and on PostgreSQL


def _add(engine: Engine, *, pending: int, filtered: int, answer: str = "short answer") -> tuple[list[int], list[int]]:
    def make(key: str, status: str) -> NewCandidate:
        return NewCandidate(
            source_key=key,
            messages=[{"role": "user", "content": f"question {key}"}, {"role": "assistant", "content": answer}],
            status=status,
            filter_reason="exact duplicate" if status == "filtered" else None,
            filter_match="seed:x-001" if status == "filtered" else None,
        )

    with write_session(engine) as session:
        real = add_candidates(session, [make(f"p{i}", "pending") for i in range(pending)])
        bad = add_candidates(session, [make(f"f{i}", "filtered") for i in range(filtered)])
    return real, bad


def test_the_reading_floor_grows_with_the_candidate() -> None:
    assert reading_floor_seconds(0, min_dwell_ms=500) == pytest.approx(0.5)
    assert reading_floor_seconds(SKIM_CHARS_PER_SECOND * 10, min_dwell_ms=500) == pytest.approx(10.5)


def test_decisions_record_client_session_and_dwell_and_fast_ones_are_marked(engine: Engine) -> None:
    long_answer = "word " * 120  # 600 characters: 10 s of skimming
    real, _ = _add(engine, pending=3, filtered=0, answer=long_answer)
    ann = QueueClient(engine=engine, reviewer="ann", lease_seconds=60, client_kind="browser")
    for seconds in (0.4, 2.0, 30.0):
        shown = ann.claim()
        assert shown is not None
        ann.decide(candidate_id=shown.id, action="accept", seconds=seconds)
    with read_session(engine) as session:
        rows = session.exec(select(Decision)).all()
        assert {(row.client, row.session_id, row.kind) for row in rows} == {("browser", ann.session_id, "review")}
        figures = attention_by_reviewer(session, min_dwell_ms=500)["ann"]
    assert figures["decisions"] == 3 and figures["median_dwell_seconds"] == 2.0
    # 0.4 s and 2 s are below the 11 s it takes to skim 600 characters; 30 s is not.
    assert figures["below_reading_floor"] == 2 and figures["share_below_reading_floor"] == pytest.approx(2 / 3, abs=1e-4)
    assert figures["sessions"] == 1
    with read_session(engine) as session:  # marking is only a mark: the decisions stand
        assert {get_candidate(session, candidate_id=i).status for i in real} == {"accepted"}


def test_canaries_look_pending_change_nothing_are_counted_and_never_exported(engine: Engine) -> None:
    real, bad = _add(engine, pending=2, filtered=2)
    ann = QueueClient(engine=engine, reviewer="ann", lease_seconds=60, canary_rate=1.0)  # every claim a canary while any is left
    first = ann.claim()
    assert first is not None and first.id == bad[0]
    assert (first.status, first.filter_reason, first.filter_match) == ("pending", None, None)  # shown as if pending
    ann.decide(candidate_id=first.id, action="accept", seconds=5.0)  # missed
    second = ann.claim()
    assert second is not None and second.id == bad[1]  # never the same canary twice
    ann.decide(candidate_id=second.id, action="reject", reasons=["duplicate"], seconds=5.0)  # caught
    third = ann.claim()
    assert third is not None and third.id == real[0]  # no canary left for her: the real queue
    ann.decide(candidate_id=third.id, action="accept", seconds=5.0)
    with read_session(engine) as session:
        assert [get_candidate(session, candidate_id=i).status for i in bad] == ["filtered", "filtered"]
        assert [row.candidate_id for row in iter_accepted(session)] == [real[0]]  # the accepted canary is not exported
        assert list(iter_accepted(session, actions=REJECTING_ACTIONS)) == []  # nor the rejected one as a negative
        figures = attention_by_reviewer(session, min_dwell_ms=500)["ann"]
    assert (figures["decisions"], figures["canaries_shown"], figures["canaries_caught"]) == (1, 2, 1)
    with write_session(engine) as session:  # undoing a real decision, then a canary, leaves the canary filtered
        undo_last_decision(session, reviewer="ann")
        undone = undo_last_decision(session, reviewer="ann")
        assert undone is not None and undone.kind == "canary"
        assert get_candidate(session, candidate_id=bad[1]).status == "filtered"


def test_canary_rate_mixes_canaries_in_at_that_share(engine: Engine) -> None:
    _add(engine, pending=0, filtered=300)
    rng = random.Random(7)
    shown = 0
    with write_session(engine) as session:
        for _ in range(200):
            candidate = claim_next_candidate(session, reviewer="ann", lease_seconds=60, canary_rate=0.25, rng=rng)
            shown += candidate is not None
    assert 30 < shown < 70  # about a quarter of 200 claims, with a fixed seed


def test_stats_shows_attention_and_agreement(engine: Engine, tmp_path: Path) -> None:
    _add(engine, pending=1, filtered=1)
    ann = QueueClient(engine=engine, reviewer="ann", lease_seconds=60, canary_rate=1.0)
    for _ in range(2):
        shown = ann.claim()
        assert shown is not None
        ann.decide(candidate_id=shown.id, action="reject", reasons=["unhelpful"], seconds=0.2)
    (tmp_path / "synthgate.toml").write_text("[review]\nmin_dwell_ms = 100\n")
    result = CliRunner().invoke(app, ["--project", str(tmp_path), "--db", str(engine.url), "stats", "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert stats["attention"]["ann"]["canaries_caught"] == 1 and stats["attention"]["ann"]["below_reading_floor"] == 1
    assert stats["agreement"]["overlapped"] == 0
    table = CliRunner().invoke(app, ["--project", str(tmp_path), "--db", str(engine.url), "stats"])
    assert table.exit_code == 0 and "Attention (marks, not verdicts)" in table.output and "1 / 1" in table.output


def test_the_apps_decide_and_claim_carries_canaries_and_moves_the_counts(engine: Engine) -> None:
    real, bad = _add(engine, pending=2, filtered=1)
    ann = QueueClient(engine=engine, reviewer="ann", lease_seconds=60, canary_rate=1.0)
    first = ann.claim()
    assert first is not None and first.id == bad[0]
    # The decision and the next lease in one transaction: a canary decided, then the real queue.
    done, moved, shown = ann.decide_and_claim(candidate_id=first.id, action="reject", reasons=["duplicate"], seconds=5.0)
    assert done.kind == "canary" and moved == ("filtered", "filtered")  # a canary moves no count
    assert shown is not None and shown.id == real[0] and shown.status == "pending"
    done, moved, shown = ann.decide_and_claim(candidate_id=shown.id, action="accept", seconds=5.0)
    assert done.kind == "review" and moved == ("pending", "accepted")
    assert shown is not None and shown.id == real[1]
    with read_session(engine) as session:
        assert get_candidate(session, candidate_id=real[1]).status == "pending"  # leased, not decided
        assert [row.candidate_id for row in iter_accepted(session)] == [real[0]]
