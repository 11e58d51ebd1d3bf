"""Store-on-arrival: a writer thread commits each answer (call row + its candidates) the moment it arrives.

Answers that arrive together are committed together (group commit): one transaction and one
fsync for many calls, so the journal keeps up with hundreds of answers a second without
blocking the event loop. A call's answer and its candidates commit atomically.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Engine, bindparam, or_, update
from sqlmodel import col, select

from generator.checks import CandidateChecker
from generator.examples import Example
from generator.generation.journal import ANSWERED, OPEN, OpenCall
from generator.generation.parsing import parse_answer
from generator.generation.pricing import PriceTable
from generator.store.db import write_session
from generator.store.intake import NewCandidate, add_candidates
from generator.store.models import LLMCall, utcnow

_BATCH = 256


@dataclass(frozen=True)
class CallOutcome:
    status: str
    candidates: int = 0
    filtered: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    from_cache: bool = False
    error: str | None = None


@dataclass(frozen=True)
class Provenance:
    """What every candidate of the run records about where it came from."""

    run_id: str
    template_hash: str
    model: str
    priced: bool  # False for replayed answers: nothing was paid


@dataclass
class _Item:
    call: OpenCall
    future: asyncio.Future[CallOutcome]
    body: str | None = None  # None: the call failed
    error: str | None = None
    attempts: int = 0
    latency_ms: float | None = None
    from_cache: bool = False


class JournalWriter:
    def __init__(self, engine: Engine, *, provenance: Provenance, checker: CandidateChecker, prices: PriceTable) -> None:
        self.engine = engine
        self.provenance = provenance
        self.checker = checker
        self.prices = prices
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="synthgate-journal", daemon=False)
        self._thread.start()

    def store_answer(self, call: OpenCall, *, body: str, attempts: int, latency_ms: float | None, from_cache: bool = False) -> asyncio.Future[CallOutcome]:
        return self._submit(_Item(call, _future(), body=body, attempts=attempts, latency_ms=latency_ms, from_cache=from_cache))

    def store_failure(self, call: OpenCall, *, error: str, attempts: int) -> asyncio.Future[CallOutcome]:
        return self._submit(_Item(call, _future(), error=error, attempts=attempts))

    def close(self) -> None:
        """Finish every submitted write, then stop. Called even after Ctrl-C: nothing received is dropped."""
        self._queue.put(None)
        self._thread.join()

    def _submit(self, item: _Item) -> asyncio.Future[CallOutcome]:
        if not self._thread.is_alive():
            raise RuntimeError("the journal writer has stopped")
        self._queue.put(item)
        return item.future

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < _BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(more)
            try:
                outcomes = self._store(batch)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting coroutines
                for each in batch:
                    _resolve(each.future, exception=exc)
            else:
                for each, outcome in zip(batch, outcomes):
                    _resolve(each.future, result=outcome)

    def _store(self, batch: list[_Item]) -> list[CallOutcome]:
        outcomes: list[CallOutcome] = []
        new: list[NewCandidate] = []
        updates: list[dict[str, Any]] = []
        provenance = self.provenance
        with write_session(self.engine) as session:
            answered = set(
                session.exec(select(LLMCall.id).where(col(LLMCall.id).in_([item.call.id for item in batch]), col(LLMCall.status).in_(ANSWERED)))
            )
            for item in batch:
                if item.call.id in answered:  # stored before, so are its candidates
                    outcomes.append(CallOutcome(status="duplicate"))
                    continue
                values, outcome, examples = self._answer(item) if item.body is not None else self._failure(item)
                updates.append(values)
                filtered = 0
                for position, example in enumerate(examples):
                    key = f"{item.call.id}:{position}"
                    result = self.checker.check(list(example.messages), key=key)
                    filtered += result.status == "filtered"
                    new.append(
                        NewCandidate.from_example(
                            example,
                            source_key=key,
                            run_id=provenance.run_id,
                            call_id=item.call.id,
                            seed_ids=item.call.seed_ids,
                            template_hash=provenance.template_hash,
                            model=provenance.model,
                            **result.provenance_fields(),
                        )
                    )
                outcomes.append(replace(outcome, filtered=filtered))
            if updates:
                # One executemany for the batch (the ORM's per-row UPDATE costs milliseconds each).
                session.connection().execute(_COMPLETE_CALL, updates)
            add_candidates(session, new)
        return outcomes

    def _answer(self, item: _Item) -> tuple[dict[str, Any], CallOutcome, list[Example]]:
        assert item.body is not None
        parsed = parse_answer(item.body, asked=int(item.call.request["asked"]))
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
            error=parsed.error,
        )
        return values, outcome, parsed.examples

    def _failure(self, item: _Item) -> tuple[dict[str, Any], CallOutcome, list[Example]]:
        return _call_values(item, status="failed", error=item.error), CallOutcome(status="failed", error=item.error), []


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


def _call_values(item: _Item, *, status: str, error: str | None, response_text: str | None = None, finish_reason: str | None = None,
                 input_tokens: int | None = None, output_tokens: int | None = None, cost_usd: float | None = None) -> dict[str, Any]:
    return {
        "new_call_id": item.call.id,
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


def _future() -> asyncio.Future[CallOutcome]:
    return asyncio.get_running_loop().create_future()


def _resolve(future: asyncio.Future[CallOutcome], *, result: CallOutcome | None = None, exception: BaseException | None = None) -> None:
    def settle() -> None:
        if future.done():
            return
        if exception is not None:
            future.set_exception(exception)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    try:
        future.get_loop().call_soon_threadsafe(settle)
    except RuntimeError:
        pass  # the event loop is gone (Ctrl-C); the write itself is committed, which is what matters
