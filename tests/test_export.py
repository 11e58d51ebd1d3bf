"""Export behind the gate: accepted-only lines, final content, manifest proof, determinism, split, atomic writes.

The helpers at the top are shared by the other export, verify and promote test modules.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from generator.errors import UserError, WorkFailed
from generator.examples import Example, messages_hash
from generator.export.exporter import ExportOptions, ExportReport, export_dataset
from generator.export.manifest import iter_manifest_entries, manifest_path, read_manifest_header
from generator.store.db import read_session, write_session
from generator.store.intake import NewCandidate, add_candidates
from generator.store.models import Decision
from generator.store.queue import record_decision, undo_last_decision
from tests.conftest import run_cli

pytestmark = pytest.mark.both_stores  # every store test runs on SQLite and on PostgreSQL

SYSTEM = "You are Ledgerly's support assistant."
_keys = itertools.count()


def chat(i: int, *, answer: str | None = None, system: bool = True, turns: int = 1) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": SYSTEM}] if system else []
    for turn in range(turns):
        messages.append({"role": "user", "content": f"question {i}.{turn}"})
        messages.append({"role": "assistant", "content": answer if answer and turn == turns - 1 else f"answer {i}.{turn}"})
    return messages


def add(engine: Engine, *conversations: list[dict[str, str]], tags: list[str] | None = None, run_id: str | None = None) -> list[int]:
    with write_session(engine) as session:
        return add_candidates(
            session,
            [NewCandidate(source_key=f"k{next(_keys)}", messages=m, tags=tags or ["billing"], run_id=run_id) for m in conversations],
        )


def decide(engine: Engine, candidate_id: int, action: str, reviewer: str = "ann", **fields: Any) -> None:
    if action == "edit":
        fields["edited"] = Example(messages=fields.pop("messages"))
    if action == "reject":
        fields.setdefault("reasons", ["factually wrong"])
    with write_session(engine) as session:
        record_decision(session, candidate_id=candidate_id, reviewer=reviewer, action=action, seconds=3.0, **fields)


def undo(engine: Engine, reviewer: str = "ann") -> None:
    with write_session(engine) as session:
        undo_last_decision(session, reviewer=reviewer)


def export(engine: Engine, output: Path, *, workers: int | None = None, **options: Any) -> ExportReport:
    with read_session(engine) as session:
        return export_dataset(session, options=ExportOptions(output=output, **options), workers=workers)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def entries(data_file: Path) -> list[dict[str, Any]]:
    return list(iter_manifest_entries(manifest_path(data_file)))


def raw_sql(engine: Engine, *statements: str, drop_guards: bool = False) -> None:
    """What someone with write access to the database file (or a PostgreSQL superuser) could do behind synthgate's back."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as pg:
            if drop_guards:  # a superuser switches the guards (all triggers) off for the transaction
                pg.exec_driver_sql("SET LOCAL session_replication_role = replica")
            for statement in statements:
                pg.exec_driver_sql(statement)
        return
    connection = sqlite3.connect(str(engine.url.database))
    if drop_guards:
        connection.execute("DROP TRIGGER decision_no_update")
        connection.execute("DROP TRIGGER decision_no_delete")
    for statement in statements:
        connection.execute(statement)
    connection.commit()
    connection.close()


def decisions(engine: Engine) -> dict[int, Decision]:
    with read_session(engine) as session:
        from sqlmodel import select

        return {d.id: d for d in session.exec(select(Decision))}


# --- the gate ------------------------------------------------------------------------------------


def test_only_the_latest_live_accepting_decision_exports_in_final_content(engine: Engine, tmp_path: Path) -> None:
    accepted, edited, rejected, _pending, undone = add(engine, *(chat(i) for i in range(5)))
    decide(engine, accepted, "accept")
    decide(engine, edited, "edit", reviewer="bob", messages=chat(1, answer="a corrected answer"))
    decide(engine, rejected, "reject")
    decide(engine, undone, "accept", reviewer="chen")
    undo(engine, reviewer="chen")

    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "train.jsonl"
    report = export(engine, out)

    assert lines(out) == [{"messages": chat(0)}, {"messages": chat(1, answer="a corrected answer")}]
    assert report.counts == {"lines": 2, "accepted": 1, "edited": 1, "seeds": 0, "skipped": 0}
    stored = decisions(engine)
    proof = entries(out)
    assert [(e["line"], e["candidate_id"], e["action"], e["reviewer"]) for e in proof] == [
        (1, accepted, "accept", "ann"),
        (2, edited, "edit", "bob"),
    ]
    for entry, line in zip(proof, out.read_bytes().splitlines(), strict=True):
        decision = stored[entry["decision_id"]]
        assert entry["decision_hash"] == decision.hash
        assert entry["decided_at"] == decision.created_at.isoformat()
        assert entry["sha256"] == __import__("hashlib").sha256(line).hexdigest()
        assert entry["file"] == "train.jsonl"


def test_a_status_set_by_raw_sql_exports_nothing(engine: Engine, tmp_path: Path) -> None:
    (forged,) = add(engine, chat(0))
    raw_sql(engine, f"UPDATE candidate SET status = 'accepted' WHERE id = {forged}")
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(WorkFailed, match=r"nothing to export.*marked accepted without a live accepting decision"):
        export(engine, folder / "out.jsonl")
    assert list(folder.iterdir()) == []


def test_forged_acceptances_are_counted_beside_real_ones(engine: Engine, tmp_path: Path) -> None:
    real, forged, rejected = add(engine, chat(0), chat(1), chat(2))
    decide(engine, real, "accept")
    decide(engine, rejected, "reject")
    raw_sql(engine, f"UPDATE candidate SET status = 'accepted' WHERE id IN ({forged}, {rejected})")
    out = tmp_path / "out.jsonl"
    report = export(engine, out)
    assert [e["candidate_id"] for e in entries(out)] == [real]
    assert report.skipped.counts == {"left out by the gate: marked accepted without a live accepting decision": 2}


def test_content_changed_in_the_database_after_review_is_refused(engine: Engine, tmp_path: Path) -> None:
    kept, changed = add(engine, chat(0), chat(1))
    decide(engine, kept, "accept")
    decide(engine, changed, "accept")
    swapped = json.dumps(chat(1, answer="something nobody reviewed")).replace("'", "''")
    raw_sql(engine, f"UPDATE candidate SET messages = '{swapped}' WHERE id = {changed}")
    out = tmp_path / "out.jsonl"
    report = export(engine, out)
    assert lines(out) == [{"messages": chat(0)}]
    (reason,) = report.skipped.counts
    assert "content differs from what the decision accepted" in reason
    assert report.skipped.listed[reason] == [f"candidate:{changed}"]


def test_an_altered_decision_is_refused(engine: Engine, tmp_path: Path) -> None:
    kept, altered = add(engine, chat(0), chat(1))
    decide(engine, kept, "accept")
    decide(engine, altered, "reject")
    # Turn the reject into an accept, status included: only the decision's hash gives it away.
    raw_sql(
        engine,
        f"UPDATE decision SET action = 'accept', reasons = '[]' WHERE candidate_id = {altered}",
        f"UPDATE candidate SET status = 'accepted' WHERE id = {altered}",
        drop_guards=True,
    )
    out = tmp_path / "out.jsonl"
    report = export(engine, out)
    assert [e["candidate_id"] for e in entries(out)] == [kept]
    assert any("decision was altered" in reason for reason in report.skipped.counts)


def test_a_status_that_disagrees_with_the_decisions_is_refused(engine: Engine, tmp_path: Path) -> None:
    kept, demoted = add(engine, chat(0), chat(1))
    decide(engine, kept, "accept")
    decide(engine, demoted, "accept")
    raw_sql(engine, f"UPDATE candidate SET status = 'pending' WHERE id = {demoted}")
    report = export(engine, tmp_path / "out.jsonl")
    assert report.counts["lines"] == 1
    assert any("status disagrees" in reason for reason in report.skipped.counts)


def test_nothing_accepted_is_a_work_failure_and_writes_nothing(engine: Engine, tmp_path: Path) -> None:
    add(engine, chat(0))
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(WorkFailed, match="nothing to export") as caught:
        export(engine, folder / "out.jsonl")
    assert caught.value.exit_code == 1
    assert list(folder.iterdir()) == []


# --- output: order, determinism, atomicity ------------------------------------------------------------------


def test_the_same_store_gives_byte_identical_files_in_one_process_or_several(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from concurrent.futures import ProcessPoolExecutor

    pools: list[tuple[int, str]] = []

    class RecordingPool(ProcessPoolExecutor):
        def __init__(self, max_workers: int, **kwargs: Any) -> None:
            pools.append((max_workers, kwargs["mp_context"].get_start_method()))
            super().__init__(max_workers, **kwargs)

    monkeypatch.setattr("generator.export.workers.ProcessPoolExecutor", RecordingPool)
    ids = add(engine, *(chat(i) for i in range(40)))
    for index, candidate in enumerate(ids):
        if index % 5 == 0:
            decide(engine, candidate, "edit", messages=chat(index, answer=f"fixed {index}"))
        elif index % 7 != 0:
            decide(engine, candidate, "accept", reviewer=["ann", "bob"][index % 2])
    first, again, parallel = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    export(engine, first)
    export(engine, again)
    export(engine, parallel, workers=3)
    assert pools == [(3, "spawn")]  # only the last export ran in worker processes, spawned (every OS has spawn)
    assert first.read_bytes() == again.read_bytes() == parallel.read_bytes()
    strip = lambda text: [e | {"file": None} for e in text]  # noqa: E731
    assert strip(entries(first)) == strip(entries(parallel))
    assert [e["candidate_id"] for e in entries(first)] == sorted(e["candidate_id"] for e in entries(first))


def test_a_crash_while_writing_leaves_no_partial_file(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (candidate,) = add(engine, chat(0))
    decide(engine, candidate, "accept")
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "out.jsonl"
    out.write_text("the previous export\n")

    def crash(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("generator.export.exporter.write_manifest", crash)
    with pytest.raises(KeyboardInterrupt):
        export(engine, out, force=True)
    assert out.read_text() == "the previous export\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.jsonl"]


def test_an_unwritable_output_is_a_user_error_and_leaves_nothing(engine: Engine, tmp_path: Path) -> None:
    (candidate,) = add(engine, chat(0))
    decide(engine, candidate, "accept")
    (tmp_path / "a-file").write_text("")
    with pytest.raises(UserError, match="a-file is not a folder") as caught:
        export(engine, tmp_path / "a-file" / "out.jsonl")
    assert caught.value.exit_code == 2 and caught.value.file == str(tmp_path / "a-file" / "out.jsonl")


def test_manifest_records_counts_runs_chain_and_file_hashes(engine: Engine, tmp_path: Path, project_dir: Path) -> None:
    from generator.project import Project
    from generator.store.models import Run

    with write_session(engine) as session:
        session.add(
            Run(
                id="run-1",
                provider="openai",
                model="gpt-4o-mini",
                template="prompts/generate.jinja",
                template_hash="t1",
                config={"count": 5},
            )
        )
    a, b = add(engine, chat(0), chat(1), run_id="run-1")
    decide(engine, a, "accept")
    decide(engine, b, "edit", messages=chat(1, answer="better"))
    out = tmp_path / "out.jsonl"
    with read_session(engine) as session:
        export_dataset(session, options=ExportOptions(output=out), project=Project(root=project_dir))
    header = read_manifest_header(manifest_path(out))
    assert header["counts"] == {"lines": 2, "accepted": 1, "edited": 1, "seeds": 0, "skipped": 0}
    assert header["runs"][0]["id"] == "run-1" and header["runs"][0]["template_hash"] == "t1"
    assert len(header["runs"][0]["config_sha256"]) == 64
    assert len(header["project"]["config_sha256"]) == 64
    assert header["decision_chain"] == {"seq": 2, "head_hash": decisions(engine)[2].hash}
    import hashlib

    assert header["files"] == [{"path": "out.jsonl", "split": "train", "lines": 2, "sha256": hashlib.sha256(out.read_bytes()).hexdigest()}]


def test_tag_selects_examples(engine: Engine, tmp_path: Path) -> None:
    (billing,) = add(engine, chat(0), tags=["billing"])
    (account,) = add(engine, chat(1), tags=["account", "edge:ambiguous"])
    decide(engine, billing, "accept")
    decide(engine, account, "accept")
    export(engine, tmp_path / "a.jsonl", tags=("edge:ambiguous",))
    assert [e["candidate_id"] for e in entries(tmp_path / "a.jsonl")] == [account]
    with pytest.raises(WorkFailed, match="with tag reports"):
        export(engine, tmp_path / "b.jsonl", tags=("reports",))


# --- train / validation split -------------------------------------------------------------------------------


def _accept_many(engine: Engine, count: int, tag: str) -> list[int]:
    ids = add(engine, *(chat(1000 * len(tag) + i) for i in range(count)), tags=[tag, "edge:rare"])
    for candidate in ids:
        decide(engine, candidate, "accept")
    return ids


def test_split_is_stratified_by_category_and_deterministic(engine: Engine, tmp_path: Path) -> None:
    billing = _accept_many(engine, 30, "billing")
    account = _accept_many(engine, 10, "account")
    for folder in "abc":
        (tmp_path / folder).mkdir()
    report = export(engine, tmp_path / "a" / "data.jsonl", val_fraction=0.2, split_seed=7)
    train, validation = tmp_path / "a" / "data.jsonl", tmp_path / "a" / "data.val.jsonl"
    assert [f.split for f in report.files] == ["train", "validation"]
    in_validation = {e["candidate_id"] for e in entries(train) if e["file"] == "data.val.jsonl"}
    assert len(in_validation & set(billing)) == 6 and len(in_validation & set(account)) == 2
    assert len(lines(train)) == 32 and len(lines(validation)) == 8
    assert {e["candidate_id"] for e in entries(train)} == set(billing) | set(account)
    # Each file's entries number its own lines.
    assert [e["line"] for e in entries(train) if e["file"] == "data.val.jsonl"] == list(range(1, 9))

    export(engine, tmp_path / "b" / "data.jsonl", val_fraction=0.2, split_seed=7)
    assert (tmp_path / "b" / "data.val.jsonl").read_bytes() == validation.read_bytes()
    export(engine, tmp_path / "c" / "data.jsonl", val_fraction=0.2, split_seed=8)
    assert (tmp_path / "c" / "data.val.jsonl").read_bytes() != validation.read_bytes()


def test_split_keeps_every_category_in_training(engine: Engine, tmp_path: Path) -> None:
    _accept_many(engine, 1, "billing")
    report = export(engine, tmp_path / "data.jsonl", val_fraction=0.5)
    assert [f.split for f in report.files] == ["train"]
    assert not (tmp_path / "data.val.jsonl").exists()


# --- seeds -------------------------------------------------------------------------------------------------


def _sync_project_seeds(engine: Engine, project_dir: Path) -> list[Any]:
    from generator.seeds import load_seeds
    from generator.store.intake import sync_seeds

    seeds = load_seeds(sorted((project_dir / "seeds").glob("*.jsonl"))).seeds
    with write_session(engine) as session:
        sync_seeds(session, seeds, root=project_dir)
    return seeds


def test_include_seeds_writes_seeds_first_and_skips_candidates_that_are_seeds(engine: Engine, tmp_path: Path, project_dir: Path) -> None:
    seeds = _sync_project_seeds(engine, project_dir)
    copy, fresh = add(engine, seeds[0].example.messages_as_dicts(), chat(0))
    decide(engine, copy, "accept")
    decide(engine, fresh, "accept")
    out = tmp_path / "out.jsonl"
    report = export(engine, out, include_seeds=True)
    proof = entries(out)
    assert [e["kind"] for e in proof] == ["seed"] * len(seeds) + ["candidate"]
    assert [e["seed_id"] for e in proof[:-1]] == sorted(s.id for s in seeds)
    assert proof[-1]["candidate_id"] == fresh
    assert all(
        e["content_hash"] == messages_hash(line["messages"]) for e, line in zip(proof, lines(out), strict=True) if e["kind"] == "seed"
    )
    assert report.counts["seeds"] == len(seeds)
    assert report.skipped.listed == {"already in the export as a verified seed (promoted)": [f"candidate:{copy}"]}


def test_include_seeds_without_recorded_seeds_is_a_user_error(engine: Engine, tmp_path: Path) -> None:
    (candidate,) = add(engine, chat(0))
    decide(engine, candidate, "accept")
    with pytest.raises(UserError, match="no verified seeds") as caught:
        export(engine, tmp_path / "out.jsonl", include_seeds=True)
    assert "synthgate seeds check" in (caught.value.fix or "")


def test_preference_pairs_cannot_include_seeds(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--include-seeds"):
        export(engine, tmp_path / "out.jsonl", include_seeds=True, format="openai-dpo")


# --- the CLI ---------------------------------------------------------------------------------------------------


def test_cli_export_writes_files_and_reports_nothing_to_export_with_exit_1(engine: Engine, project_dir: Path, tmp_path: Path) -> None:
    db = ["--db", str(engine.url)]
    empty = run_cli(*db, "export", "-o", str(tmp_path / "none.jsonl"), cwd=project_dir)
    assert empty.returncode == 1, empty.stderr
    assert "nothing to export" in empty.stderr and "Traceback" not in empty.stderr
    assert not (tmp_path / "none.jsonl").exists() and not manifest_path(tmp_path / "none.jsonl").exists()

    (candidate,) = add(engine, chat(0))
    decide(engine, candidate, "accept")
    done = run_cli(*db, "export", "-o", str(tmp_path / "out.jsonl"), "--format", "sharegpt", cwd=project_dir)
    assert done.returncode == 0, done.stderr
    assert "Exported 1 example(s) as sharegpt" in done.stdout
    assert lines(tmp_path / "out.jsonl")[0]["conversations"][1] == {"from": "human", "value": "question 0.0"}

    bad = run_cli(*db, "export", "-o", str(tmp_path / "x.jsonl"), "--format", "csv", cwd=project_dir)
    assert bad.returncode == 2 and "openai-dpo" in bad.stderr and "Traceback" not in bad.stderr


def test_export_defaults_come_from_the_config(engine: Engine, project_dir: Path, tmp_path: Path) -> None:
    config = project_dir / "synthgate.toml"
    config.write_text(
        config.read_text().replace('# format = "openai"', 'format = "alpaca"').replace("# val_fraction = 0.0", "val_fraction = 0.5")
    )
    ids = add(engine, *(chat(i) for i in range(4)))
    for candidate in ids:
        decide(engine, candidate, "accept")
    result = run_cli("--db", str(engine.url), "export", "-o", str(tmp_path / "d.jsonl"), cwd=project_dir)
    assert result.returncode == 0, result.stderr
    assert set(lines(tmp_path / "d.jsonl")[0]) == {"instruction", "input", "output", "system"}
    assert len(lines(tmp_path / "d.val.jsonl")) == 2
