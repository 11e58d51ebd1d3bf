"""`synthgate check` over a real store: re-checking, restoring, reviewers' holds, config errors, the generation contract."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from generator.checks import CandidateChecker
from generator.checks.reference import load_holdout
from generator.checks.rerun import recheck_pending, restore_filtered
from generator.errors import UserError
from generator.examples import Message
from generator.project import Project
from generator.seeds import load_seeds
from generator.store.db import open_store, read_session, write_session
from generator.store.intake import NewCandidate, add_candidates, sync_seeds
from generator.store.models import Candidate
from generator.store.queue import claim_next_candidate, record_decision
from tests.conftest import run_cli
from tests.test_checks_corpus import HOLDOUT, SEEDS, change_one_word, clean_conversation, shout, with_answer

HOLDOUT_SETTING = 'holdout = ["eval/holdout.jsonl"]'


def configure(project_dir: Path, *lines: str) -> None:
    """Set keys in the project's [checks] table (the scaffold lists them there, commented out)."""
    config = project_dir / "synthgate.toml"
    head, checks = config.read_text(encoding="utf-8").split("[checks]\n", 1)
    for line in lines:
        key = line.split("=")[0].strip()
        commented = next(row for row in checks.splitlines() if row.startswith(f"# {key} ="))
        checks = checks.replace(commented, line, 1)
    config.write_text(f"{head}[checks]\n{checks}", encoding="utf-8")


@pytest.fixture
def project(project_dir: Path) -> Project:
    configure(project_dir, HOLDOUT_SETTING)
    return Project.locate(project_dir)


@pytest.fixture
def store(project: Project) -> Iterator[Engine]:
    engine = open_store(project.db_url)
    seeds = load_seeds(project.seed_files())
    with write_session(engine) as session:
        sync_seeds(session, seeds.seeds, root=project.root)
    yield engine
    engine.dispose()


def as_dicts(messages: list[Message]) -> list[dict[str, str]]:
    return [m.model_dump() for m in messages]


def store_pending(engine: Engine, conversations: dict[str, list[Message]]) -> dict[str, int]:
    """Store conversations as pending candidates without checking them (e.g. made before a holdout was set)."""
    with write_session(engine) as session:
        ids = add_candidates(session, [NewCandidate(source_key=key, messages=as_dicts(m)) for key, m in conversations.items()])
    return dict(zip(conversations, ids, strict=True))


def rows(engine: Engine) -> dict[int, Candidate]:
    with read_session(engine) as session:
        return {row.id: row for row in session.scalars(select(Candidate)) if row.id is not None}


def planted(rng: random.Random) -> dict[str, list[Message]]:
    clean = [clean_conversation(i, rng) for i in range(6)]
    return {
        "clean-1": clean[0],
        "clean-2": clean[1],
        "dup-of-clean-1": shout(clean[0]),
        "near-dup-of-clean-2": change_one_word(clean[1], rng),
        "seed-copy": change_one_word(SEEDS[0][2], rng),
        "leak": HOLDOUT[2][2],
        "empty-answer": with_answer(clean[2], ""),
        "truncated": with_answer(clean[3], clean[3][-1].content.rsplit(" ", 3)[0]),
    }


def test_check_filters_flags_and_reports_in_stats(project: Project, store: Engine) -> None:
    ids = store_pending(store, planted(random.Random(1)))
    result = run_cli("check", cwd=project.root)
    assert result.returncode == 0, result.stderr
    assert "Checked 8 pending candidate(s) against 65 seed(s), 16 holdout example(s) and 0 reviewed candidate(s)." in result.stdout
    assert "Newly filtered: 5" in result.stdout
    stored = rows(store)
    expected = {
        "clean-1": ("pending", None, None),
        "clean-2": ("pending", None, None),
        "dup-of-clean-1": ("filtered", "exact duplicate", f"candidate:{ids['clean-1']}"),
        "near-dup-of-clean-2": ("filtered", "near-duplicate of candidate", f"candidate:{ids['clean-2']}"),
        "seed-copy": ("filtered", "near-duplicate of seed", f"seed:{SEEDS[0][0]}"),
        "leak": ("filtered", "holdout leak", f"holdout:eval/holdout.jsonl:{HOLDOUT[2][1]}"),
        "empty-answer": ("filtered", "structural defect", "message 3 (assistant) has empty content"),
        "truncated": ("pending", None, None),
    }
    assert {key: (stored[i].status, stored[i].filter_reason, stored[i].filter_match) for key, i in ids.items()} == expected
    assert [flag["kind"] for flag in stored[ids["truncated"]].flags] == ["truncation"]
    assert all(row.nearest_seed_id and row.nearest_seed_similarity is not None for row in stored.values())

    stats = json.loads(run_cli("stats", "--json", cwd=project.root).stdout)
    assert stats["filtered_by_reason"] == {
        "exact duplicate": 1,
        "holdout leak": 1,
        "near-duplicate of candidate": 1,
        "near-duplicate of seed": 1,
        "structural defect": 1,
    }
    assert stats["flags_by_kind"] == {"truncation": 1}

    again = recheck_pending(store, project=project)
    assert (again.checked, sum(again.filtered.values()), again.refreshed) == (3, 0, 0)


def test_checks_never_touch_decided_candidates_but_compare_with_them(project: Project, store: Engine) -> None:
    rng = random.Random(2)
    accepted = clean_conversation(0, rng)
    ids = store_pending(store, {"accepted": accepted, "accepted-leak": HOLDOUT[0][2]})
    with write_session(store) as session:
        for key in ("accepted", "accepted-leak"):
            record_decision(session, candidate_id=ids[key], reviewer="ann", action="accept")
    later = store_pending(store, {"copy-of-accepted": shout(accepted)})
    summary = recheck_pending(store, project=project)
    stored = rows(store)
    assert summary.checked == 1
    assert (stored[later["copy-of-accepted"]].filter_reason, stored[later["copy-of-accepted"]].filter_match) == (
        "exact duplicate",
        f"candidate:{ids['accepted']}",
    )
    assert stored[ids["accepted-leak"]].status == "accepted"  # a person decided; checks do not overrule them


def test_restore_puts_candidates_back_and_rechecks_respect_it(project: Project, store: Engine) -> None:
    ids = store_pending(store, planted(random.Random(3)))
    recheck_pending(store, project=project)
    assert restore_filtered(store, reason="near-duplicate of seed") == 1
    row = rows(store)[ids["seed-copy"]]
    assert (row.status, row.filter_reason, row.filter_match) == ("pending", None, None)
    assert {"kind": "restored", "detail": f"near-duplicate of seed: seed:{SEEDS[0][0]}"} in row.flags
    summary = recheck_pending(store, project=project)
    assert sum(summary.filtered.values()) == 0
    row = rows(store)[ids["seed-copy"]]
    assert row.status == "pending" and any(flag["kind"] == "restored" for flag in row.flags)
    assert rows(store)[ids["leak"]].status == "filtered"  # other reasons stay filtered


def test_restore_refuses_structural_defects_and_unknown_reasons(project: Project, store: Engine) -> None:
    ids = store_pending(store, planted(random.Random(4)))
    recheck_pending(store, project=project)
    with pytest.raises(UserError, match="cannot be restored"):
        restore_filtered(store, reason="structural defect")
    with pytest.raises(UserError) as unknown:
        restore_filtered(store, reason="near duplicate of seed")
    assert "did you mean 'near-duplicate of seed'" in (unknown.value.fix or "")
    assert rows(store)[ids["empty-answer"]].status == "filtered"
    restored = run_cli("check", "--restore", "holdout leak", cwd=project.root)
    assert restored.returncode == 0 and "Restored 1 candidate(s)" in restored.stdout and "Caution" in restored.stdout
    assert rows(store)[ids["leak"]].status == "pending"
    refused = run_cli("check", "--restore", "structural defect", cwd=project.root)
    assert refused.returncode == 2 and "cannot be restored" in refused.stderr and "Traceback" not in refused.stderr


def test_a_candidate_a_reviewer_holds_is_not_filtered_under_their_hands(project: Project, store: Engine) -> None:
    ids = store_pending(store, {"leak": HOLDOUT[5][2]})
    with write_session(store) as session:
        held = claim_next_candidate(session, reviewer="ann", lease_seconds=600)
    assert held is not None and held.id == ids["leak"]
    summary = recheck_pending(store, project=project)
    assert summary.left_alone == 1 and rows(store)[ids["leak"]].status == "pending"


@pytest.mark.parametrize(
    ("setting", "key"),
    [("near_duplicate_threshold = 1.5", "near_duplicate_threshold"), ('holdout = ["eval/missing.jsonl"]', "holdout")],
)
def test_config_errors_exit_2_naming_file_line_and_key(project_dir: Path, setting: str, key: str) -> None:
    configure(project_dir, setting)
    result = run_cli("check", cwd=project_dir)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    line = int(result.stderr.split("synthgate.toml:")[1].split(":")[0])
    assert (project_dir / "synthgate.toml").read_text().splitlines()[line - 1].startswith(key)
    assert f"checks.{key}" in result.stderr or "holdout file 'eval/missing.jsonl' not found" in result.stderr


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("near_duplicate_threshold = 0", "greater than 0"),
        ("near_duplicate_threshold = 'high'", "valid number"),
        ('holdout = "eval/holdout.jsonl"', "valid list"),
        ('holdout = [" "]', "must not be blank"),
        ("shingle_words = 0", "greater than or equal to 1"),
    ],
)
def test_bad_check_settings_name_the_key(project_dir: Path, setting: str, message: str) -> None:
    configure(project_dir, setting)
    key = setting.split("=")[0].strip()
    with pytest.raises(UserError, match=message) as error:
        Project.locate(project_dir).config  # noqa: B018
    assert f"checks.{key}" in error.value.message
    assert error.value.line is not None
    assert (project_dir / "synthgate.toml").read_text().splitlines()[error.value.line - 1].startswith(key)


@pytest.mark.parametrize(
    ("holdout_text", "line", "message"),
    [
        ('{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n{not json\n', 2, "invalid JSON"),
        ('{"messages": [{"role": "user", "content": "only a question"}]}\n', 1, "no assistant turn"),
    ],
)
def test_a_broken_holdout_line_names_file_and_line(project: Project, holdout_text: str, line: int, message: str) -> None:
    (project.root / "eval" / "holdout.jsonl").write_text(holdout_text, encoding="utf-8")
    with pytest.raises(UserError, match=message) as error:
        load_holdout(project)
    assert (error.value.file, error.value.line) == ("eval/holdout.jsonl", line)


def test_the_generation_contract_filters_within_a_run_and_names_stored_ids(project: Project, store: Engine) -> None:
    rng = random.Random(5)
    first, other = clean_conversation(0, rng), clean_conversation(1, rng)
    stored_before = store_pending(store, {"earlier": other})
    with read_session(store) as session:
        checker = CandidateChecker.from_store(session, project=project)
    batch = {"run:1:0": first, "run:1:1": shout(first), "run:1:2": change_one_word(other, rng)}
    results = dict(zip(batch, checker.check_new(list(batch.items())), strict=True))
    assert results["run:1:0"].status == "pending" and results["run:1:0"].nearest_seed_id
    assert (results["run:1:1"].filter_reason, results["run:1:1"].filter_match) == ("exact duplicate", "source:run:1:0")
    assert (results["run:1:2"].filter_reason, results["run:1:2"].filter_match) == (
        "near-duplicate of candidate",
        f"candidate:{stored_before['earlier']}",
    )
    with write_session(store) as session:
        new_ids = add_candidates(
            session,
            [NewCandidate(source_key=key, messages=as_dicts(batch[key]), **result.model_dump()) for key, result in results.items()],
        )
    assert rows(store)[new_ids[1]].filter_match == f"candidate:{new_ids[0]}"  # stored, the match names the original by id

    # What generation stored is what a re-check concludes (only the unchecked "earlier" row gains results).
    def checked_rows() -> list[tuple]:
        stored = rows(store)
        return [
            (row.status, row.filter_reason, row.filter_match, row.flags, row.nearest_seed_id, row.nearest_seed_similarity)
            for row in (stored[i] for i in new_ids)
        ]

    before = checked_rows()
    again = recheck_pending(store, project=project)
    assert (again.checked, sum(again.filtered.values()), again.refreshed) == (2, 0, 1)
    assert checked_rows() == before


def test_a_missing_holdout_file_stops_generation_checks_too(project: Project, store: Engine) -> None:
    (project.root / "eval" / "holdout.jsonl").unlink()
    with read_session(store) as session, pytest.raises(UserError, match=r"holdout file 'eval/holdout\.jsonl' not found") as error:
        CandidateChecker.from_store(session, project=project)
    assert error.value.file == str(project.config_path) and error.value.line is not None
