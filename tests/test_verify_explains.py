"""`verify` explains itself: it finds the manifest of a validation file, names the store an export came from, and never creates one."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from generator.errors import UserError
from generator.export.manifest import read_manifest_header
from generator.store.db import open_store
from tests.conftest import run_cli
from tests.test_export import add, chat, decide, export
from tests.test_verify import verify


def _split_export(engine: Engine, tmp_path: Path) -> Path:
    for candidate in add(engine, *(chat(i) for i in range(10)), tags=["billing"]):
        decide(engine, candidate, "accept")
    out = tmp_path / "d.jsonl"
    export(engine, out, val_fraction=0.3)
    return out


def test_the_manifest_names_the_store_and_every_file_written(engine: Engine, tmp_path: Path) -> None:
    out = _split_export(engine, tmp_path)
    header = read_manifest_header(tmp_path / "d.jsonl.manifest.json")
    assert header["store_location"] == f"sqlite:///{Path(str(engine.url.database)).resolve()}"
    assert [(f["path"], f["split"]) for f in header["files"]] == [("d.jsonl", "train"), ("d.val.jsonl", "validation")]
    assert out.exists()


def test_verify_accepts_the_validation_file_and_proves_the_whole_export(engine: Engine, tmp_path: Path) -> None:
    _split_export(engine, tmp_path)
    report = verify(engine, tmp_path / "d.val.jsonl")
    assert report.ok and report.lines_checked == 10
    assert report.manifest == tmp_path / "d.jsonl.manifest.json"


def test_verify_against_another_store_names_both_stores_instead_of_failing_every_line(engine: Engine, tmp_path: Path) -> None:
    out = _split_export(engine, tmp_path)
    other = open_store(f"sqlite:///{tmp_path / 'other.db'}")
    with pytest.raises(UserError) as caught:
        verify(other, out)
    message = caught.value.render()
    header = read_manifest_header(tmp_path / "d.jsonl.manifest.json")
    assert f"this export was made from store {header['store_id']} at {header['store_location']}" in message
    assert "you are verifying against" in message and "pass --db" in message


def test_cli_verify_without_a_store_exits_2_and_creates_nothing(engine: Engine, tmp_path: Path, project_dir: Path) -> None:
    out = _split_export(engine, tmp_path)
    result = run_cli("verify", str(tmp_path / "d.val.jsonl"), cwd=project_dir)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "this export was made from store" in result.stderr and "pass --db" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (project_dir / ".synthgate" / "queue.db").exists()
    ok = run_cli("--db", str(engine.url), "verify", str(tmp_path / "d.val.jsonl"), cwd=project_dir)
    assert ok.returncode == 0 and "OK: 10 line(s)" in ok.stdout
    assert out.exists()
