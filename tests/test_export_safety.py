"""`export` never clobbers what it must not, writes its files together or not at all, honours the umask, and starts no process."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from generator.errors import UserError
from generator.export.exporter import ExportOptions, ExportReport, export_dataset
from generator.export.manifest import manifest_path
from generator.project import Project
from generator.store.db import read_session
from tests.conftest import run_cli
from tests.test_export import add, chat, decide, decisions, entries, export, lines


@pytest.fixture
def accepted(engine: Engine) -> list[int]:
    """Three accepted candidates: enough for a train/validation split."""
    ids = add(engine, *(chat(i) for i in range(3)))
    for candidate in ids:
        decide(engine, candidate, "accept")
    return ids


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """An empty folder for exports (tmp_path also holds the store and the signing keys' home)."""
    made = tmp_path / "exports"
    made.mkdir()
    return made


@pytest.fixture
def project(project_dir: Path) -> Project:
    """The test project with every kind of file an export must leave alone configured."""
    (project_dir / "facts.md").write_text("Ledgerly plans: Free, Pro.\n")
    (project_dir / "replay.jsonl").write_text("{}\n")
    config = project_dir / "synthgate.toml"
    text = config.read_text()
    text = text.replace("[generate]\n", '[generate]\ncontext_files = ["facts.md"]\nreplay_file = "replay.jsonl"\n', 1)
    text = text.replace("[checks]\n", '[checks]\nholdout = ["eval/holdout.jsonl"]\n', 1)
    text = text.replace("[export]\n", '[export]\npromote_to = "grown/promoted.jsonl"\n', 1)
    config.write_text(text)
    (project_dir / "grown").mkdir()
    (project_dir / "grown" / "promoted.jsonl").write_text("")
    (project_dir / ".synthgate").mkdir(exist_ok=True)
    return Project(root=project_dir)


def export_in(engine: Engine, project: Project | None, output: Path, **options: Any) -> ExportReport:
    with read_session(engine) as session:
        return export_dataset(session, options=ExportOptions(output=output, **options), project=project)


def snapshot(folder: Path) -> dict[str, bytes | str]:
    """Every entry under `folder`, with the bytes of its regular files: what "nothing written" compares."""
    found: dict[str, bytes | str] = {}
    for path in sorted(folder.rglob("*")):
        mode = path.lstat().st_mode
        found[str(path.relative_to(folder))] = path.read_bytes() if stat.S_ISREG(mode) else stat.filemode(mode)
    return found


def refused(action: Callable[[], object], *, watched: Path, match: str) -> UserError:
    """Run an export that must be refused: a UserError (exit 2) matching `match`, and nothing under `watched` changed."""
    before = snapshot(watched)
    with pytest.raises(UserError, match=match) as caught:
        action()
    assert caught.value.exit_code == 2
    assert snapshot(watched) == before
    return caught.value


# --- the project's own files and the store ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("relative", "what"),
    [
        ("synthgate.toml", "the project's config"),
        ("prompts/generate.jinja", "the generation template"),
        ("seeds/seeds.jsonl", "a seed file of the project"),
        ("seeds/a-new-file.jsonl", "a seed file of the project"),  # matched by the glob: it would join the seeds
        ("eval/holdout.jsonl", "a holdout file"),
        ("facts.md", "a context file"),
        ("replay.jsonl", "the replay file"),
        ("grown/promoted.jsonl", "the promoted seed file"),
        (".synthgate/export.jsonl", "the project's state folder"),
    ],
)
def test_a_project_file_is_never_replaced_not_even_with_force(
    engine: Engine, accepted: list[int], project: Project, relative: str, what: str
) -> None:
    target = project.root / relative
    error = refused(lambda: export_in(engine, project, target, force=True), watched=project.root, match=what)
    assert error.file == str(target) and "not even with --force" in error.message


@pytest.mark.parametrize("suffix", ["", "-wal", "-shm", "-journal"])
def test_the_review_store_and_its_sqlite_files_are_never_replaced(engine: Engine, accepted: list[int], suffix: str) -> None:
    store = Path(str(engine.url.database))
    assert (store.parent / (store.name + "-wal")).exists()  # the engine's open connection keeps the WAL
    target = store.with_name(store.name + suffix)
    refused(lambda: export_in(engine, None, target, force=True), watched=store.parent, match="the review store")


def test_a_symlink_is_resolved_before_comparing(engine: Engine, accepted: list[int], project: Project, folder: Path) -> None:
    (folder / "innocent.jsonl").symlink_to(project.root / "seeds" / "seeds.jsonl")
    refused(lambda: export_in(engine, project, folder / "innocent.jsonl", force=True), watched=project.root, match="a seed file")


def test_the_validation_file_and_the_manifest_are_guarded_like_the_training_file(
    engine: Engine, accepted: list[int], project: Project, folder: Path
) -> None:
    out = folder / "train.jsonl"
    refused(
        lambda: export_in(engine, project, out, val_fraction=0.5, val_output=project.config_path),
        watched=project.root,
        match="the project's config",
    )
    refused(
        lambda: export_in(engine, project, out, val_fraction=0.5, val_output=out),
        watched=folder,
        match="both the training file and the validation file",
    )
    manifest_path(out).write_text("someone's notes, not a manifest\n")
    refused(lambda: export_in(engine, project, out), watched=folder, match="not a previous synthgate export")


# --- what is at the path -------------------------------------------------------------------------------------


def test_a_folder_is_refused(engine: Engine, accepted: list[int], folder: Path) -> None:
    (folder / "out.jsonl").mkdir()
    refused(lambda: export(engine, folder / "out.jsonl", force=True), watched=folder, match="is a folder")


def test_a_fifo_is_refused_and_stays_a_fifo(engine: Engine, accepted: list[int], folder: Path) -> None:
    fifo = folder / "pipe.jsonl"
    os.mkfifo(fifo)
    refused(lambda: export(engine, fifo, force=True), watched=folder, match="not a regular file")
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_a_missing_folder_is_named_and_not_created(engine: Engine, accepted: list[int], folder: Path) -> None:
    error = refused(lambda: export(engine, folder / "nowhere" / "out.jsonl"), watched=folder, match="nowhere does not exist")
    assert "mkdir" in (error.fix or "")
    assert not (folder / "nowhere").exists()


def test_a_manifest_path_that_is_a_folder_is_refused_before_anything_is_written(engine: Engine, accepted: list[int], folder: Path) -> None:
    manifest_path(folder / "out.jsonl").mkdir()
    refused(lambda: export(engine, folder / "out.jsonl"), watched=folder, match=r"is a folder, not a file \(the manifest of this export")
    assert not (folder / "out.jsonl").exists()


def test_an_unrelated_file_is_refused_without_force_and_replaced_with_it(engine: Engine, accepted: list[int], folder: Path) -> None:
    notes = folder / "notes.jsonl"
    notes.write_text("my own notes\n")
    error = refused(lambda: export(engine, notes), watched=folder, match="not a previous synthgate export")
    assert "--force" in (error.fix or "")
    export(engine, notes, force=True)
    assert len(lines(notes)) == 3 and len(entries(notes)) == 3


def test_an_unrelated_validation_file_is_refused_without_force(engine: Engine, accepted: list[int], folder: Path) -> None:
    (folder / "d.val.jsonl").write_text("keep me\n")
    refused(lambda: export(engine, folder / "d.jsonl", val_fraction=0.5), watched=folder, match="not a previous synthgate export")


def test_a_previous_export_is_replaced_without_force_an_unrelated_file_is_not(engine: Engine, accepted: list[int], folder: Path) -> None:
    out = folder / "d.jsonl"
    export(engine, out, val_fraction=0.5)
    (extra,) = add(engine, chat(7))
    decide(engine, extra, "accept")
    report = export(engine, out, val_fraction=0.5)
    assert report.counts["lines"] == 4
    assert sorted(e["candidate_id"] for e in entries(out)) == [*accepted, extra]
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "d.jsonl",
        "d.jsonl.manifest.json",
        "d.val.jsonl",
    ]  # README.md: the dataset card
    # Its manifest must name the file: a manifest beside another name proves nothing about this one.
    (folder / "e.jsonl").write_text("not an export\n")
    manifest_path(out).rename(manifest_path(folder / "e.jsonl"))
    refused(lambda: export(engine, folder / "e.jsonl"), watched=folder, match="not a previous synthgate export")


# --- the CLI: one line, exit 2 -------------------------------------------------------------------------------


def test_cli_refuses_the_store_with_one_line_and_writes_nothing(engine: Engine, accepted: list[int], project_dir: Path) -> None:
    store = Path(str(engine.url.database))
    # Opening the store may checkpoint its WAL into the file (the in-process tests compare bytes): the same file, the same decisions.
    before = store.stat().st_ino, decisions(engine)
    result = run_cli("--db", str(engine.url), "export", "-o", str(store), "--force", cwd=project_dir)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        f"error: {store}: is the review store; an export never replaces it (not even with --force)",
        "  fix: write the export to a new file, e.g. exports/train.jsonl",
    ]
    assert (store.stat().st_ino, decisions(engine)) == before
    assert store.read_bytes().startswith(b"SQLite format 3\x00")


def test_cli_force_replaces_an_unrelated_file(engine: Engine, accepted: list[int], project_dir: Path, folder: Path) -> None:
    target = folder / "data.jsonl"
    target.write_text("not an export\n")
    db = ("--db", str(engine.url))
    plain = run_cli(*db, "export", "-o", str(target), cwd=project_dir)
    assert plain.returncode == 2 and "pass --force" in plain.stderr and "Traceback" not in plain.stderr
    assert target.read_text() == "not an export\n"
    forced = run_cli(*db, "export", "-o", str(target), "--force", cwd=project_dir)
    assert forced.returncode == 0, forced.stderr
    assert len(lines(target)) == 3


def test_cli_refuses_a_folder_in_its_own_words(engine: Engine, accepted: list[int], project_dir: Path, folder: Path) -> None:
    result = run_cli("--db", str(engine.url), "export", "-o", str(folder), cwd=project_dir)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {folder}: is a folder, not a file (the training file of this export goes here)\n  fix: ")


# --- together or not at all ----------------------------------------------------------------------------------


def test_a_failed_rename_puts_the_previous_export_back(
    engine: Engine, accepted: list[int], folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = folder / "d.jsonl"
    export(engine, out, val_fraction=0.5)
    before = snapshot(folder)
    (extra,) = add(engine, chat(7))
    decide(engine, extra, "accept")
    real_replace = os.replace

    def failing_on_the_manifest(source: Any, destination: Any) -> None:
        if str(destination).endswith(".manifest.json"):
            raise OSError(28, "No space left on device")
        real_replace(source, destination)

    monkeypatch.setattr(os, "replace", failing_on_the_manifest)
    with pytest.raises(Exception, match="No space left on device"):
        export(engine, out, val_fraction=0.5)
    assert snapshot(folder) == before


def test_a_failed_first_export_leaves_no_file(engine: Engine, accepted: list[int], folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_replace = os.replace

    def failing_on_the_manifest(source: Any, destination: Any) -> None:
        if str(destination).endswith(".manifest.json"):
            raise OSError(5, "Input/output error")
        real_replace(source, destination)

    monkeypatch.setattr(os, "replace", failing_on_the_manifest)
    with pytest.raises(Exception, match="Input/output error"):
        export(engine, folder / "d.jsonl")
    assert list(folder.iterdir()) == []


def test_a_file_that_appears_during_the_export_is_not_replaced(
    engine: Engine, accepted: list[int], folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from generator.export.manifest import write_manifest

    out = folder / "d.jsonl"

    def someone_else_writes(*args: Any, **kwargs: Any) -> None:
        out.write_text("written meanwhile by someone else\n")
        write_manifest(*args, **kwargs)

    monkeypatch.setattr("generator.export.exporter.write_manifest", someone_else_writes)
    with pytest.raises(UserError, match="not a previous synthgate export"):
        export(engine, out)
    assert out.read_text() == "written meanwhile by someone else\n"
    assert sorted(p.name for p in folder.iterdir()) == ["d.jsonl"]


# --- modes ---------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o027, 0o640)])
def test_exports_are_created_with_the_umask(engine: Engine, accepted: list[int], folder: Path, mask: int, mode: int) -> None:
    out = folder / "d.jsonl"
    with umask(mask):
        export(engine, out, val_fraction=0.5)
        export(engine, out, val_fraction=0.5)  # replacing a previous export: the same mode
    for written in (out, folder / "d.val.jsonl", manifest_path(out)):
        assert stat.S_IMODE(written.stat().st_mode) == mode, written


# --- processes -----------------------------------------------------------------------------------------------


def test_export_workers_are_spawned_never_forked(
    engine: Engine, accepted: list[int], folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("export forked")

    monkeypatch.setattr(os, "fork", forbidden)
    # The parent holds an open read transaction all along: nothing of it may reach a worker.
    report = export(engine, folder / "d.jsonl", workers=2)
    assert report.counts["lines"] == 3
    assert [e["candidate_id"] for e in entries(folder / "d.jsonl")] == accepted


# --- one snapshot ----------------------------------------------------------------------------------------------


def test_a_review_saved_during_a_parallel_export_is_not_half_seen(engine: Engine, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from generator.export.manifest import read_manifest_header
    from generator.export.workers import render_all_candidates

    first, second = add(engine, chat(0), chat(1))
    decide(engine, first, "accept")

    def a_reviewer_decides_meanwhile(*args: Any, **kwargs: Any) -> Any:
        decide(engine, second, "accept")  # after the export read its chain head, before the workers start
        return render_all_candidates(*args, **kwargs)

    monkeypatch.setattr("generator.export.exporter.render_all_candidates", a_reviewer_decides_meanwhile)
    out = folder / "d.jsonl"
    export(engine, out, workers=2)
    # Each worker reads its own snapshot, which holds the new decision: its range is rendered again in the export's.
    assert [e["candidate_id"] for e in entries(out)] == [first]
    assert read_manifest_header(manifest_path(out))["decision_chain"]["seq"] == 1


@pytest.fixture
def postgres_engine(pg_store_url: str) -> Iterator[Engine]:
    """A migrated, empty store in the test session's PostgreSQL database."""
    from generator.store.db import open_store

    store = open_store(pg_store_url)
    yield store
    store.dispose()


def test_on_postgresql_a_decision_made_during_the_export_is_not_half_seen(
    postgres_engine: Engine, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from generator.export.manifest import read_manifest_header
    from generator.export.selection import iter_accepted

    first, second = add(postgres_engine, chat(0), chat(1))
    decide(postgres_engine, first, "accept")

    def a_reviewer_decides_meanwhile(*args: Any, **kwargs: Any) -> Any:
        decide(postgres_engine, second, "accept")  # committed after the chain head was read
        return iter_accepted(*args, **kwargs)

    monkeypatch.setattr("generator.export.render.iter_accepted", a_reviewer_decides_meanwhile)
    out = folder / "d.jsonl"
    export(postgres_engine, out)
    # PostgreSQL's default READ COMMITTED would show the new decision beside the older chain head.
    assert [e["candidate_id"] for e in entries(out)] == [first]
    assert read_manifest_header(manifest_path(out))["decision_chain"]["seq"] == 1
