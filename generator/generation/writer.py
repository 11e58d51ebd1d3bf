"""Store-on-arrival: each answer is logged durably at once, then a spawned writer process commits it with its candidates.

The path of an answer: the event loop appends it to the run's answer log (one write: from then on
a kill of every process loses nothing) and hands it over (a queue put) → the log thread fsyncs it,
together with whatever else arrived meanwhile (durable on disk) → the pipe → the writer process, which parses,
checks and commits the answers that arrive within GROUP_WINDOW of each other in one transaction
(call rows and candidates together), and replies with each call's outcome. Between batches the
writer journals the run's remaining requests, ahead of the sender.

Why a process: parsing, checks and SQLite then run on the other core instead of competing with the
SDK calls for the GIL. Why `spawn`, on every OS: the writer receives only plain, picklable inputs
(the project, the settings, the run id) and rebuilds the rest itself, so nothing depends on what a
fork would have copied (open connections, iterators, other threads' locks); it behaves the same on
Linux, macOS and Windows. Its ~1 s start-up runs while this process imports the provider's SDK.

A kill of this process alone: the writer stores what is in the pipe, then exits. A kill of the
whole process group: the answer log holds every answer received more than one fsync ago, and the
next run of the same command stores them before it sends anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import queue
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Engine, bindparam, or_, select, update
from sqlalchemy.exc import OperationalError

from generator.batching import batched
from generator.checks import CandidateChecker
from generator.errors import SynthgateError
from generator.examples import Conversation
from generator.generation import journal
from generator.generation.answer_log import AnswerLog, Arrival
from generator.generation.journal import ANSWERED, OPEN, OpenCall
from generator.generation.parsing import parse_answer
from generator.generation.pricing import PriceTable
from generator.project import Project
from generator.store.db import (
    BUSY_TIMEOUT_MS,
    FileIdentity,
    check_store_file,
    create_store_engine,
    read_session,
    store_fault,
    write_session,
)
from generator.store.intake import NewCandidate, add_candidates
from generator.store.models import LLMCall, Run, utcnow

if TYPE_CHECKING:
    from generator.config import GenerateSection

_BATCH = 256
GROUP_WINDOW = 0.02  # seconds a commit waits for more answers after the first
_JOURNAL_CHUNK = 128  # calls journaled per transaction (~20 ms): the sender sees them as each commits
LOCKED_PATIENCE = 4 * BUSY_TIMEOUT_MS / 1000  # seconds a batch is retried (60 s by default) while another process holds the write lock


@dataclass(frozen=True)
class CallOutcome:
    status: str
    candidates: int = 0
    filtered: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    from_cache: bool = False
    recovered: bool = False  # an answer an earlier, interrupted invocation received and logged: not paid again
    # Examples: asked of the call, not written by the model (a complete answer), written but unusable.
    asked: int = 0
    short: int = 0
    unusable: int = 0


@dataclass(frozen=True)
class Provenance:
    """What every candidate of the run records about where it came from."""

    run_id: str
    template_hash: str
    model: str
    priced: bool  # False for replayed answers: nothing was paid


@dataclass(frozen=True)
class _Pending:
    arrival: Arrival
    future: asyncio.Future[CallOutcome]


_BEGIN = "begin"


class JournalWriter:
    """Logs arrivals durably, hands them to the writer process and resolves each caller's future once committed.

    Created first thing (the process then imports what it needs while this one gets ready), told
    what to do by `start`. Two threads: the log thread (fsync a group, then send it down the pipe:
    the pipe's only writer, so the writer process sees everything in order) and the receiver (reads
    the writer's replies, in order, and settles the futures). Nothing here blocks the event loop.
    """

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._journaled = context.Event()  # set once the backlog is committed (or the writer gave up on it)
        self._halt = context.Event()  # set when the run ends early: journaling the rest is the next run's work
        self._process = context.Process(target=_serve, args=(child, self._journaled, self._halt), name="synthgate-writer")
        with _sigint_blocked():  # inherited: Ctrl-C stops this process; the writer finishes what it was handed
            self._process.start()
        child.close()
        self._inbox: queue.SimpleQueue[_Pending | str | None] = queue.SimpleQueue()
        # Futures of the arrivals sent and not answered yet, oldest first (the writer replies in order).
        self._sent: deque[asyncio.Future[CallOutcome]] = deque()
        self._lock = threading.Lock()
        self._failure: str | None = None  # why nothing more can be stored
        self.unstored = 0  # arrivals the store did not take (they stay in the answer log); counted under _lock
        self.log_error: str | None = None  # why the answer log could not be written (answers then rely on the store alone)
        self._threads: list[threading.Thread] = []
        self._closed = False

    def start(
        self,
        *,
        project: Project,
        settings: GenerateSection,
        db_url: str,
        run_id: str,
        provenance: Provenance,
        log_path: Path,
        store_file: FileIdentity,
    ) -> None:
        """What the run is: the writer rebuilds its inputs from these (a run id is the hash of all of them)."""
        self._conn.send((project, settings, db_url, run_id, provenance, store_file))
        self.log_path = log_path
        self._log = AnswerLog(log_path)
        self._threads = [
            threading.Thread(target=self._log_durably, name="synthgate-answer-log"),
            threading.Thread(target=self._receive_replies, name="synthgate-journal-receive"),
        ]
        for thread in self._threads:
            thread.start()

    @property
    def pid(self) -> int:
        assert self._process.pid is not None
        return self._process.pid

    def begin(self) -> None:
        """The run is journaled and leased: the writer may journal the rest of it and store answers."""
        self._inbox.put(_BEGIN)

    def store_answer(
        self, call: OpenCall, *, body: str, attempts: int, latency_ms: float | None, from_cache: bool = False
    ) -> asyncio.Future[CallOutcome]:
        return self._submit(
            Arrival(
                call.id,
                call.index,
                call.request_hash,
                int(call.request["asked"]),
                call.seed_ids,
                body=body,
                attempts=attempts,
                latency_ms=latency_ms,
                from_cache=from_cache,
            )
        )

    def store_failure(self, call: OpenCall, *, error: str, attempts: int) -> asyncio.Future[CallOutcome]:
        return self._submit(
            Arrival(call.id, call.index, call.request_hash, int(call.request["asked"]), call.seed_ids, error=error, attempts=attempts)
        )

    def store_recovered(self, arrival: Arrival) -> asyncio.Future[CallOutcome]:
        """An answer found in the log of an earlier, interrupted invocation: stored without being logged again."""
        return self._submit(arrival, log=False)

    def journaled(self) -> bool:
        """Whether the writer has journaled every call it will (read it before loading calls, then that load sees them all)."""
        return self._journaled.is_set() or not self._process.is_alive()

    def close(self) -> bool:
        """Finish every submitted write, then stop; True if the store took every arrival.

        Called even after Ctrl-C: nothing received is dropped.
        """
        if not self._closed:
            self._halt.set()
            self._closed = True
            if self._threads:
                self._inbox.put(None)  # after every arrival: all are logged and sent, then the writer is told to finish
            else:
                self._send(None)  # never started: the writer just exits
            for thread in self._threads:
                thread.join()
            self._process.join()
            self._conn.close()
            if self._threads:
                self._log.close()
        return self.unstored == 0 and self.log_error is None

    def _submit(self, arrival: Arrival, *, log: bool = True) -> asyncio.Future[CallOutcome]:
        if self._closed:
            raise RuntimeError("the journal writer has stopped")
        future: asyncio.Future[CallOutcome] = asyncio.get_running_loop().create_future()
        if log:
            # One write() at once, in this thread: from here on the answer is in the kernel and
            # survives a kill of every process of the group. The log thread fsyncs it in a group.
            self._append_to_log([arrival])
        self._inbox.put(_Pending(arrival, future))
        return future

    def _log_durably(self) -> None:
        """The log thread: make each group durable (one fsync for all of it), then send it to the writer.

        A writer still starting up may keep it waiting on the pipe: that delays only the fsync, as
        the answers are in the log (written by the event loop) already.
        """
        finished = False
        while not finished:
            group: list[_Pending] = []
            item = self._inbox.get()
            while True:
                if item is None:
                    finished = True
                    break
                if isinstance(item, _Pending):
                    group.append(item)
                else:
                    self._send(item)  # _BEGIN, in order with the arrivals
                try:
                    item = self._inbox.get_nowait()  # whatever arrived meanwhile joins this group (and its fsync)
                except queue.Empty:
                    break
            if group:
                self._sync_log()
                with self._lock:
                    failure = self._failure
                    if failure is None:
                        self._sent.extend(p.future for p in group)
                    else:
                        self.unstored += len(group)
                if failure is not None:
                    _fail([p.future for p in group], failure)
                else:
                    self._send([p.arrival for p in group])
        self._send(None)

    def _append_to_log(self, arrivals: list[Arrival]) -> None:
        try:
            self._log.append(arrivals)
        except OSError as exc:  # e.g. the disk is full: the store may still take them (it may live elsewhere)
            self.log_error = self.log_error or f"cannot write the answer log {self.log_path}: {exc.strerror or exc}"

    def _sync_log(self) -> None:
        try:
            self._log.sync()
        except OSError as exc:
            self.log_error = self.log_error or f"cannot write the answer log {self.log_path}: {exc.strerror or exc}"

    def _send(self, message: Any) -> None:
        with contextlib.suppress(OSError):  # the writer is gone: the receiver fails everything sent
            self._conn.send(message)

    def _receive_replies(self) -> None:
        try:
            kind, detail = self._conn.recv()  # ("ready", None), or ("error", why the writer could not start)
            while kind != "error":
                # ("ok", outcomes) or ("failed", (why, count)): the reply for the oldest arrivals sent
                if kind != "ready":
                    count = len(detail) if kind == "ok" else detail[1]
                    with self._lock:
                        futures = [self._sent.popleft() for _ in range(count)]
                        if kind != "ok":
                            self.unstored += count
                    if kind == "ok":
                        _resolve(futures, detail)
                    else:
                        _fail(futures, detail[0])
                kind, detail = self._conn.recv()
        except (EOFError, OSError) as exc:  # also how a normal close ends, with nothing left unanswered
            detail = f"the journal writer process ended ({type(exc).__name__})"
        with self._lock:
            self._failure = detail
            unanswered, self._sent = list(self._sent), deque()
            self.unstored += len(unanswered)
        if unanswered:
            _fail(unanswered, detail)


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """SIGINT blocked in this thread for the block; a process started meanwhile keeps it blocked for good."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows: Ctrl-C reaches the console's processes its own way
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _serve(conn: Connection, journaled: Any, halt: Any) -> None:
    """The writer process: import, learn the run, rebuild its inputs, wait for it to begin, then store
    batches, journaling the backlog in between, until told to stop or the parent is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # where SIGINT could not be blocked before the start (Windows)
    try:
        from generator.generation.engine import Generation  # the engine imports this module

        try:
            project, settings, db_url, run_id, provenance, store_file = conn.recv()
        except (EOFError, OSError, TypeError):
            return  # closed before it started (nothing to do), or the parent is gone
        # The same inputs as the parent's (a run id is the hash of all of them): the planner renders
        # the same prompts, the checker compares with the same holdout set.
        generation = Generation(project, settings, dry_run=True)
        if generation.run_id != run_id:
            raise SynthgateError("the seeds, template or settings changed while the run was starting", fix="run the same command again")
        engine = create_store_engine(db_url)
        if conn.recv() != _BEGIN:
            return  # the run was already complete, or its lease is held elsewhere: nothing to do
        with read_session(engine) as session:
            run = session.get(Run, run_id)
            assert run is not None, "the parent journals the run before it begins"
            planned = journal.planned_indices(session, run_id=run_id)
            backlog = generation.planner_for(run).journal_rows(run_id=run_id, skip=planned)
        calls = _Backlog(engine, backlog, journaled=journaled, halt=halt, already=len(planned))
        calls.journal_chunk()  # more work for the sender than its head start, while the checker is built
        with read_session(engine) as session:
            checker = CandidateChecker.from_store(session, project=project, holdout=generation.holdout)
    except Exception as error:  # noqa: BLE001 - reported to the parent, which stops the run
        journaled.set()  # nothing more will be journaled: the sender must not wait for it
        why = error.message if isinstance(error, SynthgateError) else f"the journal writer could not start: {store_fault(error)}"
        with contextlib.suppress(OSError):
            conn.send(("error", why))
        return
    store = _Store(engine, checker=checker, provenance=provenance, prices=generation.prices, store_file=store_file)
    with contextlib.suppress(OSError):  # the parent may be gone (kill -9): what it handed over is in the pipe, stored below
        conn.send(("ready", None))
    # The journal stays at least `margin` calls ahead of the answers received, else the sender waits
    # for it (measured: with "answers first", 64 in flight fell to ~30 on average and sending
    # stalled for whole seconds). Storing can wait: every answer is in the answer log already.
    margin = 4 * settings.concurrency
    received = 0
    stopping = False
    while not stopping:
        if not calls.done and (calls.count - received < margin or not conn.poll()):
            calls.journal_chunk()
            continue
        arrivals, stopping = _gather(conn)
        received += len(arrivals)
        if not arrivals:
            continue
        try:
            if calls.error is not None:
                raise RuntimeError(calls.error)
            reply: tuple[str, Any] = ("ok", store.store_patiently(arrivals))
        except Exception as error:  # noqa: BLE001 - the batch was rolled back; the parent stops the run
            reply = ("failed", (store_fault(error), len(arrivals)))
        with contextlib.suppress(OSError):  # the parent is gone (kill -9): what it handed over is committed all the same
            conn.send(reply)
    engine.dispose()


def _gather(conn: Connection) -> tuple[list[Arrival], bool]:
    """The next group commit: the arrivals that come within GROUP_WINDOW of the first (at most
    _BATCH), and whether the parent is done (it said so, or it is gone).

    Waiting a little turns a trickle of answers into batches of tens: each commit's fixed cost
    (a transaction, an fsync, a checker pass) is paid once for all of them.
    """
    arrivals: list[Arrival] = []
    deadline = time.monotonic() + GROUP_WINDOW
    try:
        while True:
            message = conn.recv()
            if message is None:
                return arrivals, True
            arrivals.extend(message)
            if len(arrivals) >= _BATCH or not conn.poll(max(0.0, deadline - time.monotonic())):
                return arrivals, False
    except (EOFError, OSError):
        # The parent is gone (e.g. kill -9): store what it handed over, then stop. (A parent that
        # dies with our replies unread resets the socket: ConnectionResetError, after its data.)
        return arrivals, True


class _Backlog:
    """The run's calls not journaled yet, journaled a chunk (one transaction) at a time."""

    def __init__(self, engine: Engine, rows: Iterator[dict[str, Any]], *, journaled: Any, halt: Any, already: int) -> None:
        self.engine = engine
        self.chunks = batched(rows, _JOURNAL_CHUNK)
        self.count = already  # calls of the run journaled so far
        self.journaled = journaled  # set when done: the sender then knows every call there will be
        self.halt = halt  # set by the parent when the run ends early: the rest is the next run's work
        self.error: str | None = None  # why journaling failed; the next batch's reply carries it to the parent

    @property
    def done(self) -> bool:
        return bool(self.journaled.is_set())

    def journal_chunk(self) -> None:
        chunk = None if self.halt.is_set() else next(self.chunks, None)
        try:
            if chunk is not None:
                with write_session(self.engine) as session:
                    journal.journal_calls(session, rows=chunk)
                self.count += len(chunk)
        except Exception as error:  # noqa: BLE001 - the parent stops the run with it
            self.error = f"journaling the run's requests failed: {store_fault(error)}"
            chunk = None
        if chunk is None:
            self.journaled.set()


class _Store:
    """Parse, check and commit a batch of arrivals: call rows and candidates in one transaction."""

    def __init__(
        self, engine: Engine, *, checker: CandidateChecker, provenance: Provenance, prices: PriceTable, store_file: FileIdentity
    ) -> None:
        self.engine = engine
        self.checker = checker
        self.provenance = provenance
        self.prices = prices
        self.store_file = store_file  # the SQLite file as the run began, watched: a deleted store swallows commits without a word

    def store_patiently(self, batch: list[Arrival]) -> list[CallOutcome]:
        """store(), retried while another process holds the write lock (each try waits the busy timeout first)."""
        give_up = time.monotonic() + LOCKED_PATIENCE
        while True:
            check_store_file(self.store_file)
            try:
                return self.store(batch)
            except OperationalError as error:
                if "locked" not in str(error.orig).lower() or time.monotonic() > give_up:
                    raise

    def store(self, batch: list[Arrival]) -> list[CallOutcome]:
        outcomes: list[CallOutcome] = []
        updates: list[dict[str, Any]] = []
        parsed: list[tuple[Arrival, str, Conversation]] = []  # (call, source key, conversation)
        with write_session(self.engine) as session:
            answered = set(
                session.connection()
                .execute(select(_CALLS.c.id).where(_CALLS.c.id.in_([item.call_id for item in batch]), _CALLS.c.status.in_(ANSWERED)))
                .scalars()
            )
            for item in batch:
                if item.call_id in answered:  # stored before, so are its candidates
                    outcomes.append(CallOutcome(status="duplicate"))
                    continue
                values, outcome, examples = self._answer(item) if item.body is not None else self._failure(item)
                updates.append(values)
                outcomes.append(outcome)
                parsed += [(item, f"{item.call_id}:{position}", example) for position, example in enumerate(examples)]
            # One checker pass for the whole batch: it signs and compares in bulk.
            results = self.checker.check_new([(key, list(example.messages)) for _, key, example in parsed])
            new = [
                NewCandidate.from_example(
                    example,
                    source_key=key,
                    run_id=self.provenance.run_id,
                    call_id=item.call_id,
                    seed_ids=item.seed_ids,
                    template_hash=self.provenance.template_hash,
                    model=self.provenance.model,
                    **result.model_dump(),
                )
                for (item, key, example), result in zip(parsed, results, strict=True)
            ]
            if updates:
                # One executemany for the batch (the ORM's per-row UPDATE costs milliseconds each).
                session.connection().execute(_COMPLETE_CALL, updates)
            add_candidates(session, new)  # a duplicate of a candidate of this run comes to name it by id
        filtered = Counter(c.call_id for c in new if c.status == "filtered")
        # A duplicate has no new candidates, so its count stays 0.
        return [replace(outcome, filtered=filtered[item.call_id]) for item, outcome in zip(batch, outcomes, strict=True)]

    def _answer(self, item: Arrival) -> tuple[dict[str, Any], CallOutcome, list[Conversation]]:
        assert item.body is not None
        parsed = parse_answer(item.body, asked=item.asked)
        paid = self.provenance.priced and not item.from_cache
        cost = self.prices.cost(self.provenance.model, parsed.input_tokens, parsed.output_tokens) if paid else 0.0
        values = _call_values(
            item,
            status=parsed.status,
            response_text=item.body,
            finish_reason=parsed.finish_reason,
            input_tokens=parsed.input_tokens,
            output_tokens=parsed.output_tokens,
            cost_usd=cost,
            error=parsed.error,
        )
        outcome = CallOutcome(
            status=parsed.status,
            candidates=len(parsed.examples),
            input_tokens=parsed.input_tokens,
            output_tokens=parsed.output_tokens,
            cost_usd=cost,
            from_cache=item.from_cache,
            asked=item.asked,
            short=parsed.short,
            unusable=parsed.unusable,
        )
        return values, replace(outcome, recovered=item.recovered), parsed.examples

    def _failure(self, item: Arrival) -> tuple[dict[str, Any], CallOutcome, list[Conversation]]:
        return _call_values(item, status="failed", error=item.error), CallOutcome(status="failed", asked=item.asked), []


_CALLS = LLMCall.__table__  # type: ignore[attr-defined]  # set by SQLModel when the class is made
# Bind names differ from column names: an UPDATE reserves those for itself.
_COMPLETE_CALL = (
    update(_CALLS)
    .where(_CALLS.c.id == bindparam("new_call_id"), or_(*(_CALLS.c.status == status for status in OPEN)))  # no IN: executemany
    .values(
        status=bindparam("new_status"),
        response_text=bindparam("new_response_text"),
        finish_reason=bindparam("new_finish_reason"),
        input_tokens=bindparam("new_input_tokens"),
        output_tokens=bindparam("new_output_tokens"),
        cost_usd=bindparam("new_cost_usd"),
        latency_ms=bindparam("new_latency_ms"),
        attempts=_CALLS.c.attempts + bindparam("new_more_attempts"),
        from_cache=bindparam("new_from_cache"),
        error=bindparam("new_error"),
        completed_at=bindparam("new_completed_at"),
    )
)


def _call_values(
    item: Arrival,
    *,
    status: str,
    error: str | None,
    response_text: str | None = None,
    finish_reason: str | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    cost_usd: float | None = None,
) -> dict[str, Any]:
    return {
        "new_call_id": item.call_id,
        "new_status": status,
        "new_response_text": response_text,
        "new_finish_reason": finish_reason,
        "new_input_tokens": input_tokens,
        "new_output_tokens": output_tokens,
        "new_cost_usd": cost_usd,
        "new_latency_ms": item.latency_ms,
        "new_more_attempts": item.attempts,
        "new_from_cache": item.from_cache,
        "new_error": error,
        "new_completed_at": utcnow(),
    }


def _resolve(futures: list[asyncio.Future[CallOutcome]], results: list[CallOutcome] | list[RuntimeError]) -> None:
    """Settle a batch's futures with one wake-up of their event loop (not one per future)."""

    def settle() -> None:
        for future, result in zip(futures, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(cast(CallOutcome, result))

    with contextlib.suppress(RuntimeError):  # the event loop is gone (Ctrl-C); the writes are committed, which is what matters
        futures[0].get_loop().call_soon_threadsafe(settle)


def _fail(futures: list[asyncio.Future[CallOutcome]], why: str) -> None:
    _resolve(futures, [RuntimeError(why)] * len(futures))
