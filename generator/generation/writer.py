"""Store-on-arrival: a writer process commits each answer as it arrives, and journals the run ahead of the sender.

Answers that arrive within GROUP_WINDOW of each other are committed together (group commit): one
transaction, one fsync and one checker pass for many calls. A call's answer and its candidates
commit atomically. The writer is a separate process so that journaling, parsing, checks and
SQLite do not compete with the SDK calls for the GIL.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
import threading
import time
import traceback
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from typing import Any

from sqlalchemy import Engine, bindparam, or_, select, update

from generator.batching import batched
from generator.checks import CandidateChecker
from generator.checks.reference import Labelled
from generator.errors import SynthgateError
from generator.examples import Conversation
from generator.generation import journal
from generator.generation.journal import ANSWERED, OPEN, OpenCall
from generator.generation.parsing import parse_answer
from generator.generation.pricing import PriceTable
from generator.project import Project
from generator.store.db import create_store_engine, read_session, write_session
from generator.store.intake import NewCandidate, add_candidates
from generator.store.models import LLMCall, utcnow

_BATCH = 256
GROUP_WINDOW = 0.02  # seconds a commit waits for more answers after the first
_JOURNAL_CHUNK = 128  # calls journaled per transaction (~20 ms): the sender sees them as each commits


@dataclass(frozen=True)
class CallOutcome:
    status: str
    candidates: int = 0
    filtered: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    from_cache: bool = False


@dataclass(frozen=True)
class Provenance:
    """What every candidate of the run records about where it came from."""

    run_id: str
    template_hash: str
    model: str
    priced: bool  # False for replayed answers: nothing was paid


@dataclass(frozen=True)
class Arrival:
    """What the writer needs to store one call's result (small and picklable: no prompt)."""

    call_id: int
    asked: int
    seed_ids: list[str]
    body: str | None = None  # None: the call failed
    error: str | None = None
    attempts: int = 0
    latency_ms: float | None = None
    from_cache: bool = False


class JournalWriter:
    """Hands arrivals to the writer process and resolves each caller's future once they are committed.

    The writer is a forked process, so journaling, parsing, checks and SQLite run on another core
    than the event loop and the SDK calls. Each arrival is written into the pipe by the call that
    submits it, before the worker sends its next request, so a kill of this process at any moment
    loses no answer it received: the writer commits what is in the pipe, then exits. (A full pipe
    blocks the event loop until the writer catches up: sending then waits for storing.) A thread
    reads the writer's replies, in order, and settles the futures. Between stored batches the
    writer journals `backlog` (the run's calls not journaled yet: forked, it continues the
    parent's iterator), ahead of the sender.
    """

    def __init__(
        self, *, db_url: str, project: Project, holdout: list[Labelled], provenance: Provenance, prices: PriceTable,
        backlog: Iterator[dict[str, Any]],
    ) -> None:
        context = multiprocessing.get_context("fork")
        self._conn, child = context.Pipe()
        self._journaled = context.Event()  # set once the backlog is committed (or the writer gave up on it)
        self._halt = context.Event()  # set when the run ends early: journaling the rest is the next run's work
        self._process = context.Process(
            target=_serve, args=(child, self._conn, db_url, project, holdout, provenance, prices, backlog, self._journaled, self._halt),
            name="synthgate-writer",
        )
        self._process.start()
        child.close()
        # Futures of the arrivals sent and not answered yet, oldest first (the writer replies in order).
        self._sent: deque[asyncio.Future[CallOutcome]] = deque()
        self._lock = threading.Lock()
        self._failure: str | None = None  # why nothing more can be stored
        self._closed = False
        self._receiver = threading.Thread(target=self._receive_replies, name="synthgate-journal-receive")
        self._receiver.start()

    def store_answer(self, call: OpenCall, *, body: str, attempts: int, latency_ms: float | None, from_cache: bool = False) -> asyncio.Future[CallOutcome]:
        return self._submit(Arrival(call.id, int(call.request["asked"]), call.seed_ids, body=body, attempts=attempts,
                                    latency_ms=latency_ms, from_cache=from_cache))

    def store_failure(self, call: OpenCall, *, error: str, attempts: int) -> asyncio.Future[CallOutcome]:
        return self._submit(Arrival(call.id, int(call.request["asked"]), call.seed_ids, error=error, attempts=attempts))

    def journaled(self) -> bool:
        """Whether the writer has journaled every call it will (read it before loading calls, then that load sees them all)."""
        return self._journaled.is_set() or not self._process.is_alive()

    def close(self) -> None:
        """Finish every submitted write, then stop. Called even after Ctrl-C: nothing received is dropped."""
        self._halt.set()
        self._closed = True
        try:
            self._conn.send(None)  # after every arrival: the writer answers them all, then exits
        except OSError:
            pass  # the writer is already gone
        self._receiver.join()
        self._process.join()
        self._conn.close()

    def _submit(self, arrival: Arrival) -> asyncio.Future[CallOutcome]:
        if self._closed:
            raise RuntimeError("the journal writer has stopped")
        future: asyncio.Future[CallOutcome] = asyncio.get_running_loop().create_future()
        with self._lock:
            failure = self._failure
            if failure is None:
                self._sent.append(future)
        if failure is not None:
            _fail([future], failure)
            return future
        # A large message takes two writes; Ctrl-C between them would leave half a message in the
        # pipe, and the writer would drop everything after it.
        with _ctrl_c_deferred():
            try:
                self._conn.send(arrival)
            except OSError:
                pass  # the writer is gone: the receiver fails everything sent
        return future

    def _receive_replies(self) -> None:
        try:
            kind, detail = self._conn.recv()  # ("ready", None), or ("error", why the writer could not start)
            while kind != "error":
                # ("ok", outcomes) or ("failed", (why, count)): the reply for the oldest arrivals sent
                if kind != "ready":
                    count = len(detail) if kind == "ok" else detail[1]
                    with self._lock:
                        futures = [self._sent.popleft() for _ in range(count)]
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
        if unanswered:
            _fail(unanswered, detail)


@contextlib.contextmanager
def _ctrl_c_deferred() -> Iterator[None]:
    """Ctrl-C during the block is delivered after it, to whatever handler was there (asyncio's, say).

    Swapping the Python-level handler, not masking the signal: Python runs handlers in the main
    thread whichever thread the signal reached.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread runs signal handlers
        return
    caught: list[tuple[Any, ...]] = []
    previous = signal.signal(signal.SIGINT, lambda *received: caught.append(received))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught and callable(previous):
            previous(*caught[0])


def _serve(
    conn: Connection, parent_end: Connection, db_url: str, project: Project, holdout: list[Labelled], provenance: Provenance,
    prices: PriceTable, backlog: Iterator[dict[str, Any]], journaled: Any, halt: Any,
) -> None:
    """The writer process: build the checker, then store batches, journaling the backlog in between,
    until told to stop or the parent is gone.

    Forked: its arguments are the parent's own objects (the config, the holdout set already read,
    the planner behind `backlog`), not copies.
    """
    parent_end.close()  # else our own copy of it would keep the pipe open after the parent dies
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the parent; the writer finishes what it was handed
    try:
        engine = create_store_engine(db_url)
        calls = _Backlog(engine, backlog, journaled=journaled, halt=halt)
        calls.journal_chunk()  # more work for the sender than its head start, while the checker is built
        with read_session(engine) as session:
            checker = CandidateChecker.from_store(session, project=project, holdout=holdout)
    except Exception as error:  # noqa: BLE001 - reported to the parent, which stops the run
        journaled.set()  # nothing more will be journaled: the sender must not wait for it
        why = error.message if isinstance(error, SynthgateError) else f"the journal writer could not start:\n{traceback.format_exc()}"
        conn.send(("error", why))
        return
    store = _Store(engine, checker=checker, provenance=provenance, prices=prices)
    try:
        conn.send(("ready", None))
    except OSError:
        pass  # the parent is gone (e.g. kill -9): what it handed over meanwhile is in the pipe, stored below
    stopping = False
    while not stopping:
        # Answers first. The journal only has to stay ahead of the sender, and a chunk of it takes
        # a few milliseconds.
        if not calls.done and not conn.poll():
            calls.journal_chunk()
            continue
        arrivals, stopping = _gather(conn)
        if not arrivals:
            continue
        try:
            if calls.error is not None:
                raise RuntimeError(calls.error)
            reply: tuple[str, Any] = ("ok", store.store(arrivals))
        except Exception:  # noqa: BLE001 - the batch was rolled back; the parent stops the run
            reply = ("failed", (traceback.format_exc(), len(arrivals)))
        try:
            conn.send(reply)
        except OSError:
            pass  # the parent is gone (e.g. kill -9): what it handed over is committed all the same
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
            arrival = conn.recv()
            if arrival is None:
                return arrivals, True
            arrivals.append(arrival)
            if len(arrivals) >= _BATCH or not conn.poll(max(0.0, deadline - time.monotonic())):
                return arrivals, False
    except (EOFError, OSError):
        # The parent is gone (e.g. kill -9): store what it handed over, then stop. (A parent that
        # dies with our replies unread resets the socket: ConnectionResetError, after its data.)
        return arrivals, True


class _Backlog:
    """The run's calls not journaled yet, journaled a chunk (one transaction) at a time."""

    def __init__(self, engine: Engine, rows: Iterator[dict[str, Any]], *, journaled: Any, halt: Any) -> None:
        self.engine = engine
        self.chunks = batched(rows, _JOURNAL_CHUNK)
        self.journaled = journaled  # set when done: the sender then knows every call there will be
        self.halt = halt  # set by the parent when the run ends early: the rest is the next run's work
        self.error: str | None = None  # why journaling failed; the next batch's reply carries it to the parent

    @property
    def done(self) -> bool:
        return self.journaled.is_set()

    def journal_chunk(self) -> None:
        chunk = None if self.halt.is_set() else next(self.chunks, None)
        try:
            if chunk is not None:
                with write_session(self.engine) as session:
                    journal.journal_calls(session, rows=chunk)
        except Exception:  # noqa: BLE001 - the parent stops the run with it
            self.error = f"journaling the run's requests failed:\n{traceback.format_exc()}"
            chunk = None
        if chunk is None:
            self.journaled.set()


class _Store:
    """Parse, check and commit a batch of arrivals: call rows and candidates in one transaction."""

    def __init__(self, engine: Engine, *, checker: CandidateChecker, provenance: Provenance, prices: PriceTable) -> None:
        self.engine = engine
        self.checker = checker
        self.provenance = provenance
        self.prices = prices

    def store(self, batch: list[Arrival]) -> list[CallOutcome]:
        outcomes: list[CallOutcome] = []
        updates: list[dict[str, Any]] = []
        parsed: list[tuple[Arrival, str, Conversation]] = []  # (call, source key, conversation)
        with write_session(self.engine) as session:
            answered = set(
                session.connection().execute(
                    select(_CALLS.c.id).where(_CALLS.c.id.in_([item.call_id for item in batch]), _CALLS.c.status.in_(ANSWERED))
                ).scalars()
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
                    example, source_key=key, run_id=self.provenance.run_id, call_id=item.call_id, seed_ids=item.seed_ids,
                    template_hash=self.provenance.template_hash, model=self.provenance.model, **result.model_dump(),
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
        )
        return values, outcome, parsed.examples

    def _failure(self, item: Arrival) -> tuple[dict[str, Any], CallOutcome, list[Conversation]]:
        return _call_values(item, status="failed", error=item.error), CallOutcome(status="failed"), []


_CALLS = LLMCall.__table__
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


def _call_values(item: Arrival, *, status: str, error: str | None, response_text: str | None = None, finish_reason: str | None = None,
                 input_tokens: int | None = None, output_tokens: int | None = None, cost_usd: float | None = None) -> dict[str, Any]:
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
                future.set_result(result)

    try:
        futures[0].get_loop().call_soon_threadsafe(settle)
    except RuntimeError:
        pass  # the event loop is gone (Ctrl-C); the writes themselves are committed, which is what matters


def _fail(futures: list[asyncio.Future[CallOutcome]], why: str) -> None:
    _resolve(futures, [RuntimeError(f"storing answers failed: {why}")] * len(futures))
