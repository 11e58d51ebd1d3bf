"""`synthgate stats` as the team's dashboard: acceptance by run, template, model and tag; reasons; throughput; cost."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import Engine

from generator.stats import collect_stats
from generator.store.db import read_session, write_session
from generator.store.intake import NewCandidate, add_candidates
from generator.store.models import Flag, LLMCall, Run
from generator.store.queue import record_decision, undo_last_decision
from tests.conftest import run_cli
from tests.test_export import chat


def build_store(engine: Engine) -> dict[str, list[int]]:
    with write_session(engine) as session:
        session.add(Run(id="r1", provider="openai", model="gpt-4o-mini", template="prompts/a.jinja", template_hash="a" * 64))
        session.add(Run(id="r2", provider="anthropic", model="claude-haiku-4-5", template="prompts/b.jinja", template_hash="b" * 64))
        session.flush()
        for index, (run, cost) in enumerate([("r1", 0.25), ("r1", 0.5), ("r2", 0.75)]):
            session.add(
                LLMCall(
                    run_id=run,
                    request_index=index,
                    request_hash=f"h{index}",
                    status="ok",
                    cost_usd=cost,
                    input_tokens=100,
                    output_tokens=50,
                )
            )
        session.flush()

        def batch(run: str, model: str, template: str, tags: list[str], count: int, start: int) -> list[int]:
            return add_candidates(
                session,
                [
                    NewCandidate(
                        source_key=f"{run}-{start + i}",
                        messages=chat(start + i),
                        tags=tags,
                        run_id=run,
                        model=model,
                        template_hash=template * 64,
                    )
                    for i in range(count)
                ],
            )

        groups = {
            "r1": batch("r1", "gpt-4o-mini", "a", ["billing"], 4, 0),
            "r2": batch("r2", "claude-haiku-4-5", "b", ["account", "edge:ambiguous"], 3, 100),
        }
        filtered = NewCandidate(source_key="f", messages=chat(999), status="filtered", filter_reason="exact duplicate", run_id="r1")
        add_candidates(session, [filtered])
    return groups


def decide_store(engine: Engine, groups: dict[str, list[int]]) -> None:
    r1, r2 = groups["r1"], groups["r2"]
    with write_session(engine) as session:
        record_decision(session, candidate_id=r1[0], reviewer="ann", action="accept", seconds=4)
        record_decision(session, candidate_id=r1[1], reviewer="ann", action="accept", seconds=6)
        record_decision(session, candidate_id=r1[2], reviewer="ann", action="reject", reasons=["factually wrong", "wrong tone"], seconds=10)
        record_decision(session, candidate_id=r2[0], reviewer="bob", action="reject", reasons=["factually wrong"], seconds=20)
        record_decision(session, candidate_id=r2[1], reviewer="bob", action="reject", reasons=["off-policy"], seconds=30)
        # An undone rejection: its reason no longer counts, the candidate is pending again.
        undo_last_decision(session, reviewer="bob")


def test_dashboard_figures(engine: Engine) -> None:
    decide_store(engine, build_store(engine))
    with read_session(engine) as session:
        stats = collect_stats(session)

    assert stats["candidates"] == {"pending": 3, "accepted": 2, "rejected": 2, "filtered": 1}
    assert stats["acceptance"]["by_run"] == {
        "r1": {"accepted": 2, "rejected": 1, "pending": 1, "acceptance_rate": 0.6667},
        "r2": {"accepted": 0, "rejected": 1, "pending": 2, "acceptance_rate": 0.0},
    }
    assert stats["acceptance"]["by_model"]["claude-haiku-4-5"]["rejected"] == 1
    assert stats["acceptance"]["by_template"][f"prompts/a.jinja ({'a' * 12})"]["accepted"] == 2
    assert stats["acceptance"]["by_tag"]["edge:ambiguous"] == {"accepted": 0, "rejected": 1, "pending": 2, "acceptance_rate": 0.0}
    assert "(none)" not in stats["acceptance"]["by_run"]  # filtered candidates never reached a human
    assert stats["reject_reasons"] == {"factually wrong": 2, "wrong tone": 1}
    assert stats["filtered_by_reason"] == {"exact duplicate": 1}
    # Timed decisions include the undone one: the reviewer spent that time.
    assert stats["reviewers"] == {
        "median_seconds_per_decision": 10.0,
        "by_reviewer": {"ann": {"decisions": 3, "median_seconds": 6.0}, "bob": {"decisions": 2, "median_seconds": 25.0}},
    }
    assert stats["cost"] == {
        "calls": 3,
        "input_tokens": 300,
        "output_tokens": 150,
        "total_usd": 1.5,
        "per_accepted_usd": 0.75,
        "unpriced_models": [],
    }


def test_an_empty_store_has_no_rates_and_no_cost_per_example(engine: Engine) -> None:
    with read_session(engine) as session:
        stats = collect_stats(session)
    assert stats["acceptance"] == {"by_run": {}, "by_template": {}, "by_model": {}, "by_tag": {}}
    assert stats["reviewers"]["median_seconds_per_decision"] is None
    assert stats["cost"]["per_accepted_usd"] is None


def test_cli_stats_json_keeps_the_old_keys_and_adds_the_dashboard(engine: Engine, project_dir: Path) -> None:
    decide_store(engine, build_store(engine))
    with write_session(engine) as session:
        add_candidates(
            session, [NewCandidate(source_key="flagged", messages=chat(500), flags=[Flag(kind="pii", detail="email address j…@x.org")])]
        )
    result = run_cli("--db", str(engine.url), "stats", "--json", cwd=project_dir)
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    assert {"seeds", "runs", "decisions", "candidates"} <= set(stats)
    assert set(stats["candidates"]) == {"pending", "accepted", "rejected", "filtered"}
    assert stats["runs"] == 2 and stats["decisions"] == 6
    assert {"acceptance", "reject_reasons", "reviewers", "cost"} <= set(stats)
    table = run_cli("--db", str(engine.url), "stats", cwd=project_dir)
    assert table.returncode == 0, table.stderr
    for heading in (
        "Acceptance by run",
        "Acceptance by tag",
        "Top reject reasons",
        "Why candidates were filtered",
        "Flags on candidates for review",
        "Reviewer throughput",
        "API cost: $1.5000",
    ):
        assert heading in table.stdout
    # A flagged candidate is pending, not filtered: its flags are not rows under "candidates filtered".
    store_table = table.stdout.split("Why candidates were filtered")[0]
    assert "candidates filtered" in store_table and "pii" not in store_table
