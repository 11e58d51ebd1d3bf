"""`generate --variants K`: groups of answers to one question, generated against the loopback fake, reviewed in the app, exported as pairs."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import col, select

from generator.store.db import read_session
from generator.store.models import Candidate, LLMCall
from review_tui.app import ReviewApp
from tests.conftest import run_in_process
from tests.fake_llm_server import FakeLLMServer
from tests.review_snapshot_app import make_fixture_app, review_screen, screen_text, settle
from tests.test_decision_forgery import database_of, write_unsigned_decision
from tests.test_export import decide, entries, export, lines, undo
from tests.test_verify import problems, verify

pytestmark = pytest.mark.both_stores  # generation, review and export run on SQLite and on PostgreSQL

SIZE = (140, 40)


@pytest.fixture
def fake() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


@pytest.fixture
def generate(
    project_dir: Path, store_url: str, fake: FakeLLMServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str]]:
    """`synthgate --db URL generate --base-url FAKE ARGS` in-process; returns (exit code, stdout + stderr)."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-variants")

    def run(*args: str) -> tuple[int, str]:
        argv = ["--project", str(project_dir), "--db", store_url, "generate", "--base-url", fake.openai_base_url]
        code = run_in_process([*argv, "--concurrency", "4", *args], monkeypatch)
        out, err = capsys.readouterr()
        return code, out + err

    return run


@pytest.fixture
def store(engine: Engine) -> Engine:
    return engine


def groups_of(engine: Engine) -> dict[str, list[Candidate]]:
    """Every variant group, its members in queue order."""
    with read_session(engine) as session:
        rows = session.exec(select(Candidate).order_by(col(Candidate.review_order), col(Candidate.id))).all()
    grouped: dict[str, list[Candidate]] = defaultdict(list)
    for row in rows:
        assert row.variant_group is not None, f"candidate {row.id} is in no group"
        grouped[row.variant_group].append(row)
    return grouped


def test_variants_are_stored_as_groups_in_order_and_a_rerun_pays_for_nothing_again(
    generate: Callable[..., tuple[int, str]], fake: FakeLLMServer, store: Engine
) -> None:
    code, output = generate("-n", "4", "--per-request", "2", "--variants", "3")
    assert code == 0, output
    assert "--variants 3: 4 group(s), 8 variant request(s) of which 8 sent now; 8 new variant candidate(s)" in output
    assert "Done: 4 new candidate(s) and 8 variant answer(s) in their groups in the review queue." in output
    assert fake.requests == 2 + 8  # two generation requests, then two more answers to each of the 4 questions
    variant_bodies = [entry["body"] for entry in fake.log if "response_format" not in entry["body"]]
    assert len(variant_bodies) == 8  # plain chat: no schema, the conversation up to its last user turn
    assert all(body["messages"][-1]["role"] == "user" for body in variant_bodies)

    groups = groups_of(store)
    assert len(groups) == 4
    for key, members in groups.items():
        original = members[0]
        assert original.source_key == key  # the group is named after the example it varies
        assert [m.variant_index for m in members] == [0, 1, 2]  # consecutive in the queue, in order
        assert all(m.status == "pending" for m in members), [(m.id, m.filter_reason, m.filter_match) for m in members]
        prompt = original.messages[:-1]
        answers = [m.messages[-1]["content"] for m in members]
        assert all(m.messages[:-1] == prompt and m.messages[-1]["role"] == "assistant" for m in members)
        assert len(set(answers)) == 3 and all(original.messages[-1]["content"] in a for a in answers[1:])
        assert all(m.tags == original.tags and m.run_id == original.run_id for m in members)

    # The same command again: nothing is sent, nothing is stored twice.
    code, output = generate("-n", "4", "--per-request", "2", "--variants", "3")
    assert code == 0, output
    assert "8 variant request(s) of which 0 sent now; 0 new variant candidate(s)" in output
    assert fake.requests == 10
    assert sum(len(m) for m in groups_of(store).values()) == 12
    with read_session(store) as session:
        statuses = session.exec(select(LLMCall.status)).all()
    assert len(statuses) == 10 and set(statuses) == {"ok"}


def test_variants_out_of_range_is_refused_with_exit_2(generate: Callable[..., tuple[int, str]], fake: FakeLLMServer) -> None:
    code, output = generate("-n", "2", "--variants", "11")
    assert code == 2 and "--variants 11: answers per question must be 1-10" in output
    assert fake.requests == 0


def test_a_dry_run_counts_and_prices_the_variant_requests(generate: Callable[..., tuple[int, str]], fake: FakeLLMServer) -> None:
    code, output = generate("-n", "6", "--variants", "3", "--dry-run")
    assert code == 0, output
    assert "--variants 3: then 12 more request(s) (2 per example" in output and "estimated cost ≈ $" in output
    code, output = generate("-n", "6", "--variants", "3", "--dry-run", "--json")
    assert code == 0 and json.loads(output)["variant_requests"] == 12
    assert fake.requests == 0


async def _review_group(app: ReviewApp, keys: list[tuple[str, ...]]) -> list[str]:
    """Press each key sequence on the candidate shown; returns the title each candidate had."""
    titles = []
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for sequence in keys:
            screen = review_screen(app)
            assert screen is not None and screen.candidate is not None
            titles.append(next(line for line in screen_text(app).splitlines() if "Candidate #" in line))
            await pilot.press(*sequence)
            await settle(pilot)
    return titles


@pytest.fixture
def reviewed_group(generate: Callable[..., tuple[int, str]], store: Engine, store_url: str) -> list[Candidate]:
    """A --variants 3 run; its first group reviewed in the app: the first answer accepted, the other two rejected."""
    code, output = generate("-n", "2", "--per-request", "2", "--variants", "3")
    assert code == 0, output
    first = next(iter(groups_of(store).values()))
    reviewer = "ann" if store.dialect.name == "sqlite" else str(store.url.username)
    app = make_fixture_app(store, reviewer=reviewer)
    import asyncio

    titles = asyncio.run(_review_group(app, [("a",), ("r", "1"), ("r", "2")]))
    for position, title in enumerate(titles, start=1):
        assert f"Candidate #{first[position - 1].id} · {position}/3 of a group" in title
    return first


def test_a_group_reviewed_in_the_app_yields_every_accepted_rejected_pair_and_verify_proves_both_decisions(
    reviewed_group: list[Candidate], store: Engine, tmp_path: Path
) -> None:
    chosen, *losers = reviewed_group
    out = tmp_path / "dpo.jsonl"
    report = export(store, out, format="trl-dpo")
    prompt = chosen.messages[:-1]
    assert lines(out) == [{"prompt": prompt, "chosen": chosen.messages[-1:], "rejected": loser.messages[-1:]} for loser in losers]
    assert report.counts["pairs"] == 2
    listed = entries(out)
    assert [(e["kind"], e["candidate_id"], e["action"], e["rejected"]["candidate_id"], e["rejected"]["action"]) for e in listed] == [
        ("pair", chosen.id, "accept", loser.id, "reject") for loser in losers
    ]
    assert [e["rejected"]["reasons"] for e in listed] == [["factually wrong"], ["off-policy"]]
    assert verify(store, out).ok, problems(verify(store, out))
    assert "| pairs | 2 |" in (tmp_path / "README.md").read_text()

    openai_dpo = tmp_path / "openai-dpo.jsonl"
    export(store, openai_dpo, format="openai-dpo")
    assert [line["non_preferred_output"] for line in lines(openai_dpo)] == [loser.messages[-1:] for loser in losers]
    assert verify(store, openai_dpo).ok


def test_a_rejected_variant_is_never_a_positive_in_a_training_export(
    reviewed_group: list[Candidate], store: Engine, tmp_path: Path
) -> None:
    chosen, *_ = reviewed_group
    for name in ("openai", "trl"):
        out = tmp_path / f"{name}.jsonl"
        export(store, out, format=name)
        assert lines(out) == [{"messages": chosen.messages}]
    kto = tmp_path / "kto.jsonl"
    export(store, kto, format="trl-kto")
    assert [line["label"] for line in lines(kto)] == [True, False, False]


def test_a_pair_whose_rejection_is_undone_or_forged_in_the_manifest_fails_verify_naming_the_line(
    reviewed_group: list[Candidate], store: Engine, tmp_path: Path
) -> None:
    out = tmp_path / "dpo.jsonl"
    export(store, out, format="trl-dpo")
    manifest = out.with_name(out.name + ".manifest.json")
    saved = manifest.read_text()

    # The manifest made to name the accepting decision as the rejection too.
    document: dict[str, Any] = json.loads(saved)
    document["lines"][0]["rejected"]["decision_id"] = document["lines"][0]["decision_id"]
    manifest.write_text(json.dumps(document))
    found = problems(verify(store, out))
    assert found and found[0][:2] == ("dpo.jsonl", 1), found
    assert "rejected" in found[0][2]

    # The last rejection undone after export (it is no longer a live human rejection): line 2 fails.
    manifest.write_text(saved)
    undo(store, reviewer="ann" if store.dialect.name == "sqlite" else str(store.url.username))
    found = problems(verify(store, out))
    assert [(f, line) for f, line, _ in found] == [("dpo.jsonl", 2)], found
    assert "undone" in found[0][2]


@pytest.mark.sqlite_only  # the forger's raw client (write_unsigned_decision) is sqlite3
def test_a_rejection_written_with_raw_sql_makes_no_pair(generate: Callable[..., tuple[int, str]], store: Engine, tmp_path: Path) -> None:
    code, output = generate("-n", "2", "--per-request", "2", "--variants", "3")
    assert code == 0, output
    chosen, forged, honest = next(iter(groups_of(store).values()))
    assert chosen.id is not None and forged.id is not None and honest.id is not None
    decide(store, chosen.id, "accept")
    decide(store, honest.id, "reject")
    write_unsigned_decision(database_of(store), candidate_id=forged.id, action="reject", reasons=["off-topic"])
    out = tmp_path / "dpo.jsonl"
    report = export(store, out, format="trl-dpo")
    assert [(e["candidate_id"], e["rejected"]["candidate_id"]) for e in entries(out)] == [(chosen.id, honest.id)]
    assert any(f"candidate:{forged.id}" in listed for listed in report.skipped.listed.values()), report.skipped.counts


def test_an_accepted_answer_is_reported_only_when_its_group_has_no_rejection_to_pair_with(
    generate: Callable[..., tuple[int, str]], store: Engine, tmp_path: Path
) -> None:
    code, output = generate("-n", "4", "--per-request", "2", "--variants", "3")
    assert code == 0, output
    (chosen, loser, _), (lonely, _, _) = list(groups_of(store).values())[:2]
    for candidate_id, action in ((chosen.id, "accept"), (loser.id, "reject"), (lonely.id, "accept")):
        assert candidate_id is not None
        decide(store, candidate_id, action)
    report = export(store, tmp_path / "dpo.jsonl", format="trl-dpo")
    assert [(e["candidate_id"], e["rejected"]["candidate_id"]) for e in entries(tmp_path / "dpo.jsonl")] == [(chosen.id, loser.id)]
    # The paired answer is in the export, so it is not listed as left out; the lonely one is, with why.
    listed = {ident: reason for reason, idents in report.skipped.listed.items() for ident in idents}
    assert f"candidate:{chosen.id}" not in listed
    assert "no rejected answer in its variant group" in listed[f"candidate:{lonely.id}"]


def test_siblings_are_never_near_duplicates_of_each_other_but_strangers_still_are() -> None:
    from generator.checks import CandidateChecker
    from generator.config import ChecksSection
    from generator.examples import Message

    question = "how do I connect Stripe to Ledgerly so that my clients can pay their invoices online by card?"
    answer = "Connect Stripe at Settings, then Payments, then Stripe, then Connect; invoices then carry a Pay now button for cards."

    def conversation(opening: str) -> list[Message]:
        return [Message(role="user", content=question), Message(role="assistant", content=opening + answer)]

    items = [("a:0", conversation("")), ("b:0", conversation("Sure. ")), ("c:0", conversation("Happy to help! "))]
    grouped = CandidateChecker(config=ChecksSection(), seeds=[]).check_new(items, groups={"a:0": "g", "b:0": "g", "c:0": "g"})
    assert [r.status for r in grouped] == ["pending", "pending", "pending"]
    # Outside a group (or in another one) the same answers are near-duplicates, as before.
    apart = CandidateChecker(config=ChecksSection(), seeds=[]).check_new(items, groups={"a:0": "g", "b:0": "h"})
    assert [(r.status, r.filter_reason) for r in apart] == [
        ("pending", None),
        ("filtered", "near-duplicate of candidate"),
        ("filtered", "near-duplicate of candidate"),
    ]
