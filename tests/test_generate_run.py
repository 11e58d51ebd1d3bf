"""`synthgate generate` end to end, in-process, through the real SDKs against the loopback fake LLM server."""

from __future__ import annotations

import hashlib
import json
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, delete
from sqlmodel import Session, col, select

from generator.generation.max_tokens import derived_max_tokens
from generator.project import Project
from generator.seeds import load_project_seeds
from generator.store.db import open_store
from generator.store.intake import NewCandidate, add_candidates
from generator.store.models import Candidate, LLMCall, Run, RunLease, SeedRecord
from generator.store.queue import record_decision
from tests.conftest import run_in_process
from tests.fake_llm_server import FakeLLMServer, FaultPlan

SECRET = "sk-test-Zq8Xv3Lm1Pw9Rt7Yb2Nc5Kd4"  # key-shaped, so a leak would be found by the scan


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.out)
        return parsed


@pytest.fixture
def server() -> Iterator[Callable[..., FakeLLMServer]]:
    started: list[FakeLLMServer] = []

    def start(**plan: Any) -> FakeLLMServer:
        fake = FakeLLMServer(FaultPlan(**plan)).start()
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.stop()


@pytest.fixture
def generate(project_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run `synthgate --project DIR generate ARGS` through the real entry point; returns exit code and output."""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)

    def run(*args: str) -> Result:
        code = run_in_process(["--project", str(project_dir), "generate", *args], monkeypatch)
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


def configure(project_dir: Path, **values: Any) -> None:
    """Set [generate] keys in the project's synthgate.toml."""
    path = project_dir / "synthgate.toml"
    lines = "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items())
    path.write_text(path.read_text().replace("[generate]\n", "[generate]\n" + lines, 1))


def store(project_dir: Path) -> Engine:
    return open_store(f"sqlite:///{project_dir / '.synthgate' / 'queue.db'}")


def rows(project_dir: Path, model: type) -> list[Any]:
    engine = store(project_dir)
    with Session(engine) as session:
        found: list[Any] = list(session.exec(select(model)))
    engine.dispose()
    return found


def openai_args(fake: FakeLLMServer, *more: str) -> tuple[str, ...]:
    return ("--base-url", fake.openai_base_url, "--concurrency", "4", *more)


# --- both providers, end to end --------------------------------------------------------------


def test_openai_end_to_end_into_the_queue_with_full_provenance(server, generate, project_dir: Path) -> None:
    fake = server()
    result = generate(*openai_args(fake, "-n", "6", "--per-request", "3", "--json"))
    assert result.code == 0, result.err
    summary = result.json
    assert summary["requests_sent"] == 2 and summary["cache_hits"] == 0 and summary["failed_calls"] == 0
    assert summary["candidates"] == 6
    assert summary["input_tokens"] > 0 and summary["output_tokens"] > 0 and summary["cost_usd"] > 0
    assert fake.requests == 2

    sent = [entry["body"] for entry in fake.log]
    assert all(body["response_format"]["type"] == "json_schema" for body in sent)
    # max_tokens unset: derived from the seeds (3 per request), the same for every request
    derived = derived_max_tokens(load_project_seeds(Project.locate(project_dir)).seeds, per_request=3, model="gpt-4o-mini")
    assert all(body["model"] == "gpt-4o-mini" and body["max_tokens"] == derived for body in sent)
    assert derived != 4096

    (run,) = rows(project_dir, Run)
    calls = {call.id: call for call in rows(project_dir, LLMCall)}
    candidates = rows(project_dir, Candidate)
    seed_ids = {seed.id for seed in rows(project_dir, SeedRecord)}
    template_hash = hashlib.sha256((project_dir / "prompts" / "generate.jinja").read_bytes()).hexdigest()
    assert run.id == summary["run_id"] and run.status == "complete" and run.template_hash == template_hash
    assert len(candidates) == 6
    for candidate in candidates:
        call = calls[candidate.call_id]
        assert call.status == "ok" and call.response_text and call.cost_usd and call.cost_usd > 0
        assert candidate.run_id == run.id and candidate.model == "gpt-4o-mini" and candidate.template_hash == template_hash
        assert candidate.seed_ids == call.seed_ids and set(candidate.seed_ids) <= seed_ids and len(candidate.seed_ids) == 4
        assert candidate.source_key.startswith(f"{call.id}:")
        assert candidate.status in ("pending", "filtered")
        assert candidate.messages[0]["role"] == "system"
    assert sum(c.status == "pending" for c in candidates) >= 3  # realistic answers, not all duplicates


def test_anthropic_end_to_end_with_a_forced_tool(server, generate, project_dir: Path) -> None:
    fake = server()
    result = generate("--provider", "anthropic", "--base-url", fake.url, "-n", "4", "--per-request", "2", "--json")
    assert result.code == 0, result.err
    assert result.json["candidates"] == 4 and result.json["requests_sent"] == 2
    body = fake.log[0]["body"]
    assert fake.log[0]["path"] == "/v1/messages"
    assert body["model"] == "claude-haiku-4-5"  # switching provider switches the default model
    assert body["tool_choice"] == {"type": "tool", "name": "submit_examples"}
    assert "training data" in body["system"] and all(m["role"] == "user" for m in body["messages"])
    assert {c.model for c in rows(project_dir, Candidate)} == {"claude-haiku-4-5"}


def test_a_server_without_json_schema_gets_plain_json(server, generate, project_dir: Path) -> None:
    fake = server(json_schema_supported=False)
    result = generate(*openai_args(fake, "-n", "4", "--per-request", "2", "--concurrency", "1", "--json"))
    assert result.code == 0, result.err
    assert result.json["candidates"] == 4 and result.json["failed_calls"] == 0
    assert any("fell back to plain JSON" in note for note in result.json["notes"])
    formats = [(entry["body"].get("response_format") or {}).get("type") for entry in fake.log]
    assert formats == ["json_schema", None, None]  # one refusal, then plain JSON for the rest of the run


# --- faults ----------------------------------------------------------------------------------


def test_429_and_500_are_retried_honouring_retry_after(server, generate, project_dir: Path) -> None:
    fake = server(script=["429", "500", "429"], retry_after=0.5)
    result = generate(*openai_args(fake, "-n", "2", "--per-request", "1", "--concurrency", "1", "--json"))
    assert result.code == 0, result.err
    assert result.json["retries"] == 3 and result.json["candidates"] == 2 and result.json["failed_calls"] == 0
    assert fake.requests == 5
    arrivals = [entry["at"] for entry in fake.log]
    assert arrivals[1] - arrivals[0] >= 0.5  # the first retry waited for Retry-After
    assert sorted(call.attempts for call in rows(project_dir, LLMCall)) == [1, 4]


def test_a_hung_connection_hits_the_deadline_and_the_rerun_sends_only_that_request(server, generate, project_dir: Path) -> None:
    configure(project_dir, timeout=1.0, max_retries=0)
    fake = server(script=["hang"])
    first = generate(*openai_args(fake, "-n", "3", "--per-request", "1", "--concurrency", "1"))
    assert first.code == 1
    assert "retry the requests without an answer" in first.err and "Traceback" not in first.err
    calls = sorted(rows(project_dir, LLMCall), key=lambda c: c.request_index)
    assert [c.status for c in calls] == ["failed", "ok", "ok"]
    assert calls[0].error == f"no answer within 1 s from {fake.openai_base_url}"
    assert "1 request(s) without an answer (1 timed out)" in first.out  # the summary names the cause
    assert rows(project_dir, Run)[0].status == "stopped"

    second = generate(*openai_args(fake, "-n", "3", "--per-request", "1", "--concurrency", "1", "--json"))
    assert second.code == 0, second.err
    assert second.json["requests_sent"] == 1 and second.json["requests_answered_before"] == 2
    assert fake.requests == 4
    assert len(rows(project_dir, Candidate)) == 3


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_malformed_truncated_refused_answers_are_recorded_not_queued(server, generate, project_dir: Path, provider: str) -> None:
    fake = server(script=["malformed", "truncated", "refusal", "schema", "ok"])
    base_url = fake.openai_base_url if provider == "openai" else fake.url
    result = generate("--provider", provider, "--base-url", base_url, "-n", "10", "--per-request", "2", "--concurrency", "1", "--json")
    assert result.code == 0, result.err  # the run is complete: every request got an answer, usable or not
    assert result.json["failed_calls"] == 4
    assert result.json["failures"] == {"failed": 0, "invalid": 2, "truncated": 1, "refused": 1}
    calls = sorted(rows(project_dir, LLMCall), key=lambda c: c.request_index)
    # the cut answer (nothing complete in it) is re-asked as request 5 + 1, after the run's 5
    assert [(c.request_index, c.status) for c in calls] == [
        (0, "invalid"),
        (1, "truncated"),
        (2, "refused"),
        (3, "invalid"),
        (4, "ok"),
        (6, "ok"),
    ]
    assert all(c.response_text and c.error for c in calls[:4])  # raw answer and reason kept on the call
    candidates = rows(project_dir, Candidate)
    assert len(candidates) == 4 and {c.call_id for c in candidates} == {calls[4].id, calls[5].id}


def test_an_authentication_error_stops_the_run_at_once_without_echoing_the_key(server, generate, project_dir: Path) -> None:
    fake = server(ratios={"401": 1.0})
    result = generate(*openai_args(fake, "-n", "40", "--per-request", "1"))
    assert result.code == 2
    assert "OPENAI_API_KEY" in result.err and "authentication" in result.err.lower()
    assert "sk-fake" not in result.err and SECRET not in result.err and "Traceback" not in result.err
    assert fake.requests <= 4  # at most what was already in flight
    assert rows(project_dir, Run)[0].status == "stopped"


def test_no_api_key_anywhere_in_the_store_or_the_output(server, generate, project_dir: Path) -> None:
    fake = server(script=["ok", "401"])
    ok = generate(*openai_args(fake, "-n", "1", "--concurrency", "1"))
    refused = generate(*openai_args(fake, "-n", "2", "--per-request", "1", "--seed", "5", "--concurrency", "1"))
    assert ok.code == 0 and refused.code == 2
    assert f"Bearer {SECRET}" in fake.seen_keys  # the key really was used
    state = project_dir / ".synthgate"
    stored = b"".join(path.read_bytes() for path in state.rglob("*") if path.is_file())
    assert b"sk-fake" not in stored  # the provider's echo of a key was scrubbed
    (failed,) = [call for call in rows(project_dir, LLMCall) if call.status == "failed"]
    assert "401" in (failed.error or "")  # ...but the error itself was kept
    for text in (stored.decode("utf-8", "replace"), ok.out + ok.err, refused.out + refused.err):
        assert SECRET not in text and SECRET[3:15] not in text


def test_a_missing_key_is_a_clear_error_before_anything_is_sent(generate, project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    result = generate("-n", "2")
    assert result.code == 2
    assert "OPENAI_API_KEY is not set" in result.err and "Traceback" not in result.err
    assert rows(project_dir, Run) == []


def test_a_refused_connection_stops_the_run_within_seconds_naming_the_url_and_the_fix(server, generate, project_dir: Path) -> None:
    fake = server()
    fake.stop()  # nothing listens on that port any more: every connection is refused
    started = time.monotonic()
    result = generate(*openai_args(fake, "-n", "20", "--per-request", "1", "--concurrency", "1"))
    elapsed = time.monotonic() - started
    assert result.code == 1
    assert elapsed < 10  # a few quick attempts, not the 25-29 s of backoff it took before (a generous upper bound)
    assert f"cannot connect to {fake.openai_base_url}: connection refused" in result.err
    assert "fix: start the server at" in result.err and "--base-url" in result.err and "Traceback" not in result.err
    assert "1 connection refused" in result.out and "retries after connection refused" in result.out
    # Nothing was answered: the advice is to resume this run, not to start another with a new --seed.
    assert "Run the same command again to retry the requests without an answer." in result.out and "--seed" not in result.out
    statuses = [c.status for c in rows(project_dir, LLMCall)]
    assert statuses.count("failed") == 1 and statuses.count("pending") == 19  # stopped at the first refusal: the rest would be too
    as_json = generate(*openai_args(fake, "-n", "20", "--per-request", "1", "--concurrency", "1", "--json"))
    assert as_json.json["failure_causes"] == {"connection refused": 1}
    assert as_json.json["retry_causes"] == {"connection refused": 2}
    assert as_json.json["shortfall"]["next_flags"] is None


def test_a_server_that_never_answers_stops_the_run_after_the_timeout_naming_it(server, generate, project_dir: Path) -> None:
    configure(project_dir, timeout=1.0, max_retries=0)
    fake = server(ratios={"hang": 1.0})
    result = generate(*openai_args(fake, "-n", "8", "--per-request", "1", "--concurrency", "1"))
    assert result.code == 1
    assert f"no answer within 1 s from {fake.openai_base_url}" in result.err
    assert "[generate] timeout" in result.err  # the fix says which knob
    assert "Failures: 5 timed out." in result.out  # five in a row: the provider counts as unreachable


def test_retries_are_counted_by_cause_and_shown_while_they_happen(server, project_dir: Path, monkeypatch) -> None:
    from generator.generation.engine import Generation
    from generator.generation.progress import progress_line

    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    fake = server(script=["429", "500", "429"], retry_after=0.1)
    project = Project.locate(project_dir)
    settings = project.config.generate.model_copy(update={"base_url": fake.openai_base_url, "count": 2, "per_request": 1, "concurrency": 1})
    seen: list[str] = []
    engine = store(project_dir)
    stats = Generation(project, settings).run(engine, on_progress=lambda s: seen.append(progress_line(s)))
    engine.dispose()
    assert stats.retries == 3 and stats.retry_causes == {"429": 2, "500": 1}
    # The bar said so while the first request was being retried, before any answer came.
    assert any("1 sent · 0 answered · 1 retrying · 0 failed · last error: rate limited" in line for line in seen), seen
    assert any("last error: server error" in line for line in seen)
    assert seen[-1].startswith("2 sent · 2 answered · 0 retrying · 0 failed")
    # On an 80-column terminal the live display keeps every word: the bar on one line, the counts under it.
    import io

    from rich.console import Console

    from generator.generation.progress import LiveProgress

    terminal = Console(file=io.StringIO(), width=80, soft_wrap=True, color_system=None)
    with LiveProgress(terminal) as live:
        live.update(stats)
    shown = " ".join(terminal.file.getvalue().split())  # type: ignore[attr-defined]
    assert progress_line(stats) in shown and "2/2" in shown


def test_an_anthropic_base_url_ending_in_v1_is_refused_before_anything_is_sent(server, generate, project_dir: Path) -> None:
    fake = server()
    result = generate("--provider", "anthropic", "--base-url", fake.url + "/v1/", "-n", "2")
    assert result.code == 2 and "Traceback" not in result.err
    assert "the Anthropic base URL must not end in /v1" in result.err and f"use --base-url {fake.url} " in result.err
    assert fake.requests == 0 and rows(project_dir, Run) == []


def test_a_missing_anthropic_key_says_how_to_set_it_without_openai_words(generate, project_dir: Path, monkeypatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    result = generate("--provider", "anthropic", "-n", "2")
    assert result.code == 2 and "ANTHROPIC_API_KEY is not set" in result.err
    assert "OpenAI" not in result.err and "--base-url" not in result.err


def test_a_model_that_writes_fewer_than_asked_is_explained_with_the_next_command(server, generate, project_dir: Path) -> None:
    fake = server(writes_at_most=2)
    result = generate(*openai_args(fake, "-n", "20", "--per-request", "5"))
    assert result.code == 0, result.err
    assert "Asked for 20 example(s), got 8: the model wrote 12 fewer than asked (4 answer(s) held fewer than the 5 asked" in result.out
    assert "The model wrote about 2 per request. For the 12 missing: run again with --seed 1 -n 12 --per-request 2." in result.out
    summary = generate(*openai_args(fake, "-n", "20", "--per-request", "5", "--seed", "7", "--json")).json
    assert summary["shortfall"] == {
        "examples_asked": 20,
        "candidates": 8,
        "not_written": 12,
        "short_answers": 4,
        "unusable": 0,
        "in_unusable_answers": 0,
        "without_an_answer": 0,
        "cut_off_given_up": 0,
        "explanation": summary["shortfall"]["explanation"],
        "next_flags": "--seed 8 -n 12 --per-request 2",
    }
    assert summary["shortfall"]["explanation"].startswith("Asked for 20 example(s), got 8")


def test_unusable_answers_are_part_of_the_explanation(server, generate, project_dir: Path) -> None:
    fake = server(script=["malformed", "ok", "ok"])
    summary = generate(*openai_args(fake, "-n", "6", "--per-request", "2", "--concurrency", "1", "--json")).json
    assert summary["shortfall"]["in_unusable_answers"] == 2 and summary["candidates"] == 4
    assert "2 were asked in answers that could not be used (invalid or refused)" in summary["message"]
    assert summary["shortfall"]["next_flags"] == "--seed 1 -n 3"


def test_a_run_that_got_everything_has_no_shortfall(server, generate, project_dir: Path) -> None:
    fake = server()
    summary = generate(*openai_args(fake, "-n", "4", "--per-request", "2", "--json")).json
    assert summary["shortfall"]["explanation"] is None and "Asked for" not in summary["message"]


# --- journal, cache, resume ------------------------------------------------------------------


def test_the_same_command_again_sends_nothing_and_says_how_to_get_more(server, generate, project_dir: Path) -> None:
    fake = server()
    args = openai_args(fake, "-n", "4", "--per-request", "2")
    assert generate(*args).code == 0
    again = generate(*args)
    assert again.code == 0
    assert "already complete" in again.out and "0 requests sent" in again.out and "--seed 1" in again.out
    as_json = generate(*args, "--json").json
    assert as_json["requests_sent"] == 0 and as_json["candidates"] == 0 and as_json["status"] == "complete"
    assert fake.requests == 2
    assert len(rows(project_dir, Candidate)) == 4 and len(rows(project_dir, Run)) == 1


def test_a_rerun_with_changed_seeds_says_it_is_a_new_run_and_what_changed_before_sending(server, generate, project_dir: Path) -> None:
    fake = server()
    args = openai_args(fake, "-n", "4", "--per-request", "2")
    first = generate(*args, "--json").json
    assert first["new_run"] is None  # the store's first run: nothing to compare with
    seeds = project_dir / "seeds" / "seeds.jsonl"
    lines = seeds.read_text().splitlines(keepends=True)
    seeds.write_text("".join(lines[:-1]))  # one verified example fewer

    dry = generate(*args, "--dry-run")
    assert dry.code == 0 and fake.requests == 2  # nothing sent
    expected = f"inputs changed since run {first['run_id']}"
    assert expected in dry.out and f"seeds changed: {len(lines)} -> {len(lines) - 1} verified examples" in dry.out
    assert "template, model, parameters unchanged" in dry.out and "It will send up to 2 request(s)" in dry.out
    assert generate(*args, "--dry-run", "--json").json["new_run"] == {
        "previous_run_id": first["run_id"],
        "changed": [f"seeds changed: {len(lines)} -> {len(lines) - 1} verified examples"],
        "unchanged": ["template", "model", "parameters"],
        "requests": 2,
    }

    rerun = generate(*args)
    assert rerun.code == 0
    said = rerun.err.index(expected)
    assert said < rerun.err.index("seeds changed") and "New run" in rerun.err
    assert fake.requests > 2  # it did send: a new run, as it said
    again = generate(*args)
    assert "already complete" in again.out and "New run" not in again.err  # the same inputs: no new run, nothing to say


def test_a_rerun_with_another_model_and_count_names_both(server, generate, project_dir: Path) -> None:
    fake = server()
    first = generate(*openai_args(fake, "-n", "2", "--json")).json
    other = generate(*openai_args(fake, "-n", "3", "--model", "gpt-4.1-mini", "--dry-run", "--json")).json["new_run"]
    assert other["previous_run_id"] == first["run_id"]
    assert "model: gpt-4o-mini -> gpt-4.1-mini" in other["changed"] and "-n: 2 -> 3" in other["changed"]
    assert other["unchanged"] == ["seeds", "template"]


def test_operational_flags_do_not_change_the_run_but_sampling_flags_do(server, generate, project_dir: Path) -> None:
    fake = server()
    first = generate(*openai_args(fake, "-n", "2", "--json")).json
    same = generate(*openai_args(fake, "-n", "2", "--concurrency", "7", "--rpm", "600", "--max-cost", "5", "--json")).json
    other = generate(*openai_args(fake, "-n", "2", "--seed", "3", "--json")).json
    assert same["run_id"] == first["run_id"] and same["requests_sent"] == 0
    assert other["run_id"] != first["run_id"] and other["requests_sent"] == 1


def test_identical_requests_in_another_run_come_from_the_cache_unless_no_cache(server, generate, project_dir: Path) -> None:
    fake = server()
    generate(*openai_args(fake, "-n", "4", "--per-request", "2"))
    bigger = generate(*openai_args(fake, "-n", "6", "--per-request", "2", "--json")).json  # requests 0-1 are the same
    assert bigger["cache_hits"] == 2 and bigger["requests_sent"] == 1 and bigger["cost_usd"] < bigger["run_cost_usd"] + 1e-9
    fresh = generate(*openai_args(fake, "-n", "8", "--per-request", "2", "--no-cache", "--json")).json
    assert fresh["cache_hits"] == 0 and fresh["requests_sent"] == 4
    assert fake.requests == 2 + 1 + 4
    cached = [c for c in rows(project_dir, LLMCall) if c.from_cache]
    assert len(cached) == 2 and all(c.cost_usd == 0 for c in cached)


def test_budget_stop_then_resume_with_a_higher_budget(server, generate, project_dir: Path) -> None:
    fake = server()
    args = openai_args(fake, "-n", "16", "--per-request", "2", "--max-tokens", "1200")
    stopped = generate(*args, "--max-cost", "0.002")
    assert stopped.code == 1
    assert "max-cost" in stopped.err and "raise --max-cost" in stopped.err
    calls = rows(project_dir, LLMCall)
    spent = sum(c.cost_usd or 0 for c in calls)
    assert 0 < spent <= 0.002
    assert 0 < sum(c.status == "ok" for c in calls) < 8
    assert rows(project_dir, Run)[0].status == "stopped"

    resumed = generate(*args, "--max-cost", "1", "--json")
    assert resumed.code == 0, resumed.err
    assert resumed.json["resumed"] is True and resumed.json["run_id"] == rows(project_dir, Run)[0].id
    assert len(rows(project_dir, Run)) == 1
    assert len(rows(project_dir, Candidate)) == 16 and fake.requests == 8


def test_a_run_stopped_before_all_its_calls_were_journaled_is_completed_by_the_same_command(server, generate, project_dir: Path) -> None:
    fake = server()
    # Concurrency 1: this process journals a head start of 2 calls; the writer journals the rest.
    args = openai_args(fake, "-n", "20", "--per-request", "2", "--concurrency", "1", "--max-tokens", "1200")
    stopped = generate(*args, "--max-cost", "0.001")
    assert stopped.code == 1, stopped.err
    # As if the run had stopped before the writer journaled them: only answered calls remain.
    engine = store(project_dir)
    with engine.begin() as connection:
        connection.execute(delete(LLMCall).where(col(LLMCall.status) != "ok"))
    engine.dispose()
    kept = rows(project_dir, LLMCall)
    assert 0 < len(kept) < 10

    resumed = generate(*args, "--json")
    assert resumed.code == 0, resumed.err
    assert resumed.json["requests_answered_before"] == len(kept) and resumed.json["requests_sent"] == 10 - len(kept)
    calls = rows(project_dir, LLMCall)
    assert sorted(c.request_index for c in calls) == list(range(10)) and all(c.status == "ok" for c in calls)
    assert {c.request_hash for c in kept} <= {c.request_hash for c in calls}  # the same requests as planned
    assert fake.requests == 10 and len(rows(project_dir, Candidate)) == 20


def test_max_cost_needs_a_price_for_the_model(generate, project_dir: Path) -> None:
    result = generate("--base-url", "http://127.0.0.1:9/v1", "--model", "llama3.1:8b", "--max-cost", "1")
    assert result.code == 2 and '[pricing."llama3.1:8b"]' in result.err


def test_dry_run_renders_a_prompt_estimates_cost_and_sends_nothing(server, generate, project_dir: Path) -> None:
    fake = server()
    text = generate(*openai_args(fake, "-n", "10", "--dry-run"))
    assert text.code == 0, text.err
    assert "--- system ---" in text.out and "--- user ---" in text.out and "Write 5 new conversations" in text.out
    assert "2 request(s) to gpt-4o-mini" in text.out and "Estimated cost: ≈ $" in text.out
    report = generate(*openai_args(fake, "-n", "10", "--dry-run", "--json")).json
    assert report["requests"] == 2 and report["requests_sent"] == 0
    assert report["estimated_input_tokens"] > 0 and report["estimated_cost_usd"] > 0
    assert report["worst_case_cost_usd"] >= report["estimated_cost_usd"]
    assert fake.requests == 0
    assert rows(project_dir, Run) == [] and rows(project_dir, LLMCall) == []


def test_recent_rejection_reasons_reach_the_prompt(server, generate, project_dir: Path) -> None:
    fake = server()
    assert generate(*openai_args(fake, "-n", "3", "--per-request", "3")).code == 0
    engine = store(project_dir)
    with Session(engine) as session:
        pending = [c.id for c in session.exec(select(Candidate).where(Candidate.status == "pending")) if c.id is not None]
        record_decision(session, candidate_id=pending[0], reviewer="ann", action="reject", reasons=["factually wrong"])
        record_decision(session, candidate_id=pending[1], reviewer="ann", action="reject", reasons=["factually wrong", "wrong tone"])
        other = add_candidates(
            session,
            [
                NewCandidate(
                    source_key="other-template",
                    template_hash="else",
                    messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
                )
            ],
        )
        record_decision(session, candidate_id=other[0], reviewer="ann", action="reject", reasons=["unsafe"])
    engine.dispose()
    report = generate(*openai_args(fake, "--seed", "9", "--dry-run", "--json")).json
    user = report["prompt"][-1]["content"]
    assert "- factually wrong (2x)" in user and "- wrong tone (1x)" in user
    assert "unsafe" not in user  # another template's verdicts are not this template's


def test_record_then_replay_reproduces_the_candidates_offline(server, generate, project_dir: Path, tmp_path: Path) -> None:
    fake = server()
    recording = tmp_path / "demo.jsonl"
    assert generate(*openai_args(fake, "-n", "6", "--per-request", "2", "--record", str(recording))).code == 0
    lines = [json.loads(line) for line in recording.read_text().splitlines()]
    assert len(lines) == 3 and all(set(line) == {"key", "response"} for line in lines)
    recorded = sorted(json.dumps(c.messages) for c in rows(project_dir, Candidate))

    (project_dir / ".synthgate" / "queue.db").unlink()
    for extra in (project_dir / ".synthgate").glob("queue.db-*"):
        extra.unlink()
    replayed = generate("--provider", "replay", "--replay-file", str(recording), "-n", "6", "--per-request", "2", "--json")
    assert replayed.code == 0, replayed.err
    assert replayed.json["requests_sent"] == 3 and replayed.json["cost_usd"] == 0
    assert sorted(json.dumps(c.messages) for c in rows(project_dir, Candidate)) == recorded
    assert fake.requests == 3


def test_replay_serves_bare_response_lines_in_order(generate, project_dir: Path, tmp_path: Path) -> None:
    conversation = [{"role": "user", "content": f"q{i}"} for i in range(2)]
    bodies = [
        {
            "type": "message",
            "role": "assistant",
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 1, "output_tokens": 1},
            "content": [
                {
                    "type": "tool_use",
                    "name": "submit_examples",
                    "input": {
                        "examples": [{"messages": [conversation[i], {"role": "assistant", "content": f"a{i}"}], "tags": ["billing"]}]
                    },
                }
            ],
        }
        for i in range(2)
    ]
    recording = tmp_path / "hand.jsonl"
    recording.write_text("".join(json.dumps(body) + "\n" for body in bodies))
    result = generate(
        "--provider", "replay", "--replay-file", str(recording), "-n", "2", "--per-request", "1", "--concurrency", "1", "--json"
    )
    assert result.code == 0, result.err
    contents = sorted(c.messages[0]["content"] for c in rows(project_dir, Candidate))
    assert contents == ["q0", "q1"]
    short = generate("--provider", "replay", "--replay-file", str(recording), "-n", "3", "--per-request", "1", "--seed", "4")
    assert short.code == 2 and "no response for request 2" in short.err
    assert "--max-tokens" not in short.err and "--record FILE" in short.err  # replay's own fix, not a live provider's


# --- bad input -------------------------------------------------------------------------------


def test_template_errors_exit_2_with_file_and_line_before_any_request(server, generate, project_dir: Path) -> None:
    fake = server()
    template = project_dir / "prompts" / "generate.jinja"
    template.write_text("{% block user %}\nWrite {{ count }}\n{% if %}\n{% endblock %}")
    syntax = generate(*openai_args(fake, "-n", "2"))
    assert syntax.code == 2 and f"{template}:3:" in syntax.err and "Traceback" not in syntax.err
    template.write_text("{% block user %}\nWrite {{ count }}\n{{ exmaples }}\n{% endblock %}")
    undefined = generate(*openai_args(fake, "-n", "2"))
    assert undefined.code == 2 and f"{template}:3:" in undefined.err and "'exmaples' is undefined" in undefined.err
    assert fake.requests == 0
    assert rows(project_dir, LLMCall) == []


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--concurrency", "0"), "--concurrency"),
        (("--provider", "gemini"), "--provider"),
        (("--temperature", "5"), "--temperature"),
        (("--tag", "no-such-tag"), "matches no seed"),
        (("--provider", "replay"), "--replay-file"),
        (("--template", "prompts/missing.jinja"), "template not found"),
    ],
)
def test_bad_flags_exit_2_with_a_message(generate, flags: tuple[str, ...], message: str) -> None:
    result = generate("--base-url", "http://127.0.0.1:9/v1", *flags)
    assert result.code == 2, result.err
    assert message in result.err and "Traceback" not in result.err


def test_broken_seeds_stop_generation_with_file_and_line(generate, project_dir: Path) -> None:
    seeds = project_dir / "seeds" / "seeds.jsonl"
    seeds.write_text(seeds.read_text() + "{not json\n")
    result = generate("--base-url", "http://127.0.0.1:9/v1")
    assert result.code == 2 and "seeds/seeds.jsonl:66:" in result.err


def test_a_broken_holdout_file_stops_generation_before_anything_is_written(server, generate, project_dir: Path) -> None:
    holdout = project_dir / "eval" / "holdout.jsonl"
    holdout.write_text(holdout.read_text() + '{"messages": [{"role": "user"}]}\n')
    config = project_dir / "synthgate.toml"
    config.write_text(config.read_text().replace("[checks]\n", '[checks]\nholdout = ["eval/holdout.jsonl"]\n', 1))
    fake = server()
    result = generate(*openai_args(fake, "-n", "2", "--per-request", "1"))
    assert result.code == 2 and "eval/holdout.jsonl:17:" in result.err, result.err
    assert fake.requests == 0
    assert rows(project_dir, LLMCall) == [] and rows(project_dir, Run) == []


# --- robustness ------------------------------------------------------------------------------


def _sql(project_dir: Path, statement: str) -> None:
    """Change the store as another program would: the plain sqlite3 module, no synthgate code."""
    connection = sqlite3.connect(project_dir / ".synthgate" / "queue.db")
    with connection:
        connection.execute(statement)
    connection.close()


def test_a_failing_store_stops_the_run_and_the_next_one_stores_its_answers_without_paying_again(
    server, generate, project_dir: Path
) -> None:
    fake = server()
    args = openai_args(fake, "-n", "4", "--per-request", "2", "--json")
    assert generate(*args, "--dry-run").code == 0  # creates the store
    _sql(project_dir, "CREATE TRIGGER broken BEFORE INSERT ON candidate BEGIN SELECT RAISE(ABORT, 'candidates refused today'); END")
    result = generate(*args)
    assert result.code == 1
    assert "storing answers failed" in result.err and "candidates refused today" in result.err and "Traceback" not in result.err
    assert {c.status for c in rows(project_dir, LLMCall)} == {"pending"}  # every batch rolled back whole
    assert rows(project_dir, Candidate) == []
    assert fake.requests == 2  # they were paid for: the answer log keeps them

    _sql(project_dir, "DROP TRIGGER broken")
    rerun = generate(*args)
    assert rerun.code == 0, rerun.err
    assert rerun.json["requests_sent"] == 0 and rerun.json["answers_recovered"] == 2 and fake.requests == 2
    assert {c.status for c in rows(project_dir, LLMCall)} == {"ok"} and len(rows(project_dir, Candidate)) == 4
    assert list((project_dir / ".synthgate" / "answers").iterdir()) == []  # all stored: the log is gone


def test_a_writer_that_cannot_journal_stops_the_run_and_keeps_the_journal(server, generate, project_dir: Path) -> None:
    fake = server()
    # Concurrency 1: this process journals a head start of 2 calls, the writer process the rest.
    args = openai_args(fake, "-n", "8", "--per-request", "2", "--concurrency", "1")
    assert generate(*args, "--dry-run").code == 0
    _sql(
        project_dir,
        "CREATE TRIGGER broken BEFORE INSERT ON llm_call WHEN NEW.request_index >= 2 BEGIN SELECT RAISE(ABORT, 'no journal today'); END",
    )
    result = generate(*args)
    assert result.code == 1 and "no journal today" in result.err and "Traceback" not in result.err
    assert sorted(c.request_index for c in rows(project_dir, LLMCall)) == [0, 1]  # nothing half-journaled
    assert rows(project_dir, Run)[0].status == "stopped"

    _sql(project_dir, "DROP TRIGGER broken")
    rerun = generate(*args, "--json")
    assert rerun.code == 0, rerun.err
    assert rerun.json["requests_sent"] + rerun.json["answers_recovered"] + rerun.json["requests_answered_before"] == 4
    assert fake.requests == 4  # nothing paid twice
    assert len(rows(project_dir, Candidate)) == 8


def test_a_second_process_on_the_same_run_is_refused(server, generate, project_dir: Path, monkeypatch) -> None:
    from generator.generation import run_lease

    monkeypatch.setattr(run_lease, "PATIENCE", 0.2)
    fake = server()
    args = openai_args(fake, "-n", "2", "--json")
    run_id = generate(*args, "--dry-run").json["run_id"]
    # Held by a process on another machine sharing the store: only the lease's expiry frees it.
    expires = (datetime.now(UTC) + timedelta(seconds=60)).strftime("%Y-%m-%d %H:%M:%S.%f")
    _sql(project_dir, f"INSERT INTO run_lease (run_id, holder, expires_at) VALUES ('{run_id}', 'elsewhere.example 4242', '{expires}')")
    result = generate(*args)
    assert result.code == 1 and "being generated by another process (host elsewhere.example, process 4242" in result.err
    assert fake.requests == 0

    # The same holder on this machine, its process gone (kill -9): taken over at once.
    _sql(project_dir, f"UPDATE run_lease SET holder = '{socket.gethostname()} {2**22 + 7}'")
    taken_over = generate(*args)
    assert taken_over.code == 0, taken_over.err
    assert fake.requests == 1 and rows(project_dir, RunLease) == []  # released at the end
