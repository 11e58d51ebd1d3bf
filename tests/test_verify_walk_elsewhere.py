"""`verify` with the decision chain walked in a spawned process reports exactly what a one-process verify reports."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine

from generator.export import verify as verify_module
from generator.export.manifest import manifest_path
from generator.export.verify import verify_export
from generator.export.verify_workers import ChainFacts
from generator.export.workers import ChainHead
from generator.store.db import read_session
from tests.test_export import add, chat, decide, export, raw_sql, undo

pytestmark = pytest.mark.both_stores


def _report(engine: Engine, out: Path, *, elsewhere: bool) -> tuple[bool, int, int, list[str]]:
    with read_session(engine) as session:
        # 0: walk in a spawned process whatever the store's size; a huge bound: walk here.
        report = verify_export(session, data_file=out, walk_elsewhere_from=0 if elsewhere else 10**12)
    return report.ok, report.lines_checked, report.legacy_count, [f.render() for f in report.failures]


def _forge_first_line(engine: Engine, out: Path) -> None:
    text = out.read_bytes().splitlines()
    text[0] = json.dumps({"messages": chat(0, answer="forged")}, separators=(",", ":")).encode()
    out.write_bytes(b"\n".join(text) + b"\n")
    manifest = json.loads(manifest_path(out).read_text())
    manifest["lines"][0]["sha256"] = hashlib.sha256(text[0]).hexdigest()
    manifest["files"][0]["sha256"] = hashlib.sha256(out.read_bytes()).hexdigest()
    manifest_path(out).write_text(json.dumps(manifest))


TAMPERING: dict[str, Callable[[Engine, Path], None]] = {
    "untouched": lambda engine, out: None,
    "decision altered": lambda engine, out: raw_sql(engine, "UPDATE decision SET reviewer = 'mallory' WHERE id = 4", drop_guards=True),
    "decision deleted": lambda engine, out: raw_sql(engine, "DELETE FROM decision WHERE id = 2", drop_guards=True),
    "proof removed": lambda engine, out: raw_sql(engine, "UPDATE decision SET proof = NULL WHERE id = 3", drop_guards=True),
    "undone after export": lambda engine, out: undo(engine, reviewer="bob"),
    "line and manifest forged": _forge_first_line,
}


@pytest.mark.parametrize("tampering", list(TAMPERING))
def test_a_walk_in_another_process_reports_what_one_process_reports(engine: Engine, tmp_path: Path, tampering: str) -> None:
    ids = add(engine, *(chat(i) for i in range(6)))
    for candidate in ids[:4]:
        decide(engine, candidate, "accept", reviewer="ann")
    decide(engine, ids[4], "accept", reviewer="bob")
    # A candidate accepted, that accept undone, accepted again: its live decision is the second
    # accept. (Undoing bob's accept after export leaves a candidate whose newest decision is
    # undone, which the walk cannot settle alone: the store is asked.)
    decide(engine, ids[5], "reject", reviewer="chen")
    undo(engine, reviewer="chen")
    decide(engine, ids[5], "accept", reviewer="chen")
    out = tmp_path / "out.jsonl"
    export(engine, out)
    TAMPERING[tampering](engine, out)
    here, elsewhere = _report(engine, out, elsewhere=False), _report(engine, out, elsewhere=True)
    assert elsewhere == here
    assert here[0] is (tampering == "untouched") and here[1] == 6


class _Walked:
    """A stand-in for the spawned walk's future and pool."""

    def __init__(self, outcome: ChainFacts | Exception) -> None:
        self.outcome = outcome

    def result(self) -> ChainFacts:
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome

    def shutdown(self) -> None:
        pass


@pytest.mark.parametrize(
    "outcome",
    [RuntimeError("the worker died"), ChainFacts(ChainHead(1, "a head this snapshot never saw"))],
    ids=["worker failed", "another chain head"],
)
def test_a_walk_that_failed_or_saw_another_head_is_done_again_in_this_process(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outcome: ChainFacts | Exception
) -> None:
    ids = add(engine, *(chat(i) for i in range(3)))
    for candidate in ids:
        decide(engine, candidate, "accept", reviewer="ann")
    out = tmp_path / "out.jsonl"
    export(engine, out)
    walked = _Walked(outcome)
    monkeypatch.setattr(verify_module, "start_walk", lambda session, with_key: (walked, walked))
    assert _report(engine, out, elsewhere=True) == (True, 3, 0, [])
