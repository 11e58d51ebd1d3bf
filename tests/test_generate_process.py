"""`synthgate generate` as separate processes: killed with SIGKILL mid-run and rerun, and against the standalone fake server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from sqlmodel import Session, select

from generator.store.db import open_store
from generator.store.models import Candidate, LLMCall, RunLease
from tests.conftest import REPO, generate_args, run_cli, start_cli, wait_for_logged_answers
from tests.fake_llm_server import FakeLLMServer, FaultPlan

pytestmark = pytest.mark.slow
KEY = {"OPENAI_API_KEY": "sk-test-process-0123456789"}


def _calls_and_candidates(project_dir: Path) -> tuple[list[LLMCall], list[Candidate]]:
    engine = open_store(f"sqlite:///{project_dir / '.synthgate' / 'queue.db'}")
    with Session(engine) as session:
        calls, candidates = list(session.exec(select(LLMCall))), list(session.exec(select(Candidate)))
    engine.dispose()
    return calls, candidates


def _wait_for_the_orphaned_writer(project_dir: Path) -> None:
    """Until every process named in the run's lease is gone: the writer stores what it was handed, then exits."""
    engine = open_store(f"sqlite:///{project_dir / '.synthgate' / 'queue.db'}")
    with Session(engine) as session:
        (lease,) = session.exec(select(RunLease))
    engine.dispose()
    deadline = time.monotonic() + 30
    for pid in map(int, lease.holder.split()[1:]):
        while _alive(pid):
            assert time.monotonic() < deadline, "the writer did not finish"
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_kill_9_mid_run_then_the_same_command_completes_with_exact_counts(project_dir: Path) -> None:
    requests, per_request, concurrency = 30, 2, 2
    with FakeLLMServer(FaultPlan(latency=0.25)) as fake:
        args = generate_args(
            project_dir, fake.openai_base_url, count=requests * per_request, per_request=per_request, concurrency=concurrency
        )
        process = start_cli(args, env=KEY, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_logged_answers(process, project_dir / ".synthgate", 3)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL, "the run finished before it could be killed"
        _wait_for_the_orphaned_writer(project_dir)  # it commits what it was handed, then lets go of the run

        calls, candidates = _calls_and_candidates(project_dir)
        answered_before = sum(call.status == "ok" for call in calls)
        assert len(calls) == requests  # all journaled: the writer's first chunk (before any answer is stored) holds the rest
        assert answered_before < requests
        # Every stored answer has all its candidates: answers and candidates commit together.
        assert Counter(c.call_id for c in candidates) == {call.id: per_request for call in calls if call.status == "ok"}
        sent_before = fake.requests

        rerun = run_cli(*args, cwd=REPO, env=KEY)
        assert rerun.returncode == 0, rerun.stderr
        summary = json.loads(rerun.stdout)
        assert summary["resumed"] is True and summary["requests_answered_before"] == answered_before
        # An answer logged but not yet handed to the writer at the kill is stored from the log.
        assert summary["requests_sent"] + summary["answers_recovered"] == requests - answered_before
        assert fake.requests - sent_before == summary["requests_sent"]  # no answer received was paid for twice
        assert answered_before + summary["answers_recovered"] >= 3  # every answer logged before the kill is kept
        assert sent_before - answered_before - summary["answers_recovered"] <= concurrency  # only requests in flight were lost

    calls, candidates = _calls_and_candidates(project_dir)
    assert sorted(call.request_index for call in calls) == list(range(requests))
    assert all(call.status == "ok" for call in calls)
    assert len(candidates) == requests * per_request
    assert len({c.source_key for c in candidates}) == len(candidates)
    assert Counter(c.call_id for c in candidates) == {call.id: per_request for call in calls}


def test_kill_9_of_the_whole_process_group_loses_no_answer_that_arrived(project_dir: Path) -> None:
    """An OOM kill, a closed SSH session or a container stop kills the writer process too: the answer log keeps what arrived."""
    requests, concurrency = 16, 4
    with FakeLLMServer(FaultPlan(latency=0.2)) as fake:
        args = generate_args(project_dir, fake.openai_base_url, count=requests, concurrency=concurrency)
        process = start_cli(args, env=KEY, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        log = project_dir / ".synthgate" / "answers"
        wait_for_logged_answers(process, project_dir / ".synthgate", 3)
        os.killpg(process.pid, signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL, "the run finished before it could be killed"
        sent_before = fake.requests

        rerun = run_cli(*args, cwd=REPO, env=KEY)
        assert rerun.returncode == 0, rerun.stderr
        summary = json.loads(rerun.stdout)
        assert summary["status"] == "complete"
        # Paid twice: at most the requests in flight at the kill (plus one fsync's worth of answers).
        assert fake.requests - requests <= 2 * concurrency
        assert summary["requests_answered_before"] + summary["answers_recovered"] >= 3
        assert summary["requests_sent"] == fake.requests - sent_before

    calls, candidates = _calls_and_candidates(project_dir)
    assert sorted(call.request_index for call in calls) == list(range(requests)) and all(call.status == "ok" for call in calls)
    assert len(candidates) == requests and len({c.source_key for c in candidates}) == requests
    assert not any(log.iterdir())  # every answer stored: the log is removed


def test_standalone_fake_server_process_with_rate_limits(project_dir: Path) -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_llm_server", "--port", "0", "--rate-limit", "0.3", "--retry-after", "0", "--seed", "3"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stdout.readline() if server.stdout else ""
        assert line.startswith("listening on http://127.0.0.1:")
        url = line.split()[-1]
        result = run_cli(
            "--project",
            str(project_dir),
            "generate",
            "--base-url",
            f"{url}/v1",
            "-n",
            "10",
            "--per-request",
            "1",
            "--json",
            cwd=REPO,
            env=KEY,
        )
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)
        with urllib.request.urlopen(f"{url}/_stats") as response:
            stats = json.load(response)
        assert summary["requests_sent"] == 10 and summary["candidates"] == 10
        assert stats["requests"] == 10 + summary["retries"]
        assert stats["behaviours"].get("429", 0) == summary["retries"]
    finally:
        server.kill()
        server.wait(timeout=10)


def test_ctrl_c_stores_every_answer_received_and_says_how_to_resume(project_dir: Path) -> None:
    requests, concurrency = 40, 3
    with FakeLLMServer(FaultPlan(latency=0.3)) as fake:
        args = generate_args(project_dir, fake.openai_base_url, count=requests, concurrency=concurrency)
        process = start_cli(args, env=KEY, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_for_logged_answers(process, project_dir / ".synthgate", 3)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        assert process.returncode == 130, err
        assert "run the same command again" in err and "Traceback" not in err
        # The process waited for its writer: every answer it received is stored by the time it exits.
        calls, candidates = _calls_and_candidates(project_dir)
        answered = sum(call.status == "ok" for call in calls)
        assert 3 <= answered < requests and len(candidates) == answered
        assert fake.requests - answered <= concurrency  # only requests in flight at Ctrl-C went unanswered

        sent_before = fake.requests
        rerun = run_cli(*args, cwd=REPO, env=KEY)
        assert rerun.returncode == 0, rerun.stderr
        assert json.loads(rerun.stdout)["requests_sent"] == requests - answered == fake.requests - sent_before
