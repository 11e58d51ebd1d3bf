"""The asyncio side of a run: a producer feeding `concurrency` workers that send requests under the limits."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from generator.config import GenerateSection
from generator.errors import UserError, WorkFailed
from generator.generation import journal
from generator.generation.answer_log import Arrival
from generator.generation.limits import Budget, CallFailed, FatalProviderError, RateLimitGate, RetryPolicy, Throttle, send_with_retries
from generator.generation.parsing import ANSWER_SCHEMA
from generator.generation.pricing import estimate_tokens
from generator.generation.providers.base import DEFAULT_URLS, Provider, ProviderError, ProviderRequest, kind_label
from generator.generation.report import RunStats
from generator.generation.run_lease import RunLeaseHolder
from generator.generation.secrets import KEY_ENV
from generator.generation.writer import CallOutcome, JournalWriter
from generator.store.db import read_session

if TYPE_CHECKING:
    from generator.generation.engine import Generation

CHUNK = 500  # journaled calls loaded per query
JOURNAL_POLL = 0.01  # seconds between looks for calls the writer has not journaled yet
UNREACHABLE_AFTER = 5  # consecutive calls failing every retry: the provider is down, stop paying for timeouts


class Dispatcher:
    """The asyncio side: a producer feeding `concurrency` workers; answers go to the journal writer.

    A worker hands an answer to the writer and takes its next request at once; the run's
    counters and budget settle when the writer has committed it.
    """

    def __init__(
        self,
        generation: Generation,
        engine: Engine,
        provider: Provider,
        writer: JournalWriter,
        stats: RunStats,
        on_progress: Callable[[RunStats], None],
        *,
        lease: RunLeaseHolder,
    ) -> None:
        settings = generation.settings
        self.generation = generation
        self.provider = provider
        self.settings = settings
        self.engine = engine
        self.writer = writer
        self.stats = stats
        self.on_progress = on_progress
        self.lease = lease
        self.policy = RetryPolicy(max_retries=settings.max_retries, deadline=settings.timeout)
        self.gate = RateLimitGate()
        self.throttle = Throttle(rpm=settings.rpm, tpm=settings.tpm)
        self.budget = Budget(limit=settings.max_cost, spent=stats.run_cost_usd)
        self.rng = random.Random()  # jitter only; never affects what is generated
        self.url = settings.base_url or DEFAULT_URLS.get(settings.provider, str(generation.replay_file))
        self.stopping: str | None = None
        self.fatal: FatalProviderError | None = None
        self.store_error: BaseException | None = None
        self.consecutive_failures = 0
        self.storing: set[asyncio.Future[CallOutcome]] = set()
        # Answers handed to the writer and not yet committed: bounded, so a slow disk slows the
        # workers down instead of piling answers up in memory.
        self.store_slots = asyncio.Semaphore(4 * settings.concurrency)

    async def run(self, *, recovered: list[Arrival]) -> None:
        """Store the answers an interrupted invocation logged (`recovered`), then send every open call."""
        settings = self.settings
        work: asyncio.Queue[journal.OpenCall | None] = asyncio.Queue(maxsize=settings.concurrency)
        try:
            # Stored before any call is loaded, so none of them is sent (and paid for) again.
            for arrival in recovered:
                await self._store(self.writer.store_recovered, arrival)
            await asyncio.gather(*self.storing, return_exceptions=True)
            await self._send_round(work, after=-1)
            # Then re-ask what cut answers lacked, a round at a time: each round's re-asks are planned
            # from the answers stored before it (as a rerun would plan them), and sent after them.
            first = self.generation.planner_total
            while self.stopping is None and (planned := await asyncio.to_thread(self.generation.journal_reasks, self.engine)):
                self.stats.reasked += planned
                self.stats.total_requests += planned
                self.on_progress(self.stats)
                await self._send_round(asyncio.Queue(maxsize=settings.concurrency), after=first - 1)
                first += self.generation.planner_total
        finally:
            await self.provider.close()
            self.stats.notes += self.provider.notes
            self.stats.stop_reason = self.stopping
        if self.store_error is not None:
            kept = f"every answer received is kept in {self.writer.log_path}" if self.writer.log_error is None else self.writer.log_error
            raise WorkFailed(
                f"storing answers failed, so the run stopped: {self.store_error}",
                fix=f"{kept}; once the store works, run the same command again: it stores them without paying again",
            )
        if self.fatal is not None:
            raise _provider_refused(self.fatal, self.settings)

    async def _send_round(self, work: asyncio.Queue[journal.OpenCall | None], *, after: int) -> None:
        """Send every open call past index `after`, and wait until their answers are stored."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._produce(work, after=after))
            for lane in range(self.settings.concurrency):
                tasks.create_task(self._work(work, lane))
        await asyncio.gather(*self.storing, return_exceptions=True)

    def _stop(self, reason: str, *, fix: str | None = None) -> None:
        if self.stopping is None:
            self.stopping = reason
            self.stats.stop_fix = fix

    async def _produce(self, work: asyncio.Queue[journal.OpenCall | None], *, after: int) -> None:
        while self.stopping is None:
            if self.lease.lost:
                self._stop("another process took this run over (its lease ran out here)")
                break
            journaled = self.writer.journaled()  # before the load: if set, the load sees every call there will be
            calls = await asyncio.to_thread(self._load, after)
            if not calls:
                if journaled:
                    break
                await asyncio.sleep(JOURNAL_POLL)  # the writer is still journaling the calls that come next
                continue
            after = calls[-1].index
            cached = {} if self.generation.no_cache else await asyncio.to_thread(self._cached, [c.request_hash for c in calls])
            for call in calls:
                if self.stopping is not None:
                    break
                body = cached.get(call.request_hash)
                if body is not None:
                    await self._store(self.writer.store_answer, call, body=body, attempts=0, latency_ms=None, from_cache=True)
                else:
                    await work.put(call)
        # Not in a `finally`: after an error the task group cancels the workers, and a put into
        # their full queue would wait forever.
        for _ in range(self.settings.concurrency):
            await work.put(None)

    def _load(self, after: int) -> list[journal.OpenCall]:
        with read_session(self.engine) as session:
            return journal.open_calls(session, run_id=self.stats.run_id, after_index=after, limit=CHUNK)

    def _cached(self, hashes: list[str]) -> dict[str, str]:
        with read_session(self.engine) as session:
            return journal.cached_bodies(session, hashes=hashes, run_id=self.stats.run_id)

    async def _work(self, work: asyncio.Queue[journal.OpenCall | None], lane: int) -> None:
        while (call := await work.get()) is not None:
            if self.stopping is None:
                await self._call(call, lane)

    async def _call(self, call: journal.OpenCall, lane: int) -> None:
        settings = self.settings
        prompt_tokens = estimate_tokens("".join(m["content"] for m in call.request["messages"]))
        # A re-ask has more room than the run's max_tokens: its own is journaled with it.
        max_tokens = int(call.request["params"]["max_tokens"])
        worst_case = self.generation.prices.cost(settings.model, prompt_tokens, max_tokens) if self.generation.priced else 0.0
        if not await self.budget.reserve(worst_case):
            self._stop(f"--max-cost ${settings.max_cost:g} reached (spent ${self.budget.spent:.4f})")
            return
        await self.throttle.acquire(prompt_tokens + max_tokens)
        if self.stopping is not None:
            self.budget.settle(worst_case, 0.0)
            return
        request = ProviderRequest(
            messages=call.request["messages"],
            temperature=settings.temperature,
            max_tokens=max_tokens,
            schema=ANSWER_SCHEMA,
            request_index=call.index,
            lane=lane,
            prompt_key=call.request["prompt_key"],
        )
        stats = self.stats
        stats.dispatched += 1
        self.on_progress(stats)
        retrying = False

        def retried(error: ProviderError) -> None:
            nonlocal retrying
            stats.retries += 1
            stats.retry_causes[error.cause] += 1
            stats.last_error = error.label
            if not retrying:
                retrying = True
                stats.retrying += 1
            self.on_progress(stats)

        started = time.perf_counter()
        try:
            body, attempts = await send_with_retries(
                lambda: self.provider.send(request), policy=self.policy, gate=self.gate, rng=self.rng, on_retry=retried
            )
        except CallFailed as failure:
            message = self._failure_message(failure)
            stats.failure_causes[kind_label(failure.kind)] += 1
            stats.last_error = kind_label(failure.kind)
            await self._store(self.writer.store_failure, call, reserved=worst_case, error=message, attempts=failure.attempts)
            self.consecutive_failures += 1
            if failure.kind == "refused":
                # Nothing listens there: every other request would be refused too.
                self._stop(message, fix=self._refused_fix())
            elif self.consecutive_failures >= UNREACHABLE_AFTER:
                self._stop(f"the provider is unreachable ({message})", fix=self._unreachable_fix(failure))
            return
        except FatalProviderError as fatal:
            stats.last_error = fatal.error.label
            await self._store(self.writer.store_failure, call, reserved=worst_case, error=fatal.error.describe(), attempts=fatal.attempts)
            self.fatal = self.fatal or fatal
            self._stop(fatal.error.describe())
            return
        except BaseException:
            self.budget.settle(worst_case, 0.0)  # cancelled (Ctrl-C): nothing arrived, nothing was spent
            raise
        finally:
            if retrying:
                stats.retrying -= 1
        self.consecutive_failures = 0
        latency_ms = (time.perf_counter() - started) * 1000
        await self._store(self.writer.store_answer, call, reserved=worst_case, body=body, attempts=attempts, latency_ms=latency_ms)

    def _failure_message(self, failure: CallFailed) -> str:
        """What the journal and the user read about a call without an answer: the cause and the server's address."""
        if failure.kind == "timeout":
            return f"no answer within {self.settings.timeout:g} s from {self.url}"
        if failure.kind == "refused":
            return f"cannot connect to {self.url}: connection refused"
        return failure.message

    def _refused_fix(self) -> str:
        if self.settings.base_url:
            return (
                f"start the server at {self.settings.base_url} (e.g. `ollama serve`, `vllm serve MODEL`) or correct --base-url;"
                " then run the same command again (nothing was paid)"
            )
        return f"check your network and proxy settings: {self.url} refused the connection; then run the same command again"

    def _unreachable_fix(self, failure: CallFailed) -> str:
        if failure.kind == "timeout":
            return (
                f"the server at {self.url} accepts requests but does not answer within {self.settings.timeout:g} s:"
                " check that it is up and not overloaded (lower --concurrency), or raise [generate] timeout in synthgate.toml;"
                " then run the same command again"
            )
        return "check that the server is up, then run the same command again to retry the requests without an answer"

    async def _store(
        self,
        submit: Callable[..., asyncio.Future[CallOutcome]],
        item: journal.OpenCall | Arrival,
        *,
        reserved: float = 0.0,
        **details: Any,
    ) -> None:
        """Hand a result to the writer; counters and budget settle once it is committed."""
        await self.store_slots.acquire()
        future = submit(item, **details)
        self.storing.add(future)
        index = item.index if isinstance(item, journal.OpenCall) else item.request_index
        reask = index >= self.generation.planner_total  # re-asks come after the run's planned requests
        future.add_done_callback(lambda done: self._stored(done, reserved, reask=reask))

    def _stored(self, future: asyncio.Future[CallOutcome], reserved: float, *, reask: bool) -> None:
        self.storing.discard(future)
        self.store_slots.release()
        if future.cancelled() or future.exception() is not None:
            self.budget.settle(reserved, reserved)  # unknown: assume the worst case was spent
            self.store_error = self.store_error or (future.exception() if not future.cancelled() else RuntimeError("cancelled"))
            self._stop("storing answers failed")
            return
        outcome = future.result()
        self.budget.settle(reserved, outcome.cost_usd)
        self.stats.record(outcome, reask=reask)
        self.on_progress(self.stats)


def _provider_refused(fatal: FatalProviderError, settings: GenerateSection) -> UserError:
    error = fatal.error
    return UserError(f"the provider refused the request, so the run stopped: {error.describe()}", fix=_refusal_fix(error, settings))


def _refusal_fix(error: ProviderError, settings: GenerateSection) -> str:
    """The fix for a request the provider refused, in the words of that provider and that mistake."""
    if settings.provider == "replay":
        # Nothing is generated on replay: only the recording or the command can be wrong (never --max-tokens).
        return (
            "replay with the command that made the recording (same seeds, template, -n, --per-request, --seed),"
            " or record the run again with --record FILE"
        )
    if error.kind == "auth":
        return f"check {KEY_ENV.get(settings.provider, KEY_ENV['openai'])} (read from the environment only)"
    if error.kind == "not_found":
        where = settings.base_url or "the provider default"
        if settings.provider == "openai" and settings.base_url and not settings.base_url.rstrip("/").endswith("/v1"):
            return f"an OpenAI-compatible server's base URL usually ends in /v1 (e.g. {settings.base_url.rstrip('/')}/v1); check --model ({settings.model!r}) too"
        return f"check --model ({settings.model!r}) and --base-url ({where})"
    return "check --model, --temperature, --max-tokens and --base-url; run the same command again to resume"
