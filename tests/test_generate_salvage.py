"""A cut answer loses nothing complete: its complete examples are queued, the rest re-asked with more room, reruns re-ask what is missing."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete
from sqlmodel import Session, col

from generator.generation.max_tokens import derived_max_tokens, model_limit
from generator.generation.parsing import parse_answer
from generator.project import Project
from generator.seeds import load_project_seeds
from generator.store.models import Candidate, LLMCall
from tests import test_generate_run as generate_run
from tests.conftest import REPO, generate_args, run_cli, start_cli, wait_for_logged_answers
from tests.fake_llm_server import FakeLLMServer, FaultPlan, _anthropic_body, _cut, _openai_body, conversations_for
from tests.test_generate_run import configure, rows, store

# The loopback server and the in-process CLI of the generate tests, as this module's fixtures.
server = generate_run.server
generate = generate_run.generate

PROMPT = "Write 4 new conversations."
KEY = {"OPENAI_API_KEY": "sk-test-salvage-0123456789"}


def _cut_body(wire: str, mode: str, *, keep: int) -> str:
    examples = conversations_for(PROMPT, count=4, rng=random.Random(7))
    payload, text = _cut(examples, keep=keep)
    if wire == "openai":
        fmt: dict[str, Any] = {"response_format": {"type": "json_schema"}} if mode == "structured" else {}
        return json.dumps(_openai_body(fmt, text, "cut", PROMPT, True))
    tools: dict[str, Any] = {"tools": [{"name": "submit_examples"}]} if mode == "structured" else {}
    return json.dumps(_anthropic_body(tools, text, payload, "cut", PROMPT))


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
@pytest.mark.parametrize("mode", ["structured", "plain"])
@pytest.mark.parametrize("keep", [0, 1, 3])
def test_a_cut_answer_keeps_exactly_its_complete_examples(wire: str, mode: str, keep: int) -> None:
    parsed = parse_answer(_cut_body(wire, mode, keep=keep), asked=4)
    assert parsed.status == "truncated"
    assert len(parsed.examples) == keep and parsed.missing == 4 - keep
    expected = conversations_for(PROMPT, count=4, rng=random.Random(7))[:keep]
    assert [[m.content for m in e.messages] for e in parsed.examples] == [[m["content"] for m in e["messages"]] for e in expected]
    assert f"after {keep} complete example(s) of 4" in (parsed.error or "")


def test_a_cut_right_after_an_example_keeps_that_example() -> None:
    examples = conversations_for(PROMPT, count=2, rng=random.Random(3))
    text = json.dumps({"examples": examples})[:-2] + ","  # both complete, then the cut
    body = json.dumps({"choices": [{"message": {"content": text}, "finish_reason": "length"}], "usage": {}})
    parsed = parse_answer(body, asked=3)
    assert len(parsed.examples) == 2 and parsed.missing == 1


def test_max_tokens_defaults_from_the_seeds_within_the_models_limit(project_dir: Path) -> None:
    seeds = load_project_seeds(Project.locate(project_dir)).seeds
    one, five = (derived_max_tokens(seeds, per_request=n, model="gpt-4o-mini") for n in (1, 5))
    assert 512 <= one < five < 16_384  # grows with the examples per request
    assert five % 256 == 0
    assert derived_max_tokens(seeds, per_request=100, model="claude-3-haiku-20240307") == 4096  # the model's limit
    assert model_limit("gpt-4o-mini-2024-07-18") == 16_384 and model_limit("gpt-4o") == 16_384
    assert model_limit("my-local-model") == 4096 and model_limit("my-local-model", configured=20_000) == 20_000


def _openai(fake, *more: str) -> tuple[str, ...]:
    return ("--base-url", fake.openai_base_url, "--concurrency", "1", "--json", *more)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("structured", ["auto", "json"])
def test_complete_examples_are_queued_and_the_missing_ones_reasked_with_more_room(
    server, generate, project_dir: Path, provider: str, structured: str
) -> None:
    configure(project_dir, structured_output=structured)
    fake = server(script=["cut"], cut_after=2)
    base_url = fake.openai_base_url if provider == "openai" else fake.url
    result = generate("--provider", provider, "--base-url", base_url, "-n", "8", "--per-request", "4", "--concurrency", "1", "--json")
    assert result.code == 0, result.err
    summary = result.json
    assert summary["status"] == "complete"
    assert summary["examples_salvaged"] == 2 and summary["requests_reasked"] == 1
    assert summary["requests_sent"] == 3 and summary["candidates"] == 8
    assert "2 complete example(s) salvaged, 1 re-ask(s)" in summary["message"]

    calls = {c.request_index: c for c in rows(project_dir, LLMCall)}
    assert sorted(calls) == [0, 1, 2]  # request 0's re-ask is request 0 + 2
    assert calls[0].status == "truncated" and calls[2].status == "ok" and calls[2].request["asked"] == 2
    by_call = {c.id: 0 for c in calls.values()}
    for candidate in rows(project_dir, Candidate):
        by_call[candidate.call_id] += 1
    assert by_call == {calls[0].id: 2, calls[1].id: 4, calls[2].id: 2}  # the cut example was never queued
    sent = [entry["body"] for entry in fake.log]
    assert sent[2]["max_tokens"] == 2 * sent[0]["max_tokens"]  # the re-ask has more room

    again = generate("--provider", provider, "--base-url", base_url, "-n", "8", "--per-request", "4", "--concurrency", "1", "--json")
    assert again.code == 0 and again.json["requests_sent"] == 0 and fake.requests == 3


def test_a_rerun_reasks_what_is_still_missing_and_plans_it_the_same_way(server, generate, project_dir: Path) -> None:
    configure(project_dir, max_retries=0)
    fake = server(script=["cut", "ok", "500"], cut_after=1)
    args = _openai(fake, "-n", "6", "--per-request", "3")
    first = generate(*args)
    assert first.code == 1 and first.json["status"] == "stopped"  # the re-ask failed: the run is not complete
    assert "1 complete example(s) salvaged, 1 re-ask(s) for the rest" in first.json["message"]
    (reask,) = [c for c in rows(project_dir, LLMCall) if c.request_index == 2]
    assert reask.status == "failed" and reask.request["asked"] == 2

    # As if the invocation had been stopped before it planned the re-ask: the rerun plans the same one.
    engine = store(project_dir)
    with Session(engine) as session:
        session.execute(delete(LLMCall).where(col(LLMCall.request_index) == 2))
        session.commit()
    engine.dispose()
    second = generate(*args)
    assert second.code == 0, second.err
    assert second.json["requests_sent"] == 1 and second.json["requests_reasked"] == 1
    (again,) = [c for c in rows(project_dir, LLMCall) if c.request_index == 2]
    assert again.request_hash == reask.request_hash and again.status == "ok"
    assert len(rows(project_dir, Candidate)) == 6

    third = generate(*args)
    assert third.code == 0 and third.json["requests_sent"] == 0 and fake.requests == 4


def test_answers_cut_every_time_are_reasked_twice_then_reported(server, generate, project_dir: Path) -> None:
    fake = server(script=["cut", "cut", "cut"], cut_after=1)
    result = generate(*_openai(fake, "-n", "4", "--per-request", "4"))
    assert result.code == 0, result.err
    summary = result.json
    assert summary["requests_sent"] == 3 and summary["requests_reasked"] == 2
    assert summary["examples_salvaged"] == 3 and summary["candidates"] == 3  # 1 + 1 (of 3) + 1 (of 2)
    assert [entry["body"]["max_tokens"] for entry in fake.log][1:] == [
        2 * fake.log[0]["body"]["max_tokens"],
        4 * fake.log[0]["body"]["max_tokens"],
    ]
    assert any("1 example(s) still cut off after 2 re-asks" in note for note in summary["notes"])


def test_the_dry_run_counts_reasks_in_its_worst_case(generate, project_dir: Path) -> None:
    result = generate("-n", "8", "--per-request", "4", "--dry-run", "--json")
    assert result.code == 0, result.err
    report = result.json
    assert report["worst_case_reasks"] == 4 and "derived from the seeds" in report["max_tokens"]


def test_an_explicit_max_tokens_wins(server, generate, project_dir: Path) -> None:
    fake = server()
    result = generate(*_openai(fake, "-n", "2", "--per-request", "2", "--max-tokens", "3000"))
    assert result.code == 0, result.err
    assert fake.log[0]["body"]["max_tokens"] == 3000
    assert any("max_tokens 3000 per request (as configured" in note for note in result.json["notes"])


@pytest.mark.slow
def test_a_kill_of_the_whole_group_during_the_reasks_loses_nothing_and_pays_nothing_twice(project_dir: Path) -> None:
    """The re-asks a rerun plans are the ones the killed run journaled: their logged answers are stored, not bought again."""
    requests, concurrency = 6, 2
    # The first 6 answers (the run's own requests) are cut after 1 of 2 examples; the re-asks are answered.
    with FakeLLMServer(FaultPlan(latency=0.2, script=["cut"] * requests)) as fake:
        args = generate_args(project_dir, fake.openai_base_url, count=2 * requests, per_request=2, concurrency=concurrency)
        process = start_cli(args, env=KEY, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_for_logged_answers(process, project_dir / ".synthgate", requests + 2)  # two re-asks answered
        os.killpg(process.pid, signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL, "the run finished before it could be killed"

        rerun = run_cli(*args, cwd=REPO, env=KEY)
        assert rerun.returncode == 0, rerun.stderr
        summary = json.loads(rerun.stdout)
        assert summary["status"] == "complete" and summary["requests_reasked"] == 0  # the killed run had journaled them all
        assert summary["requests_answered_before"] + summary["answers_recovered"] >= requests + 2  # every logged answer kept
        assert fake.requests - 2 * requests <= 2 * concurrency  # paid twice: at most what was in flight at the kill

    calls = sorted(rows(project_dir, LLMCall), key=lambda call: call.request_index)
    assert [call.request_index for call in calls] == list(range(2 * requests))
    assert [call.status for call in calls] == ["truncated"] * requests + ["ok"] * requests
    candidates = rows(project_dir, Candidate)
    assert len(candidates) == 2 * requests and len({c.source_key for c in candidates}) == 2 * requests
    assert not any((project_dir / ".synthgate" / "answers").iterdir())  # every answer stored: the log is removed


def test_the_budget_holds_the_reasks_to_their_own_larger_max_tokens(server, generate, project_dir: Path) -> None:
    fake = server(script=["cut"], cut_after=1)
    # gpt-4o-mini at $0.60 per million output tokens: the request's worst case (8000 tokens) fits $0.008,
    # its re-ask's (16000 tokens) does not.
    args = _openai(fake, "-n", "2", "--per-request", "2", "--max-tokens", "8000")
    stopped = generate(*args, "--max-cost", "0.008")
    assert stopped.code == 1 and "--max-cost" in (stopped.json["stop_reason"] or "")
    assert fake.requests == 1 and stopped.json["requests_reasked"] == 1
    resumed = generate(*args, "--max-cost", "0.02")
    assert resumed.code == 0, resumed.err
    assert resumed.json["requests_sent"] == 1 and fake.log[-1]["body"]["max_tokens"] == 16_000
    assert len(rows(project_dir, Candidate)) == 2
