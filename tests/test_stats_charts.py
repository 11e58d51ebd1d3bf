"""`stats` draws distributions: answer length, similarity to the nearest seed, seconds per decision per reviewer; and writes them as a self-contained HTML report."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from generator.charts import bar, histogram, histogram_lines
from generator.stats import collect_stats
from generator.store.db import read_session, write_session
from generator.store.models import Candidate
from tests.conftest import run_cli
from tests.test_export import add, chat, decide

HOSTILE = "<script>alert(1)</script>\x1b[31m"


def _store(engine: Engine) -> None:
    short, long, rejected = add(engine, chat(0, answer="ok"), chat(1, answer="x" * 400), chat(2, answer="y" * 50))
    decide(engine, short, "accept", reviewer="ann")
    decide(engine, long, "accept", reviewer=HOSTILE)
    decide(engine, rejected, "reject", reviewer="ann")
    with write_session(engine) as session:
        for candidate_id, similarity in ((short, 0.2), (long, 0.9)):
            row = session.get(Candidate, candidate_id)
            assert row is not None
            row.nearest_seed_similarity = similarity
            session.add(row)


def test_bars_and_histograms_count_every_value_into_its_bin() -> None:
    assert bar(0.5, width=4) == "██  " and bar(1.0, width=2) == "██" and bar(0.0, width=3) == "   "
    chart = histogram("t", "s", {"a": [0, 1, 2, 10], "b": [10]}, bins=2)
    assert chart.edges == [0, 5, 10] and chart.series == {"a": [3, 1], "b": [0, 1]}
    assert histogram_lines(histogram("empty", "s", {"a": []})) == ["empty", "  (no data yet)"]
    # No more bins than distinct values: one decision is one bar, not ten bins of which nine are empty.
    assert histogram("one", "s", {"ann": [22.1]}).series == {"ann": [1]}
    assert len(histogram("two", "s", {"ann": [3.0, 9.0, 9.0]}).series["ann"]) == 2


def test_stats_collects_the_three_distributions(engine: Engine) -> None:
    _store(engine)
    with read_session(engine) as session:
        charts = collect_stats(session)["distributions"]
    lengths = charts["answer_length"]["series"]
    assert sum(lengths["accepted"]) == 2 and sum(lengths["rejected"]) == 1 and lengths["accepted"][0] == 1 and lengths["accepted"][-1] == 1
    assert charts["nearest_seed_similarity"]["series"] == {"accepted": [1, 1]}  # two values: two bins
    assert {name: sum(counts) for name, counts in charts["seconds_per_decision"]["series"].items()} == {"ann": 2, HOSTILE: 1}


def test_stats_draws_charts_in_the_terminal_and_writes_a_safe_self_contained_html_report(engine: Engine, project_dir: Path) -> None:
    _store(engine)
    report = project_dir / "report.html"
    result = run_cli("--db", str(engine.url), "stats", "--html", str(report), cwd=project_dir)
    assert result.returncode == 0, result.stderr
    for title in ("Answer length", "Similarity to the nearest seed", "Seconds per decision, by reviewer", "Coverage"):
        assert title in result.stdout
    assert "█" in result.stdout and "\x1b" not in result.stdout  # names stay text: no terminal escapes
    page = report.read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script" not in page and "\x1b" not in page
    assert "http" not in page.replace('content="synthgate stats"', "")  # no external scripts, fonts or links
    again = run_cli("--db", str(engine.url), "stats", "--html", str(report), cwd=project_dir)
    assert again.returncode == 0  # a report synthgate wrote is replaced
    theirs = project_dir / "notes.html"
    theirs.write_text("<p>mine</p>")
    refused = run_cli("--db", str(engine.url), "stats", "--html", str(theirs), cwd=project_dir)
    assert refused.returncode == 2 and "not a report synthgate wrote" in refused.stderr
    assert theirs.read_text() == "<p>mine</p>"
