"""Agreement figures on known values, worked by hand, and `synthgate agreement` on a store two reviewers overlapped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from generator.agreement import MIN_ITEMS_TO_JUDGE, cohen_kappa, compute_agreement, krippendorff_alpha
from generator.cli import app
from generator.store.overlap import OverlappedCandidate, Verdict

pytestmark = pytest.mark.both_stores  # every store test here runs on SQLite and on PostgreSQL

# The textbook 2x2 table (50 items): both accept 20, A accepts B rejects 5, A rejects B accepts 10, both reject 15.
TABLE = [(True, True)] * 20 + [(True, False)] * 5 + [(False, True)] * 10 + [(False, False)] * 15


def test_cohen_kappa_of_the_textbook_table() -> None:
    # By hand: po = 35/50 = 0.7; A accepts 25/50, B 30/50; pe = 0.5*0.6 + 0.5*0.4 = 0.5; kappa = (0.7-0.5)/(1-0.5) = 0.4.
    assert cohen_kappa(TABLE) == pytest.approx(0.4)
    assert cohen_kappa([(True, True), (False, False)]) == pytest.approx(1.0)
    assert cohen_kappa([(True, False), (False, True)]) == pytest.approx(-1.0)


def test_cohen_kappa_is_undefined_without_items_or_without_any_variation() -> None:
    assert cohen_kappa([]) is None
    assert cohen_kappa([(True, True)] * 6) is None  # both accepted everything: chance agreement is already 1


def test_krippendorff_alpha_of_the_same_table() -> None:
    # By hand (nominal, two coders, no missing): 100 values, 55 accept and 45 reject; the 15 disagreeing
    # units put 15 in each off-diagonal cell of the coincidence matrix; alpha = 1 - 99 * 30 / (2 * 55 * 45) = 0.4.
    units = [{"a": a, "b": b} for a, b in TABLE]
    assert krippendorff_alpha(units) == pytest.approx(0.4)


def test_krippendorff_alpha_takes_missing_ratings_and_ignores_single_reviews() -> None:
    units = [{"a": True, "b": True}, {"b": False, "c": False}, {"a": True, "c": False}, {"a": True}]
    alpha = krippendorff_alpha(units)
    # By hand: 6 pairable values (3 accept, 3 reject), one disagreeing unit: 1 - 5 * 2 / (2 * 3 * 3) = 0.444...
    assert alpha == pytest.approx(1 - 5 * 2 / 18)
    assert krippendorff_alpha([{"a": True, "b": True}] * 3) is None  # one value everywhere: not measurable


def test_report_counts_pairs_tags_and_disputed_reasons_and_says_when_too_few() -> None:
    candidates = [
        OverlappedCandidate(1, ["billing"], [Verdict("ann", True), Verdict("bob", False, ["off-policy"])]),
        OverlappedCandidate(2, ["billing"], [Verdict("ann", False, ["unsafe"]), Verdict("bob", False, ["unsafe", "wrong tone"])]),
        OverlappedCandidate(3, ["edge:x"], [Verdict("ann", True), Verdict("cat", True)]),
        OverlappedCandidate(4, ["edge:x"], [Verdict("ann", True)]),  # the second review is still to come
    ]
    report = compute_agreement(candidates)
    assert report.overlapped == 3
    (ann_bob, ann_cat) = report.pairs
    assert (ann_bob.reviewers, ann_bob.n, ann_bob.agreed) == (("ann", "bob"), 2, 1)
    assert ann_bob.reasons_disputed == {"off-policy": 1, "wrong tone": 1}  # "unsafe" both gave
    assert not ann_bob.judged and ann_bob.n < MIN_ITEMS_TO_JUDGE
    assert (ann_cat.n, ann_cat.kappa) == (1, None)
    assert report.by_tag["billing"].n == 2 and report.by_tag["edge:x"].n == 1


def test_agreement_command_on_an_overlapped_store(engine: Engine, tmp_path: Path) -> None:
    from generator.store.db import write_session
    from generator.store.overlap import mark_overlap
    from review_tui.queue_client import QueueClient
    from tests.test_overlap import _candidates, _decide_all

    ids = _candidates(engine, 4)
    with write_session(engine) as session:
        mark_overlap(session, share=1.0, reviewers=2)
    _decide_all(
        QueueClient(engine=engine, reviewer="ann", lease_seconds=60), dict(zip(ids, ["accept", "accept", "reject", "reject"], strict=True))
    )
    _decide_all(
        QueueClient(engine=engine, reviewer="bob", lease_seconds=60), dict(zip(ids, ["accept", "reject", "reject", "accept"], strict=True))
    )
    url = str(engine.url)
    (tmp_path / "synthgate.toml").write_text("")
    result = CliRunner().invoke(app, ["--project", str(tmp_path), "--db", url, "agreement", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["overlapped"] == 4
    (pair,) = report["pairs"]
    # po = 2/4; each accepted half: pe = 0.5; kappa = 0.
    assert pair["reviewers"] == ["ann", "bob"] and pair["n"] == 4 and pair["agreed"] == 2 and pair["kappa"] == pytest.approx(0.0)
    assert pair["judged"] is False and pair["reasons_disputed"] == {"factually wrong": 2}
    text = CliRunner().invoke(app, ["--project", str(tmp_path), "--db", url, "agreement"])
    assert text.exit_code == 0 and "too few to judge" in text.output
