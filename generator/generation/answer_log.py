"""The answer log: every answer a run receives is written to a local file before anything else happens to it.

It is the run's write-ahead log: written the moment the SDK returns an answer (from then on a
kill of every process loses nothing), fsynced in groups (then a power cut loses nothing). The
writer process stores the answers in the review store a few milliseconds later; if that never happens — the whole process group killed, the disk full, the
store locked, read-only or deleted — the answers are still here, and the next run of the same
command stores them before it sends anything, so no answer is paid for twice. A run that ends with
every answer stored removes its log.

One JSON object per line; a line cut short by a kill is ignored (its answer was not yet durable).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import orjson


@dataclass(frozen=True)
class Arrival:
    """One call's result, as the writer needs it to store it (small and picklable: no prompt)."""

    call_id: int
    request_index: int  # with the hash, what the answer belongs to in any store (a call id is one store's)
    request_hash: str
    asked: int
    seed_ids: list[str]
    body: str | None = None  # None: the call failed
    error: str | None = None
    attempts: int = 0
    latency_ms: float | None = None
    from_cache: bool = False
    recovered: bool = False  # read back from the log of an earlier, interrupted invocation


def answer_log_path(state_dir: Path, *, db_url: str, run_id: str) -> Path:
    """Where a run's answers are logged: one file per store and run (the same run id can live in two stores)."""
    store = hashlib.sha256(db_url.encode()).hexdigest()[:12]
    return state_dir / "answers" / f"{store}-{run_id}.jsonl"


# Bytes kept allocated beyond the log's end: when the disk fills up (the store fails first or
# with it), the answers still arriving for the requests in flight fit in space already held.
RESERVE = 8 * 1024 * 1024


class AnswerLog:
    """Appends arrivals to the log (`append`: one write, safe from any kill of the process at once) and
    makes them durable on disk in groups (`sync`: one fsync, safe from a power cut)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o666)
        existing = path.read_bytes().rstrip(b"\0")  # a run that was killed leaves its reserve behind
        self._end = len(existing)
        self._reserved_to = os.fstat(self._fd).st_size
        if existing and not existing.endswith(b"\n"):
            self._write(b"\n")  # after a line cut short by a kill, so that the next one starts clean
        self._reserve()

    def append(self, arrivals: Iterable[Arrival]) -> None:
        # Only answers paid for here: a failed call paid nothing (the next run asks again), a
        # cached answer is in the store already.
        data = b"".join(orjson.dumps(asdict(a)) + b"\n" for a in arrivals if a.body is not None and not a.from_cache)
        if data:
            self._write(data)
            self._reserve()

    def sync(self) -> None:
        os.fsync(self._fd)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, self._end)  # give the reserve back
        os.close(self._fd)

    def _write(self, data: bytes) -> None:
        os.lseek(self._fd, self._end, os.SEEK_SET)
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
            self._end += written

    def _reserve(self) -> None:
        if self._reserved_to - self._end >= RESERVE // 2 or not hasattr(os, "posix_fallocate"):  # Linux only; elsewhere a plain append
            return
        try:
            os.posix_fallocate(self._fd, self._end, RESERVE)
            self._reserved_to = self._end + RESERVE
        except OSError:
            pass  # the disk is full already: what is reserved is what there is


def read_answer_log(path: Path) -> list[Arrival]:
    """The answers logged at `path` (none if there is no log), last one per call; a torn line is skipped."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    by_call: dict[int, Arrival] = {}
    for line in raw.splitlines():
        line = line.strip(b"\0")  # the unused reserve at the end
        if not line:
            continue
        try:
            arrival = Arrival(**orjson.loads(line))
        except (orjson.JSONDecodeError, TypeError):
            continue  # cut short by a kill while it was written: that answer was never durable
        by_call[arrival.call_id] = replace(arrival, recovered=True)
    return list(by_call.values())
