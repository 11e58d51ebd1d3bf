"""Staying within limits: RPM/TPM, retries with backoff honouring Retry-After, a deadline per call,
a pause for everyone when 429s cluster, and the --max-cost budget.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiolimiter import AsyncLimiter

from generator.generation.providers.base import ProviderError

RETRY_AFTER_CAP = 60.0  # never sleep longer than this on a server's say-so
BACKOFF_BASE = 1.0
# A refused connection means nothing listens there: a server restarting comes back within a second
# or so, one that is not running never does. So two quick retries (~0.7 s in all), not the backoff
# of a 429 (5 retries took 25-29 s to say what was plain after the first).
QUICK_DELAYS = (0.2, 0.5)
# 429s "cluster" when at least half of the last CLUSTER_SIZE answers (within CLUSTER_WINDOW
# seconds) were 429s: then every worker pauses, instead of each one hammering the server. Scattered
# 429s (say 1 in 5) are only retried one by one: a random run of 10 in 20 at that rate is rarer than 1 in 300.
CLUSTER_SIZE = 20
CLUSTER_WINDOW = 10.0


class CallFailed(Exception):
    """A call that did not get an answer: retries or the deadline are used up.

    `kind`: the ErrorKind of the last failure ("timeout" when the deadline passed), so the run can
    name the cause of its failures and say what to do about them.
    """

    def __init__(self, message: str, *, attempts: int, kind: str) -> None:
        super().__init__(message)
        self.message = message
        self.attempts = attempts
        self.kind = kind


class FatalProviderError(Exception):
    """An error that will not go away by retrying (bad key, unknown model, bad request): stop the run."""

    def __init__(self, error: ProviderError, *, attempts: int) -> None:
        super().__init__(error.describe())
        self.error = error
        self.attempts = attempts


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int
    deadline: float  # seconds for the whole call, retries included

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random, *, refused: bool = False) -> float:
        """Wait before retry number `attempt`: the server's Retry-After (capped), else exponential backoff with jitter
        (a refused connection: QUICK_DELAYS)."""
        if refused:
            return QUICK_DELAYS[min(attempt, len(QUICK_DELAYS)) - 1]
        if retry_after is not None:
            return min(retry_after, RETRY_AFTER_CAP) + rng.uniform(0, min(1.0, 0.1 * retry_after))
        ceiling = min(RETRY_AFTER_CAP, BACKOFF_BASE * 2.0 ** (attempt - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


class RateLimitGate:
    """Notices 429s clustering and pauses every worker until the server's Retry-After has passed."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.paused_until = 0.0
        self.pauses = 0
        self._recent: deque[tuple[float, bool]] = deque(maxlen=CLUSTER_SIZE)

    def record(self, *, rate_limited: bool, retry_after: float | None = None) -> None:
        now = self.clock()
        self._recent.append((now, rate_limited))
        if not rate_limited:
            return
        recent = [limited for at, limited in self._recent if now - at <= CLUSTER_WINDOW]
        hits = sum(recent)
        if hits * 2 >= CLUSTER_SIZE:
            pause = min(retry_after if retry_after is not None else BACKOFF_BASE * 2 ** min(self.pauses, 6), RETRY_AFTER_CAP)
            if now + pause > self.paused_until:
                self.paused_until = now + pause
                self.pauses += 1
                self._recent.clear()  # judge the next cluster on fresh answers

    async def wait(self) -> None:
        while (remaining := self.paused_until - self.clock()) > 0:
            await asyncio.sleep(remaining)


class Throttle:
    """Requests-per-minute and tokens-per-minute limits (leaky buckets), either optional."""

    def __init__(self, *, rpm: int | None, tpm: int | None) -> None:
        # RPM as a bucket of one second's worth (at least 1): steady pacing, not a burst of a
        # whole minute's requests that the provider would answer with 429s.
        self.requests = AsyncLimiter(max(1.0, rpm / 60), max(1.0, rpm / 60) * 60 / rpm) if rpm else None
        self.tokens = AsyncLimiter(tpm, 60) if tpm else None

    async def acquire(self, tokens: int) -> None:
        if self.requests is not None:
            await self.requests.acquire()
        if self.tokens is not None:
            await self.tokens.acquire(min(tokens, self.tokens.max_rate))


class Budget:
    """--max-cost: a request is scheduled only if spend plus every in-flight worst case stays within the limit."""

    def __init__(self, *, limit: float | None, spent: float) -> None:
        self.limit = limit
        self.spent = spent
        self.reserved = 0.0
        self._settled = asyncio.Event()

    async def reserve(self, estimate: float) -> bool:
        """Hold `estimate` USD for a request; False when it can never fit (the run stops scheduling)."""
        if self.limit is None:
            return True
        while self.spent + self.reserved + estimate > self.limit:
            if self.reserved == 0:
                return False
            self._settled.clear()
            await self._settled.wait()  # an in-flight request may cost less than its worst case
        self.reserved += estimate
        return True

    def settle(self, estimate: float, actual: float) -> None:
        """A held request is over: release its estimate, count what it really cost."""
        self.spent += actual
        if self.limit is not None:
            self.reserved = max(0.0, self.reserved - estimate)
            self._settled.set()


async def send_with_retries(
    send: Callable[[], Awaitable[str]],
    *,
    policy: RetryPolicy,
    gate: RateLimitGate,
    rng: random.Random,
    on_retry: Callable[[ProviderError], None] = lambda error: None,
) -> tuple[str, int]:
    """The body of the first successful attempt and the number of attempts made.

    Raises CallFailed when retries or the deadline run out, FatalProviderError at once for errors
    that retrying cannot fix. `on_retry` hears of each retry as its wait begins (the progress shows it).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + policy.deadline
    attempt = 0
    while True:
        await gate.wait()
        attempt += 1
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise CallFailed(f"no answer within the {policy.deadline:g} s deadline", attempts=attempt - 1, kind="timeout")
        try:
            async with asyncio.timeout(remaining):
                body = await send()
        except TimeoutError:
            raise CallFailed(f"no answer within the {policy.deadline:g} s deadline", attempts=attempt, kind="timeout") from None
        except ProviderError as error:
            if not error.retryable:
                raise FatalProviderError(error, attempts=attempt) from None
            gate.record(rate_limited=error.kind == "rate_limit", retry_after=error.retry_after)
            refused = error.kind == "refused"
            retries = min(policy.max_retries, len(QUICK_DELAYS)) if refused else policy.max_retries
            if attempt > retries:
                raise CallFailed(f"{error.describe()} (after {attempt} attempts)", attempts=attempt, kind=error.kind) from None
            delay = policy.delay(attempt, error.retry_after, rng, refused=refused)
            if loop.time() + delay >= deadline:
                # A timed-out attempt that left no room for another is the deadline passing.
                why = f"no answer within the {policy.deadline:g} s deadline" if error.kind == "timeout" else error.describe()
                raise CallFailed(
                    f"{why} (retrying would pass the {policy.deadline:g} s deadline)", attempts=attempt, kind=error.kind
                ) from None
            on_retry(error)
            await asyncio.sleep(delay)
            continue
        gate.record(rate_limited=False)
        return body, attempt
