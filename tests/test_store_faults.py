"""Storage faults under a running `generate` and under read-only commands: one line, exit 1, nothing paid lost.

Each fault is real: a write lock held by another sqlite3 connection, the store's files deleted,
a full disk (a small tmpfs) and a read-only folder (a read-only bind mount), the last two in a
private mount namespace made with `unshare` so the test needs no changes to the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, generate_args, run_cli, wait_for_logged_answers
from tests.fake_llm_server import FakeLLMServer, FaultPlan

pytestmark = pytest.mark.slow
KEY = {"OPENAI_API_KEY": "sk-test-faults-0123456789"}
REQUESTS = 24


def _generate_args(project_dir: Path, fake: FakeLLMServer) -> list[str]:
    return generate_args(project_dir, fake.openai_base_url, count=REQUESTS, concurrency=2)


def _fault_mid_run(
    command: list[str], state_dir: Path, fault: Callable[[], None], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `synthgate COMMAND`, cause the fault once two answers are durable, and return how the run ended."""
    process = subprocess.Popen(
        command, cwd=REPO, env={**os.environ, **KEY, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    wait_for_logged_answers(process, state_dir, 2)
    assert process.poll() is None, "the run ended before the fault"
    fault()
    out, err = process.communicate(timeout=120)
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def _assert_one_line_failure(result: subprocess.CompletedProcess[str], words: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and words in error[0], result.stderr


def _rerun_pays_nothing_twice(command: list[str], fake: FakeLLMServer) -> None:
    result = subprocess.run(command, cwd=REPO, env={**os.environ, **KEY}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "complete" and summary["answers_recovered"] >= 2
    assert fake.requests == REQUESTS  # every answer received before the fault was stored from the log, none paid again


def test_a_store_locked_past_the_busy_timeout_stops_the_run_in_one_line_and_loses_nothing(project_dir: Path) -> None:
    holder: list[sqlite3.Connection] = []

    def lock() -> None:
        connection = sqlite3.connect(project_dir / ".synthgate" / "queue.db", timeout=30, isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")  # another program holds the write lock until the run has given up
        holder.append(connection)

    env = {"SYNTHGATE_BUSY_TIMEOUT": "0.3"}  # the writer retries a locked batch for 4x this, then stops the run
    with FakeLLMServer(FaultPlan(latency=0.2)) as fake:
        command = [sys.executable, "-m", "generator", *_generate_args(project_dir, fake)]
        result = _fault_mid_run(command, project_dir / ".synthgate", lock, env)
        holder[0].rollback()
        holder[0].close()
        _assert_one_line_failure(result, "locked by another process")
        _rerun_pays_nothing_twice(command, fake)


def test_a_store_deleted_mid_run_is_noticed_and_its_answers_reach_the_new_store(project_dir: Path) -> None:
    def delete_store() -> None:
        for suffix in ("", "-wal", "-shm"):
            (project_dir / ".synthgate" / f"queue.db{suffix}").unlink(missing_ok=True)

    with FakeLLMServer(FaultPlan(latency=0.2)) as fake:
        command = [sys.executable, "-m", "generator", *_generate_args(project_dir, fake)]
        result = _fault_mid_run(command, project_dir / ".synthgate", delete_store)
        _assert_one_line_failure(result, "deleted or replaced during the run")
        _rerun_pays_nothing_twice(command, fake)


# --- faults of the file system, in a private mount namespace -----------------------------------


def _can_unshare() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0


needs_namespaces = pytest.mark.skipif(not _can_unshare(), reason="needs root and unshare(1) for a private mount namespace")


class Namespace:
    """A private mount namespace, kept alive by a sleeping process."""

    def __init__(self) -> None:
        self.holder = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", "echo ready; exec sleep 600"], stdout=subprocess.PIPE, text=True
        )
        assert self.holder.stdout is not None and self.holder.stdout.readline() == "ready\n"

    def command(self, *command: str) -> list[str]:
        """`command`, to be run inside the namespace."""
        return ["nsenter", "-t", str(self.holder.pid), "-m", *command]

    def seen_from_outside(self, path: Path) -> Path:
        return Path(f"/proc/{self.holder.pid}/root") / path.relative_to("/")


@pytest.fixture
def namespace() -> Iterator[Namespace]:
    space = Namespace()
    try:
        yield space
    finally:
        space.holder.kill()
        space.holder.wait()


@needs_namespaces
def test_a_full_disk_stops_the_run_in_one_line_and_the_answers_in_flight_are_kept(project_dir: Path, namespace: Namespace) -> None:
    state_dir = project_dir / ".synthgate"
    state_dir.mkdir(exist_ok=True)
    subprocess.run(namespace.command("mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(state_dir)), check=True)
    inside = namespace.seen_from_outside(state_dir)

    def fill_the_disk() -> None:
        with open(inside / "filler", "wb") as filler:
            try:
                while True:
                    filler.write(b"\0" * 1024 * 1024)
                    filler.flush()
            except OSError:
                pass

    with FakeLLMServer(FaultPlan(latency=0.2)) as fake:
        command = namespace.command(sys.executable, "-m", "generator", *_generate_args(project_dir, fake))
        result = _fault_mid_run(command, inside, fill_the_disk)
        _assert_one_line_failure(result, "full")
        (inside / "filler").unlink()
        _rerun_pays_nothing_twice(command, fake)


@needs_namespaces
def test_a_read_only_store_serves_the_commands_that_only_read(project_dir: Path, namespace: Namespace, tmp_path: Path) -> None:
    replay = ["--provider", "replay", "--replay-file", str(REPO / "demo" / "recording.jsonl"), "-n", "10", "--per-request", "5"]
    assert run_cli("--project", str(project_dir), "generate", *replay, cwd=REPO).returncode == 0
    state_dir = project_dir / ".synthgate"
    subprocess.run(namespace.command("mount", "--bind", str(state_dir), str(state_dir)), check=True)
    subprocess.run(namespace.command("mount", "-o", "remount,bind,ro", str(state_dir)), check=True)
    before = {path.name: path.read_bytes() for path in state_dir.iterdir() if path.is_file()}

    def synthgate(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            namespace.command(sys.executable, "-m", "generator", "--project", str(project_dir), *args),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )

    stats = synthgate("stats", "--json")
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["candidates"]["pending"] > 0
    exported = synthgate("export", "--include-seeds", "-o", str(tmp_path / "out.jsonl"))
    assert exported.returncode == 0, exported.stderr
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 65

    changed = synthgate("generate", *replay[:-4], "-n", "20", "--per-request", "5")
    _assert_one_line_failure(changed, "read-only")
    assert {path.name: path.read_bytes() for path in state_dir.iterdir() if path.is_file()} == before
