"""`promote` grows the verified seed pool from accepted examples, once each, in a file `seeds check` accepts."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from sqlalchemy import Engine

from generator.errors import UserError
from generator.project import Project
from generator.promote import PromoteReport, promote_accepted
from generator.store.db import read_session
from tests.conftest import run_cli
from tests.test_export import add, chat, decide


def promote(engine: Engine, project_dir: Path, target: Path | None = None) -> PromoteReport:
    project = Project(root=project_dir)
    with read_session(engine) as session:
        return promote_accepted(session, project=project, target=target or project_dir / "seeds" / "promoted.jsonl")


def test_promote_appends_accepted_examples_once_in_a_file_seeds_check_accepts(engine: Engine, project_dir: Path) -> None:
    accepted, edited, rejected = add(engine, chat(0), chat(1), chat(2), tags=["billing", "edge:refund"])
    decide(engine, accepted, "accept", reviewer="ann")
    decide(engine, edited, "edit", reviewer="bob", messages=chat(1, answer="the corrected answer"))
    decide(engine, rejected, "reject")

    report = promote(engine, project_dir)
    target = project_dir / "seeds" / "promoted.jsonl"
    records = [json.loads(line) for line in target.read_text().splitlines()]
    assert report.added == 2 and not report.outside_seed_paths
    assert [(r["verified_by"], r["messages"], r["tags"]) for r in records] == [
        ("ann", chat(0), ["billing", "edge:refund"]),
        ("bob", chat(1, answer="the corrected answer"), ["billing", "edge:refund"]),
    ]
    assert all(r["id"].startswith("promoted-") for r in records)

    before = target.read_bytes()
    again = promote(engine, project_dir)
    assert (again.added, again.already_seeds) == (0, 2)
    assert target.read_bytes() == before

    # The file passes the same checks `synthgate seeds check` runs (the CLI test runs the command itself).
    from generator.seed_lint import lint_seeds
    from generator.seeds import load_seeds

    pool = load_seeds(Project(root=project_dir).seed_files())
    assert [p for p in pool.problems + lint_seeds(pool, Project(root=project_dir).config.seeds) if p.severity == "error"] == []
    assert {s.id for s in pool.seeds if s.file == target} == {r["id"] for r in records}


def test_promote_skips_examples_already_among_the_seeds(engine: Engine, project_dir: Path) -> None:
    seed_line = json.loads((project_dir / "seeds" / "seeds.jsonl").read_text().splitlines()[0])
    # The same conversation up to case and spacing, the rule `seeds check` uses for exact duplicates.
    copy = [{**m, "content": m["content"].upper() + "  "} for m in seed_line["messages"]]
    (candidate,) = add(engine, copy)
    decide(engine, candidate, "accept")
    report = promote(engine, project_dir)
    assert (report.added, report.already_seeds) == (0, 1)
    assert not (project_dir / "seeds" / "promoted.jsonl").exists()


def test_promote_goes_through_the_gate(engine: Engine, project_dir: Path) -> None:
    from tests.test_export import raw_sql

    forged, tampered = add(engine, chat(0), chat(1))
    raw_sql(engine, f"UPDATE candidate SET status = 'accepted' WHERE id = {forged}")
    decide(engine, tampered, "accept")
    raw_sql(engine, f"UPDATE candidate SET messages = '[]' WHERE id = {tampered}")
    report = promote(engine, project_dir)
    assert report.added == 0
    assert [(r.candidate_id, r.reason) for r in report.refused] == [(tampered, "the content differs from what the decision accepted")]
    assert not (project_dir / "seeds" / "promoted.jsonl").exists()


def test_promote_to_a_file_outside_the_seed_paths_warns(engine: Engine, project_dir: Path) -> None:
    (candidate,) = add(engine, chat(0))
    decide(engine, candidate, "accept")
    report = promote(engine, project_dir, target=project_dir / "extra" / "more.jsonl")
    assert report.added == 1 and report.outside_seed_paths


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o027, 0o640)])
def test_promoted_seeds_are_written_with_the_umask(engine: Engine, project_dir: Path, mask: int, mode: int) -> None:
    from tests.test_export_safety import umask

    first, second = add(engine, chat(0), chat(1))
    decide(engine, first, "accept")
    with umask(mask):
        promote(engine, project_dir)
        decide(engine, second, "accept")
        promote(engine, project_dir)  # rewriting the file: the same mode
    target = project_dir / "seeds" / "promoted.jsonl"
    assert len(target.read_text().splitlines()) == 2
    assert stat.S_IMODE(target.stat().st_mode) == mode


def test_promote_refuses_to_append_to_a_broken_seed_file(engine: Engine, project_dir: Path) -> None:
    target = project_dir / "seeds" / "promoted.jsonl"
    target.write_text("{not json\n")
    (candidate,) = add(engine, chat(0))
    decide(engine, candidate, "accept")
    with pytest.raises(UserError, match="invalid JSON") as caught:
        promote(engine, project_dir)
    assert caught.value.line == 1
    assert target.read_text() == "{not json\n"


def test_cli_promote_then_seeds_check_records_the_promoted_seeds(engine: Engine, project_dir: Path) -> None:
    (candidate,) = add(engine, chat(0))
    decide(engine, candidate, "accept", reviewer="dana")
    db = ["--db", str(engine.url)]
    first = run_cli(*db, "promote", cwd=project_dir)
    assert first.returncode == 0, first.stderr
    assert "Promoted 1 accepted example(s)" in first.stdout
    second = run_cli(*db, "promote", cwd=project_dir)
    assert "Promoted 0 accepted example(s)" in second.stdout and "1 already in the seed pool" in second.stdout
    checked = run_cli(*db, "seeds", "check", cwd=project_dir)
    assert checked.returncode == 0, checked.stdout
    # The next export with seeds holds the promoted example once, as a seed.
    exported = run_cli(*db, "export", "-o", str(project_dir / "out.jsonl"), "--include-seeds", cwd=project_dir)
    assert exported.returncode == 0, exported.stderr
    assert "0 accepted" in exported.stdout and "already in the export as a verified seed" in exported.stderr
