"""Coverage: accepted examples per tag and edge case against targets from [coverage], the shortfall, and --fill-gaps aiming a run at the largest gap."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import Engine

from generator.config import CoverageSection
from generator.coverage import coverage, furthest_below_target
from generator.store.db import read_session, write_session
from generator.store.models import SeedRecord
from tests.conftest import run_cli
from tests.test_export import add, chat, decide


def _seeds(engine: Engine, *tag_lists: list[str]) -> None:
    with write_session(engine) as session:
        for i, tags in enumerate(tag_lists):
            session.add(SeedRecord(id=f"s{i}", content_hash=f"h{i}", messages=chat(i), tags=tags, source="seeds/a.jsonl", line=i + 1))


def _store(engine: Engine) -> None:
    """Seeds: billing on all 4, edge:angry on 1; accepted: 3 billing, one of them angry; a rejected angry one counts for nothing."""
    _seeds(engine, ["billing"], ["billing"], ["billing"], ["billing", "edge:angry"])
    plain = add(engine, chat(10), chat(11), tags=["billing"])
    angry, rejected = add(engine, chat(12), chat(13), tags=["billing", "edge:angry"])
    for candidate in [*plain, angry]:
        decide(engine, candidate, "accept")
    decide(engine, rejected, "reject")


def test_targets_follow_the_seeds_distribution_scaled_to_the_target_size(engine: Engine) -> None:
    _store(engine)
    with read_session(engine) as session:
        rows = coverage(session, CoverageSection(target=40))
    table = {r.tag: (r.seeds, r.accepted, r.target, r.shortfall, r.edge_case) for r in rows}
    assert table == {"billing": (4, 3, 40, 37, False), "edge:angry": (1, 1, 10, 9, True)}
    assert [r.tag for r in rows] == ["billing", "edge:angry"]  # least covered first: 3/40 before 1/10


def test_config_targets_override_the_seeds_share_and_name_tags_no_seed_carries(engine: Engine) -> None:
    _store(engine)
    with read_session(engine) as session:
        rows = coverage(session, CoverageSection(target=40, tags={"edge:angry": 100, "refunds": 5}))
    table = {r.tag: (r.accepted, r.target, r.source) for r in rows}
    assert table == {"billing": (3, 40, "seeds"), "edge:angry": (1, 100, "config"), "refunds": (0, 5, "config")}
    # refunds is furthest below target but no seed carries it: few-shot generation cannot aim at it.
    gap = furthest_below_target(rows)
    assert gap is not None and gap.tag == "edge:angry"


def test_coverage_command_prints_json_and_a_table(engine: Engine, project_dir: Path) -> None:
    _store(engine)
    config = project_dir / "synthgate.toml"
    config.write_text(config.read_text().replace("[coverage]\n", "[coverage]\ntarget = 40\n"))
    result = run_cli("--db", str(engine.url), "coverage", "--json", cwd=project_dir)
    assert result.returncode == 0, result.stderr
    found = {row["tag"]: row["shortfall"] for row in json.loads(result.stdout)["tags"]}
    assert found == {"billing": 37, "edge:angry": 9}
    table = run_cli("--db", str(engine.url), "coverage", cwd=project_dir)
    assert "edge:angry" in table.stdout and "shortfall" in table.stdout


def test_fill_gaps_aims_the_run_at_the_least_covered_seed_tag(engine: Engine, project_dir: Path) -> None:
    (project_dir / "none.jsonl").write_text("")  # replay: a dry run sends nothing
    run_cli("--db", str(engine.url), "seeds", "check", cwd=project_dir)
    with read_session(engine) as session:
        gap = furthest_below_target(coverage(session, CoverageSection()))
    assert gap is not None
    args = ["--db", str(engine.url), "generate", "--provider", "replay", "--replay-file", "none.jsonl", "--count", "2"]
    result = run_cli(*args, "--fill-gaps", "--dry-run", "--json", cwd=project_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Filling the largest gap: tag {gap.tag}" in result.stderr
    prompt = json.loads(result.stdout)["prompt"][-1]["content"]
    assert f"tagged `{gap.tag}`" in prompt
    both = run_cli(*args, "--fill-gaps", "--tag", "billing", "--dry-run", cwd=project_dir)
    assert both.returncode == 2 and "--fill-gaps and --tag" in both.stderr
