"""The team walk-through on one PostgreSQL store, through the CLI and real terminals: overlap, two reviewers, adjudication, agreement, export."""

from __future__ import annotations

import functools
import json
import os
import select
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from generator.store.db import open_store
from tests.conftest import REPO, run_cli
from tests.review_snapshot_app import Terminal

pytestmark = pytest.mark.slow


def _read_until(terminal: Terminal, done: Callable[[bytes], bool], timeout: float = 60) -> None:
    """Read the terminal until `done(output)` holds (a generous deadline; never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while not done(terminal.output):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or terminal.process.poll() is not None:
            raise AssertionError(f"the terminal never got there; it showed:\n{terminal.output[-3000:]!r}")
        ready, _, _ = select.select([terminal.master], [], [], remaining)
        if ready:
            terminal.output += os.read(terminal.master, 65536)


def _saved_at_least(count: int, output: bytes) -> bool:
    return output.count(b"saved: ") >= count


def _holds_a_candidate(owner: Engine, role: str) -> bool:
    with owner.connect() as connection:
        held = connection.execute(
            text("SELECT count(*) FROM candidate WHERE lease_owner = :role AND lease_expires_at > now()"), {"role": role}
        ).scalar_one()
    return bool(held)


def _review_until_empty(terminal: Terminal, owner: Engine, role: str, keys_for: Callable[[int], str]) -> int:
    """Decide every candidate the terminal shows (`keys_for(n)`: the keys for the n-th decision); returns how many."""
    _read_until(terminal, lambda out: b"Candidate #" in out or b"Nothing left to review" in out)
    decided = 0
    # The app commits the next claim before it shows "saved", so the store says whether a candidate is on screen.
    while _holds_a_candidate(owner, role):
        terminal.press(keys_for(decided))
        decided += 1
        _read_until(terminal, functools.partial(_saved_at_least, decided))
    _read_until(terminal, lambda out: b"Nothing left to review" in out)
    return decided


def test_two_reviewers_an_adjudicator_agreement_and_an_export_of_exactly_what_they_settled(
    tmp_path: Path, pg_store_url: str, test_role_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "assistant"

    def run(*args: str) -> str:
        result = run_cli(*args, cwd=project if project.exists() else tmp_path, env={"SYNTHGATE_DB": pg_store_url})
        output = result.stdout + result.stderr
        assert result.returncode == 0 and "Traceback" not in output, f"synthgate {' '.join(args)} (exit {result.returncode}):\n{output}"
        return output

    # The owner: a fresh store, half the candidates to two reviewers, marked by generate itself.
    run("init", str(project))
    shutil.copyfile(REPO / "seeds" / "support.jsonl", project / "seeds" / "seeds.jsonl")
    config = project / "synthgate.toml"
    config.write_text(config.read_text(encoding="utf-8").replace("# overlap = 0.0", "overlap = 0.5"), encoding="utf-8")
    run("seeds", "check")
    run("generate", "--provider", "replay", "--replay-file", str(REPO / "demo" / "recording.jsonl"), "-n", "10", "--per-request", "5")
    owner = open_store(pg_store_url)
    with owner.connect() as connection:
        needs: dict[int, int] = dict(connection.execute(text("SELECT id, reviews_needed FROM candidate WHERE status = 'pending'")).all())
    overlapped = {cid for cid, n in needs.items() if n == 2}
    assert overlapped and len(overlapped) < len(needs)  # the owner's generate marked a share, not all

    ann, bob, cat = (f"{test_role_prefix}{name}" for name in ("ann", "bob", "cat"))
    run("team", "add-reviewer", ann)
    run("team", "add-reviewer", bob)
    assert "may also adjudicate" in run("team", "add-reviewer", cat, "--adjudicator")
    owner_home = os.environ["SYNTHGATE_HOME"]

    def terminal_for(role: str, *args: str) -> Terminal:
        # Each on their own machine: their role in the URL, no key file.
        monkeypatch.setenv("SYNTHGATE_DB", make_url(pg_store_url).set(username=role).render_as_string(hide_password=False))
        monkeypatch.setenv("SYNTHGATE_HOME", str(tmp_path / f"home-{role}"))
        return Terminal(["review", *args], cwd=project)

    # Two reviewers in two terminals: ann accepts everything, then bob (ann's app still open) rejects everything.
    # One after the other, so ann's count is known: a candidate bob held meanwhile would come back to her
    # only at her app's next poll of an empty queue.
    ann_terminal = terminal_for(ann)
    bob_terminal = None
    try:
        assert _review_until_empty(ann_terminal, owner, ann, lambda n: "a") == len(needs)
        bob_terminal = terminal_for(bob)
        assert _review_until_empty(bob_terminal, owner, bob, lambda n: "r1") == len(overlapped)  # blind, and never twice
        _read_until(bob_terminal, lambda out: f"{len(needs) - len(overlapped)} decided · {len(overlapped)} left".encode() in out)
    finally:
        ann_terminal.kill()
        if bob_terminal is not None:
            bob_terminal.kill()

    # Every overlapped candidate is a disagreement: the adjudicator accepts the first and rejects the rest.
    cat_terminal = terminal_for(cat, "--adjudicate")
    try:
        _read_until(cat_terminal, lambda out: f"0 settled · {len(overlapped)} left".encode() in out)
        settled = _review_until_empty(cat_terminal, owner, cat, lambda n: "a" if n == 0 else "r1")
        _read_until(cat_terminal, lambda out: f"{len(overlapped)} settled · 0 left".encode() in out)
    finally:
        cat_terminal.kill()
    assert settled == len(overlapped)
    monkeypatch.setenv("SYNTHGATE_DB", pg_store_url)
    monkeypatch.setenv("SYNTHGATE_HOME", owner_home)  # back on the owner's machine

    agreement = run("agreement", "--json")
    pairs = json.loads(agreement)["pairs"]
    assert [(sorted(p["reviewers"]), p["n"], p["agreed"]) for p in pairs] == [(sorted([ann, bob]), len(overlapped), 0)]
    assert "kappa" in pairs[0]

    run("export", "-o", "train.jsonl")
    run("verify", "train.jsonl")
    manifest = json.loads((project / "train.jsonl.manifest.json").read_text(encoding="utf-8"))
    exported = {line["candidate_id"] for line in manifest["lines"]}
    with owner.connect() as connection:
        decisions = connection.execute(text("SELECT candidate_id, reviewer, action, kind FROM decision ORDER BY id")).all()
    owner.dispose()
    first_settled = next(d.candidate_id for d in decisions if d.kind == "adjudication")
    accepted_alone = {d.candidate_id for d in decisions if d.candidate_id not in overlapped and d.action == "accept"}
    assert exported == accepted_alone | {first_settled}  # the agreements (none) and the adjudicator's one acceptance
    assert {d.reviewer for d in decisions} == {ann, bob, cat}
