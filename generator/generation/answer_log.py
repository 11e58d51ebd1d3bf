"""The answer log: every answer a run receives is appended to a local file and fsynced before anything else happens to it.

It is the run's write-ahead log. The writer process stores answers in the review store a few
milliseconds later; if that never happens — the whole process group killed, the disk full, the
store locked, read-only or deleted — the answers are still here, and the next run of the same
command stores them before it sends anything, so no answer is paid for twice. A run that ends with
every answer stored removes its log.

One JSON object per line; a line cut short by a kill is ignored (its answer was not yet durable).
"""

from __future__ import annotations

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


class AnswerLog:
    """Appends arrivals to the log, each batch made durable (fsync) before `append` returns."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # Unbuffered binary append: one write() per batch, so a kill leaves at most one torn line.
        self._file = open(path, "ab", buffering=0)  # noqa: SIM115 - held open for the run, closed in close()

    def append(self, arrivals: Iterable[Arrival]) -> None:
        # Only answers paid for here: a failed call paid nothing (the next run asks again), a
        # cached answer is in the store already.
        data = b"".join(orjson.dumps(asdict(a)) + b"\n" for a in arrivals if a.body is not None and not a.from_cache)
        if data:
            self._file.write(data)
            os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def read_answer_log(path: Path) -> list[Arrival]:
    """The answers logged at `path` (none if there is no log), last one per call; a torn line is skipped."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    by_call: dict[int, Arrival] = {}
    for line in raw.splitlines():
        try:
            arrival = Arrival(**orjson.loads(line))
        except (orjson.JSONDecodeError, TypeError):
            continue  # cut short by a kill while it was written: that answer was never durable
        by_call[arrival.call_id] = replace(arrival, recovered=True)
    return list(by_call.values())
