"""`verify` re-proves an export against the store and names every line that no longer holds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine

from generator.errors import UserError
from generator.export.manifest import manifest_path
from generator.export.verify import VerifyReport, verify_export
from generator.store.db import read_session
from tests.conftest import run_cli
from tests.test_export import _sync_project_seeds, add, chat, decide, export, raw_sql, undo

pytestmark = pytest.mark.both_stores  # every store test runs on SQLite and on PostgreSQL


def verify(engine: Engine, data_file: Path) -> VerifyReport:
    with read_session(engine) as session:
        return verify_export(session, data_file=data_file)


def problems(report: VerifyReport) -> list[tuple[str, int | None, str]]:
    return [(f.file, f.line, f.problem) for f in report.failures]


@pytest.fixture
def exported(engine: Engine, tmp_path: Path) -> tuple[Path, list[int]]:
    """Four accepted candidates (one edited) exported to out.jsonl."""
    ids = add(engine, *(chat(i) for i in range(4)))
    for candidate in ids:
        decide(engine, candidate, "accept", reviewer="ann")
    # One more decision after the export's candidates, so removing the last one is a separate case.
    (extra,) = add(engine, chat(9))
    decide(engine, extra, "reject", reviewer="bob")
    out = tmp_path / "out.jsonl"
    export(engine, out)
    return out, ids


def test_an_untouched_export_verifies(engine: Engine, exported: tuple[Path, list[int]]) -> None:
    out, _ = exported
    report = verify(engine, out)
    assert report.ok and report.lines_checked == 4 and report.failures == []


def test_a_line_edited_after_export_is_reported_by_number(engine: Engine, exported: tuple[Path, list[int]]) -> None:
    out, _ = exported
    text = out.read_text().splitlines()
    text[2] = text[2].replace("answer 2.0", "answer 2.0, plus an unreviewed promise")
    out.write_text("\n".join(text) + "\n")
    report = verify(engine, out)
    assert problems(report) == [("out.jsonl", 3, "edited after export: it differs from the line exported here")]


def test_a_line_added_by_hand_is_reported_and_the_rest_still_verify(engine: Engine, exported: tuple[Path, list[int]]) -> None:
    out, _ = exported
    text = out.read_text().splitlines()
    text.insert(1, json.dumps({"messages": chat(77)}))
    out.write_text("\n".join(text) + "\n")
    report = verify(engine, out)
    assert problems(report) == [("out.jsonl", 2, "not in the manifest: added after export")]
    assert report.lines_checked == 5


def test_a_line_removed_after_export_is_reported(engine: Engine, exported: tuple[Path, list[int]]) -> None:
    out, _ = exported
    text = out.read_text().splitlines()
    del text[1]
    out.write_text("\n".join(text) + "\n")
    assert problems(verify(engine, out)) == [("out.jsonl", None, "exported line 2 is missing (removed after export)")]


def test_a_decision_deleted_through_raw_sql_is_reported(engine: Engine, exported: tuple[Path, list[int]]) -> None:
    out, ids = exported
    raw_sql(engine, f"DELETE FROM decision WHERE candidate_id = {ids[1]}", drop_guards=True)
    found = problems(verify(engine, out))
    assert ("out.jsonl", 2, "decision 2 no longer exists (removed from the database)") in found
    assert any(line is None and "decision history broken" in problem for _, line, problem in found)


def test_a_decision_altered_through_raw_sql_is_reported(engine: Engine, exported: tuple[Path, list[int]]) -> None:
    out, ids = exported
    raw_sql(engine, f"UPDATE decision SET reviewer = 'mallory' WHERE candidate_id = {ids[3]}", drop_guards=True)
    found = problems(verify(engine, out))
    assert ("out.jsonl", 4, "the decision was altered after it was made (its hash does not recompute) (decision 4)") in found
    assert any("decision history broken: decision 4" in problem for _, _, problem in found)


def test_the_last_decision_removed_is_caught_by_the_chain(engine: Engine, exported: tuple[Path, list[int]]) -> None:
    out, _ = exported
    raw_sql(engine, "DELETE FROM decision WHERE id = 5", drop_guards=True)
    report = verify(engine, out)
    assert not report.ok
    assert [line for _, line, _ in problems(report)] == [None] * report.failure_count


def test_a_decision_undone_after_export_fails_its_line(engine: Engine, exported: tuple[Path, list[int]]) -> None:
    out, ids = exported
    undo(engine, reviewer="ann")  # ann's latest decision: the accept of the fourth candidate
    assert problems(verify(engine, out)) == [("out.jsonl", 4, f"decision 4 was undone: candidate {ids[3]} is no longer accepted")]


def test_a_line_and_manifest_forged_together_still_fail_against_the_decision(engine: Engine, exported: tuple[Path, list[int]]) -> None:
    """Rewriting the manifest's hashes to match an edited line does not help: the decision's content hash decides."""
    import hashlib

    out, _ = exported
    text = out.read_bytes().splitlines()
    forged_line = json.dumps({"messages": chat(0, answer="forged")}, separators=(",", ":")).encode()
    text[0] = forged_line
    out.write_bytes(b"\n".join(text) + b"\n")
    manifest = json.loads(manifest_path(out).read_text())
    manifest["lines"][0]["sha256"] = hashlib.sha256(forged_line).hexdigest()
    manifest["files"][0]["sha256"] = hashlib.sha256(out.read_bytes()).hexdigest()
    manifest_path(out).write_text(json.dumps(manifest))
    assert problems(verify(engine, out)) == [("out.jsonl", 1, "the content differs from what the decision accepted (decision 1)")]


def _exported_split(engine: Engine, tmp_path: Path) -> Path:
    """Ten accepted candidates exported with a validation split; the training file's path."""
    for candidate in add(engine, *(chat(i) for i in range(10))):
        decide(engine, candidate, "accept")
    out = tmp_path / "d.jsonl"
    export(engine, out, val_fraction=0.3)
    return out


def test_split_exports_verify_both_files(engine: Engine, tmp_path: Path) -> None:
    out = _exported_split(engine, tmp_path)
    assert verify(engine, out).lines_checked == 10
    validation = tmp_path / "d.val.jsonl"
    text = validation.read_text().splitlines()
    text[0] = text[0].replace("answer", "ANSWER")
    validation.write_text("\n".join(text) + "\n")
    assert problems(verify(engine, out)) == [("d.val.jsonl", 1, "edited after export: it differs from the line exported here")]


def test_a_missing_training_file_is_reported_and_the_validation_file_still_verifies(engine: Engine, tmp_path: Path) -> None:
    out = _exported_split(engine, tmp_path)
    out.unlink()
    report = verify(engine, out)
    assert problems(report) == [("d.jsonl", None, "the file is missing")]
    assert report.lines_checked == 3  # the validation lines, still matched to their own entries


def test_seed_lines_are_proved_against_the_seed_table(engine: Engine, tmp_path: Path, project_dir: Path) -> None:
    seeds = _sync_project_seeds(engine, project_dir)
    (candidate,) = add(engine, chat(0))
    decide(engine, candidate, "accept")
    out = tmp_path / "s.jsonl"
    export(engine, out, include_seeds=True, format="sharegpt")
    assert verify(engine, out).ok
    first = sorted(s.id for s in seeds)[0]
    raw_sql(engine, f"DELETE FROM seed WHERE id = '{first}'")
    assert problems(verify(engine, out)) == [
        ("s.jsonl", 1, f"seed {first} is no longer in the verified seed set (removed or changed in the seed files)")
    ]


def test_a_missing_manifest_is_a_user_error(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_text("{}\n")
    with pytest.raises(UserError, match="no manifest"):
        verify(engine, tmp_path / "x.jsonl")


def test_a_manifest_entry_removed_or_redirected_leaves_no_line_unproved(engine: Engine, exported: tuple[Path, list[int]]) -> None:
    out, _ = exported
    manifest = json.loads(manifest_path(out).read_text())
    del manifest["lines"][1]
    manifest["lines"][0]["candidate_id"] = 999
    manifest_path(out).write_text(json.dumps(manifest))
    found = problems(verify(engine, out))
    assert ("out.jsonl", 1, "decision 1 is about candidate 1, not 999") in found
    assert [line for _, line, _ in found if line and line > 1] == [2, 3, 4]


def test_manifest_entries_whose_ids_are_not_numbers_fail_their_lines_without_a_crash(
    engine: Engine, exported: tuple[Path, list[int]]
) -> None:
    out, _ = exported
    manifest = json.loads(manifest_path(out).read_text())
    manifest["lines"][0]["decision_id"] = {"id": 1}
    manifest["lines"][1]["candidate_id"] = "2"
    manifest_path(out).write_text(json.dumps(manifest))
    found = problems(verify(engine, out))
    damaged = "the manifest entry for this line names no decision and candidate (the manifest was altered)"
    assert ("out.jsonl", 1, damaged) in found and ("out.jsonl", 2, damaged) in found
    assert [line for _, line, _ in found if line] == [1, 2]


def test_a_damaged_manifest_is_a_user_error_that_echoes_no_control_characters(engine: Engine, exported: tuple[Path, list[int]]) -> None:
    out, _ = exported
    manifest = json.loads(manifest_path(out).read_text())
    manifest["files"][0]["path"] = "\x1b]52;c;ZXZpbA==\x07out.jsonl"
    manifest_path(out).write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="'files' list is damaged") as caught:
        verify(engine, out)
    assert "\x1b" not in caught.value.render()


def test_cli_verify_exits_0_when_all_hold_and_1_naming_each_failing_line(
    engine: Engine, exported: tuple[Path, list[int]], project_dir: Path
) -> None:
    out, _ = exported
    ok = run_cli("--db", str(engine.url), "verify", str(out), cwd=project_dir)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "OK: 4 line(s) verified" in ok.stdout
    with out.open("a") as handle:
        handle.write(json.dumps({"messages": chat(50)}) + "\n")
    failed = run_cli("--db", str(engine.url), "verify", str(out), cwd=project_dir)
    assert failed.returncode == 1
    assert "FAIL out.jsonl:5: not in the manifest: added after export" in failed.stdout
    missing = run_cli("--db", str(engine.url), "verify", str(out.with_name("nope.jsonl")), cwd=project_dir)
    assert missing.returncode == 2 and "no manifest" in missing.stderr
    assert manifest_path(out).exists()
