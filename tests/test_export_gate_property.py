"""Property: after any sequence of accept, reject, edit and undo by several reviewers, the export holds
exactly the examples whose latest live decision accepts them, in their final content -- and verifies."""

from __future__ import annotations

import itertools
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from generator.errors import WorkFailed
from generator.examples import Example
from generator.export.verify import verify_export
from generator.store.db import open_store, read_session, write_session
from generator.store.queue import QueueError, record_decision, undo_last_decision
from tests.conftest import empty_pg_store
from tests.test_export import add, chat, entries, export, lines

CANDIDATES = 4
REVIEWERS = ("ann", "bob", "chen")
_databases = itertools.count()

steps = st.lists(
    st.tuples(st.sampled_from(["accept", "reject", "edit", "undo"]), st.integers(0, CANDIDATES - 1), st.sampled_from(REVIEWERS)),
    max_size=30,
)


@dataclass
class Model:
    """What the export should hold, computed from the decisions alone."""

    status: dict[int, str]
    original: dict[int, list[dict[str, str]]]
    final: dict[int, list[dict[str, str]]] = field(default_factory=dict)
    accepted_by: dict[int, int] = field(default_factory=dict)  # candidate -> live accepting decision id
    live: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # reviewer -> [(decision id, candidate)]
    leased_to: dict[int, str] = field(default_factory=dict)  # an undone candidate goes back to its reviewer


@pytest.fixture(scope="module")
def blank_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated store, copied for every example (migrating each time would dominate the run)."""
    path = tmp_path_factory.mktemp("template") / "queue.db"
    open_store(f"sqlite:///{path}").dispose()
    return path


def fresh_engine(blank_store: Path, folder: Path) -> Engine:
    path = folder / f"queue-{next(_databases)}.db"
    shutil.copyfile(blank_store, path)
    return open_store(f"sqlite:///{path}")


@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=steps)
def test_export_holds_exactly_the_live_acceptances_in_final_content(
    blank_store: Path, tmp_path: Path, steps: list[tuple[str, int, str]]
) -> None:
    check_the_gate(fresh_engine(blank_store, tmp_path), tmp_path, steps)


# Fewer examples on PostgreSQL: each one empties the database (~0.8 s an example on the 2-core CI machine).
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=steps)
def test_export_holds_exactly_the_live_acceptances_on_postgresql(
    pg_database: str, tmp_path: Path, steps: list[tuple[str, int, str]]
) -> None:
    empty_pg_store(pg_database)
    check_the_gate(open_store(pg_database), tmp_path, steps)


def check_the_gate(engine: Engine, tmp_path: Path, steps: list[tuple[str, int, str]]) -> None:
    try:
        ids = add(engine, *(chat(i) for i in range(CANDIDATES)))
        model = Model(status=dict.fromkeys(ids, "pending"), original={c: chat(i) for i, c in enumerate(ids)})
        for number, (action, index, reviewer) in enumerate(steps):
            apply(engine, model, action, ids[index], reviewer, number)

        out = tmp_path / f"export-{next(_databases)}.jsonl"
        expected = {c: model.final[c] for c in ids if model.status[c] == "accepted"}
        if not expected:
            with pytest.raises(WorkFailed, match="nothing to export"):
                export(engine, out)
            assert not out.exists()
            return
        report = export(engine, out)
        proof = entries(out)
        assert {e["candidate_id"]: line["messages"] for e, line in zip(proof, lines(out), strict=True)} == expected
        assert [e["candidate_id"] for e in proof] == sorted(expected)
        assert {e["candidate_id"]: e["decision_id"] for e in proof} == {c: model.accepted_by[c] for c in expected}
        assert report.counts["skipped"] == 0
        with read_session(engine) as session:
            assert verify_export(session, data_file=out).ok
    finally:
        engine.dispose()


def apply(engine: Engine, model: Model, action: str, candidate: int, reviewer: str, number: int) -> None:
    """Do one step through the queue API and update the model the same way."""
    with write_session(engine) as session:
        if action == "undo":
            view = undo_last_decision(session, reviewer=reviewer)
            mine = model.live.get(reviewer, [])
            if not mine:
                assert view is None
                return
            decision_id, target = mine.pop()
            assert view is not None and view.undoes_id == decision_id
            model.status[target] = "pending"
            model.accepted_by.pop(target, None)
            model.leased_to[target] = reviewer
            return
        edited = Example(messages=chat(candidate, answer=f"corrected in step {number}")) if action == "edit" else None
        reasons = ["off-policy"] if action == "reject" else []
        if model.status[candidate] != "pending" or model.leased_to.get(candidate, reviewer) != reviewer:
            with pytest.raises(QueueError):
                record_decision(session, candidate_id=candidate, reviewer=reviewer, action=action, reasons=reasons, edited=edited)
            return
        view = record_decision(session, candidate_id=candidate, reviewer=reviewer, action=action, reasons=reasons, edited=edited)
    model.live.setdefault(reviewer, []).append((view.id, candidate))
    model.leased_to.pop(candidate, None)
    model.status[candidate] = "rejected" if action == "reject" else "accepted"
    if action != "reject":
        model.final[candidate] = edited.messages_as_dicts() if edited else model.original[candidate]
        model.accepted_by[candidate] = view.id
