"""`synthgate generate`, start to finish: check the input, journal the run, send what is missing, store what arrives."""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from generator.config import GenerateSection
from generator.errors import UserError, WorkFailed
from generator.generation import journal
from generator.generation.feedback import rejection_reasons
from generator.generation.limits import Budget, CallFailed, FatalProviderError, RateLimitGate, RetryPolicy, Throttle, send_with_retries
from generator.generation.parsing import ANSWER_SCHEMA
from generator.generation.planning import ContextFile, RequestPlanner, run_id_for, run_identity, seed_set_hash
from generator.generation.pricing import PriceTable, estimate_tokens
from generator.generation.providers import make_provider
from generator.generation.providers.base import ProviderRequest
from generator.generation.secrets import api_key
from generator.generation.templates import PromptTemplate
from generator.generation.writer import CallOutcome, JournalWriter, Provenance
from generator.project import Project
from generator.seeds import Seed, load_seeds
from generator.store.db import read_session, write_session
from generator.store.intake import sync_seeds
from generator.store.models import Run

CHUNK = 500  # calls journaled or loaded per statement
UNREACHABLE_AFTER = 5  # consecutive calls failing every retry: the provider is down, stop paying for timeouts


@dataclass
class RunStats:
    """What one invocation did (and the run it belongs to); the --json summary and the progress bar read it."""

    run_id: str
    total_requests: int
    answered_before: int = 0
    requests_sent: int = 0
    cache_hits: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)  # calls by status: ok, invalid, truncated, refused, failed
    retries: int = 0
    candidates: int = 0
    filtered: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    run_cost_usd: float = 0.0
    status: str = "running"
    stop_reason: str | None = None
    resumed: bool = False
    already_complete: bool = False
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def failed_calls(self) -> int:
        """Calls that gave no usable answer: failed after retries, invalid, truncated or refused."""
        return sum(n for status, n in self.outcomes.items() if status != "ok")

    @property
    def done(self) -> int:
        return self.answered_before + self.requests_sent + self.cache_hits - self.outcomes["failed"]

    def record(self, outcome: CallOutcome) -> None:
        if outcome.status == "duplicate":
            return
        if outcome.from_cache:
            self.cache_hits += 1
        else:
            self.requests_sent += 1
            self.input_tokens += outcome.input_tokens
            self.output_tokens += outcome.output_tokens
            self.cost_usd += outcome.cost_usd
        self.outcomes[outcome.status] += 1
        self.candidates += outcome.candidates
        self.filtered += outcome.filtered

    def as_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "stop_reason": self.stop_reason,
            "resumed": self.resumed,
            "requests_total": self.total_requests,
            "requests_answered_before": self.answered_before,
            "requests_sent": self.requests_sent,
            "cache_hits": self.cache_hits,
            "failed_calls": self.failed_calls,
            "failures": {status: self.outcomes[status] for status in ("failed", "invalid", "truncated", "refused")},
            "retries": self.retries,
            "candidates": self.candidates,
            "candidates_filtered": self.filtered,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": round(self.cost_usd, 6),
            "run_cost_usd": round(self.run_cost_usd, 6),
            "seconds": round(self.seconds, 3),
            "notes": self.notes,
        }


@dataclass(frozen=True)
class DryRun:
    run_id: str
    requests: int
    candidates: int
    prompt: list[dict[str, str]]
    input_tokens: int
    output_tokens: int
    worst_case_output_tokens: int
    cost_usd: float | None
    worst_case_cost_usd: float | None
    model: str

    def as_json(self) -> dict[str, Any]:
        return {
            "dry_run": True,
            "run_id": self.run_id,
            "model": self.model,
            "requests": self.requests,
            "candidates_asked": self.candidates,
            "estimated_input_tokens": self.input_tokens,
            "estimated_output_tokens": self.output_tokens,
            "estimated_cost_usd": None if self.cost_usd is None else round(self.cost_usd, 6),
            "worst_case_cost_usd": None if self.worst_case_cost_usd is None else round(self.worst_case_cost_usd, 6),
            "prompt": self.prompt,
            "requests_sent": 0,
        }


class Generation:
    """One `generate` invocation. Everything that can be wrong with the input is found in __init__ (exit 2)."""

    def __init__(self, project: Project, settings: GenerateSection, *, no_cache: bool = False, dry_run: bool = False) -> None:
        self.project = project
        self.settings = settings
        self.no_cache = no_cache
        self.template = PromptTemplate.load(project.path(settings.template))
        self.context = [self._context_file(name) for name in settings.context_files]
        self.seeds = self._load_seeds()
        self.prices = PriceTable(project.config.pricing)
        self.replay_file = self._replay_file()
        self.priced = settings.provider != "replay"
        if not dry_run and settings.provider in ("openai", "anthropic"):
            api_key(settings.provider, base_url=settings.base_url)  # a missing key stops us before anything is written
        if settings.max_cost is not None and self.priced and self.prices.price(settings.model) is None:
            raise UserError(
                f"--max-cost needs a price for model {settings.model!r}, and the built-in table has none",
                file=project.config_path,
                fix=f'add [pricing."{settings.model}"] with input_per_mtok and output_per_mtok to synthgate.toml',
            )
        replay_hash = hashlib.sha256(self.replay_file.read_bytes()).hexdigest() if self.replay_file else None
        self.identity = run_identity(
            settings, template_hash=self.template.hash, seeds_hash=seed_set_hash(self.seeds), context=self.context, replay_hash=replay_hash
        )
        self.run_id = run_id_for(self.identity)

    def _context_file(self, name: str) -> ContextFile:
        path = self.project.path(name)
        try:
            return ContextFile(name=name, text=path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(
                f"cannot read context file {name!r}: {getattr(exc, 'strerror', None) or exc}",
                file=self.project.config_path,
                fix="correct [generate] context_files, or create the file (UTF-8 text)",
            ) from None

    def _load_seeds(self) -> list[Seed]:
        seed_set = load_seeds(self.project.seed_files(), default_verified_by=self.project.config.seeds.verified_by)
        seed_set.raise_on_errors(self.project.root)
        if not seed_set.seeds and self.settings.few_shot > 0:
            raise UserError(
                "no verified seeds to show the model",
                file=self.project.config_path,
                fix="add examples to the files in [seeds] paths (see `synthgate seeds check`), or set few_shot = 0",
            )
        return seed_set.seeds

    def _replay_file(self) -> Path | None:
        if self.settings.provider != "replay":
            return None
        if not self.settings.replay_file:
            raise UserError("--provider replay needs a recording", fix="pass --replay-file FILE (write one with --record FILE)")
        path = self.project.path(self.settings.replay_file)
        if not path.is_file():
            raise UserError("replay file not found", file=path, fix="pass --replay-file FILE (write one with --record FILE)")
        return path

    def planner(self, reasons: list[tuple[str, int]]) -> RequestPlanner:
        return RequestPlanner(settings=self.settings, template=self.template, seeds=self.seeds, context=self.context, rejection_reasons=reasons)

    def dry_run(self, engine: Engine) -> DryRun:
        """Render every prompt, estimate tokens and cost for the whole run; send and write nothing."""
        with read_session(engine) as session:
            planner = self.planner(rejection_reasons(session, template_hash=self.template.hash))
        calls = [planner.build(i) for i in range(planner.total)]
        input_tokens = sum(estimate_tokens("".join(m["content"] for m in call.messages)) for call in calls)
        # Expect answers about as long as the seeds (plus JSON punctuation); the worst case is max_tokens each.
        per_example = sum(estimate_tokens(s.example.model_dump_json()) for s in self.seeds) / max(1, len(self.seeds)) or 200
        output_tokens = int(self.settings.count * per_example * 1.1)
        worst = planner.total * self.settings.max_tokens
        price = self.prices.price(self.settings.model) if self.priced else (0.0, 0.0)

        def cost(out: int) -> float | None:
            return None if price is None else (input_tokens * price[0] + out * price[1]) / 1_000_000

        return DryRun(self.run_id, planner.total, self.settings.count, calls[0].messages, input_tokens, output_tokens, worst,
                      cost(output_tokens), cost(worst), self.settings.model)

    def run(self, engine: Engine, *, on_progress: Callable[[RunStats], None] = lambda stats: None) -> RunStats:
        """Journal the run (or find it), send every request it still lacks, and return what happened."""
        started = time.perf_counter()
        with journal.run_lock(self.project.state_dir, self.run_id):
            with write_session(engine) as session:
                sync_seeds(session, self.seeds, root=self.project.root)
            provenance = Provenance(run_id=self.run_id, template_hash=self.template.hash, model=self.settings.model, priced=self.priced)
            # Started first: the writer builds its checker while this process journals the run.
            writer = JournalWriter(
                db_url=engine.url.render_as_string(hide_password=False), project=self.project, provenance=provenance, prices=self.prices
            )
            stats: RunStats | None = None
            try:
                stats = self._journal(engine)
                if stats.already_complete:
                    return stats
                writer.wait_ready()
                on_progress(stats)
                asyncio.run(_Dispatcher(self, engine, writer, stats, on_progress).run())
            finally:
                writer.close()  # even on Ctrl-C: every answer received is committed
                if stats is not None and not stats.already_complete:
                    self._finish(engine, stats)
                    stats.seconds = time.perf_counter() - started
        return stats

    def _journal(self, engine: Engine) -> RunStats:
        """Create (or find) the run and journal every request it will send, in one transaction."""
        with write_session(engine) as session:
            template_path = str(Path(self.settings.template))
            reasons = rejection_reasons(session, template_hash=self.template.hash)
            run, resumed = journal.open_run(
                session,
                run=Run(
                    id=self.run_id,
                    provider=self.settings.provider,
                    model=self.settings.model,
                    base_url=self.settings.base_url,
                    template=template_path,
                    template_hash=self.template.hash,
                    sampling_seed=self.settings.seed,
                    target_count=self.settings.count,
                    config={**self.identity, "template": template_path, "rejection_reasons": reasons},
                ),
            )
            # A resumed run keeps the feedback it started with, so its remaining prompts are the planned ones.
            planner = self.planner([tuple(pair) for pair in run.config.get("rejection_reasons", reasons)])
            present = journal.planned_indices(session, run_id=run.id)
            if len(present) < planner.total:
                rows: list[dict[str, Any]] = []
                for row in planner.journal_rows(run_id=run.id, skip=present):
                    rows.append(row)
                    if len(rows) == CHUNK:
                        journal.journal_calls(session, rows=rows)
                        rows = []
                journal.journal_calls(session, rows=rows)
            totals = journal.run_totals(session, run_id=run.id)
            stats = RunStats(run_id=run.id, total_requests=planner.total, answered_before=totals.answered, resumed=resumed,
                             run_cost_usd=totals.cost_usd)
            if totals.open == 0:
                journal.finish_run(session, run_id=run.id, status="complete", stop_reason=None)
                stats.status, stats.already_complete = "complete", resumed
        return stats

    def _finish(self, engine: Engine, stats: RunStats) -> None:
        with write_session(engine) as session:
            totals = journal.run_totals(session, run_id=self.run_id)
            stats.status = "complete" if totals.open == 0 else "stopped"
            if stats.status == "stopped" and stats.stop_reason is None:
                stats.stop_reason = f"{totals.open} request(s) without an answer"
            journal.finish_run(session, run_id=self.run_id, status=stats.status, stop_reason=stats.stop_reason)
            stats.run_cost_usd = totals.cost_usd


class _Dispatcher:
    """The asyncio side: a producer feeding `concurrency` workers; answers go to the journal writer.

    A worker hands an answer to the writer and takes its next request at once; the run's
    counters and budget settle when the writer has committed it.
    """

    def __init__(self, generation: Generation, engine: Engine, writer: JournalWriter, stats: RunStats, on_progress: Callable[[RunStats], None]) -> None:
        settings = generation.settings
        self.generation = generation
        self.settings = settings
        self.engine = engine
        self.writer = writer
        self.stats = stats
        self.on_progress = on_progress
        self.policy = RetryPolicy(max_retries=settings.max_retries, deadline=settings.timeout)
        self.gate = RateLimitGate()
        self.throttle = Throttle(rpm=settings.rpm, tpm=settings.tpm)
        self.budget = Budget(limit=settings.max_cost, spent=stats.run_cost_usd)
        self.rng = random.Random()  # jitter only; never affects what is generated
        self.stopping: str | None = None
        self.fatal: FatalProviderError | None = None
        self.store_error: BaseException | None = None
        self.consecutive_failures = 0
        self.storing: set[asyncio.Future[CallOutcome]] = set()
        # Answers handed to the writer and not yet committed: bounded, so a slow disk slows the
        # workers down instead of piling answers up in memory.
        self.store_slots = asyncio.Semaphore(4 * settings.concurrency)

    async def run(self) -> None:
        settings = self.settings
        self.provider = make_provider(
            settings.provider, model=settings.model, base_url=settings.base_url, structured_output=settings.structured_output,
            timeout=settings.timeout, concurrency=settings.concurrency, replay_file=self.generation.replay_file,
        )
        work: asyncio.Queue[journal.OpenCall | None] = asyncio.Queue(maxsize=settings.concurrency)
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._produce(work))
                for _ in range(settings.concurrency):
                    tasks.create_task(self._work(work))
            await asyncio.gather(*self.storing, return_exceptions=True)
        finally:
            await self.provider.close()
            self.stats.notes += self.provider.notes
            self.stats.stop_reason = self.stopping
        if self.store_error is not None:
            raise WorkFailed(f"storing answers failed, so the run stopped: {self.store_error}",
                             fix="run the same command again: stored answers are kept and the rest are sent again")
        if self.fatal is not None:
            raise _provider_refused(self.fatal, self.settings)

    def _stop(self, reason: str) -> None:
        if self.stopping is None:
            self.stopping = reason

    async def _produce(self, work: asyncio.Queue[journal.OpenCall | None]) -> None:
        after = -1
        while self.stopping is None:
            calls = await asyncio.to_thread(self._load, after)
            if not calls:
                break
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

    async def _work(self, work: asyncio.Queue[journal.OpenCall | None]) -> None:
        while (call := await work.get()) is not None:
            if self.stopping is None:
                await self._call(call)

    async def _call(self, call: journal.OpenCall) -> None:
        settings = self.settings
        prompt_tokens = estimate_tokens("".join(m["content"] for m in call.request["messages"]))
        worst_case = self.generation.prices.cost(settings.model, prompt_tokens, settings.max_tokens) if self.generation.priced else 0.0
        if not await self.budget.reserve(worst_case):
            self._stop(f"--max-cost ${settings.max_cost:g} reached (spent ${self.budget.spent:.4f})")
            return
        await self.throttle.acquire(prompt_tokens + settings.max_tokens)
        if self.stopping is not None:
            self.budget.settle(worst_case, 0.0)
            return
        request = ProviderRequest(
            messages=call.request["messages"], temperature=settings.temperature, max_tokens=settings.max_tokens,
            schema=ANSWER_SCHEMA, request_index=call.index, prompt_key=call.request["prompt_key"],
        )
        started = time.perf_counter()
        try:
            body, attempts = await send_with_retries(lambda: self.provider.send(request), policy=self.policy, gate=self.gate, rng=self.rng)
        except CallFailed as failure:
            self.stats.retries += max(0, failure.attempts - 1)
            await self._store(self.writer.store_failure, call, reserved=worst_case, error=failure.message, attempts=failure.attempts)
            self.consecutive_failures += 1
            if self.consecutive_failures >= UNREACHABLE_AFTER:
                self._stop(f"the provider is unreachable ({failure.message})")
            return
        except FatalProviderError as fatal:
            await self._store(self.writer.store_failure, call, reserved=worst_case, error=fatal.error.describe(), attempts=fatal.attempts)
            self.fatal = self.fatal or fatal
            self._stop(fatal.error.describe())
            return
        except BaseException:
            self.budget.settle(worst_case, 0.0)  # cancelled (Ctrl-C): nothing arrived, nothing was spent
            raise
        self.consecutive_failures = 0
        self.stats.retries += attempts - 1
        latency_ms = (time.perf_counter() - started) * 1000
        await self._store(self.writer.store_answer, call, reserved=worst_case, body=body, attempts=attempts, latency_ms=latency_ms)

    async def _store(self, submit: Callable[..., asyncio.Future[CallOutcome]], call: journal.OpenCall, *, reserved: float = 0.0, **details: Any) -> None:
        """Hand a result to the writer; counters and budget settle once it is committed."""
        await self.store_slots.acquire()
        future = submit(call, **details)
        self.storing.add(future)
        future.add_done_callback(lambda done: self._stored(done, reserved))

    def _stored(self, future: asyncio.Future[CallOutcome], reserved: float) -> None:
        self.storing.discard(future)
        self.store_slots.release()
        if future.cancelled() or future.exception() is not None:
            self.budget.settle(reserved, reserved)  # unknown: assume the worst case was spent
            self.store_error = self.store_error or (future.exception() if not future.cancelled() else RuntimeError("cancelled"))
            self._stop("storing answers failed")
            return
        outcome = future.result()
        self.budget.settle(reserved, outcome.cost_usd)
        self.stats.record(outcome)
        self.on_progress(self.stats)


def _provider_refused(fatal: FatalProviderError, settings: GenerateSection) -> UserError:
    error = fatal.error
    fixes = {
        "auth": f"check {'ANTHROPIC_API_KEY' if settings.provider == 'anthropic' else 'OPENAI_API_KEY'} (read from the environment only)",
        "not_found": f"check --model ({settings.model!r}) and --base-url ({settings.base_url or 'the provider default'})",
    }
    return UserError(
        f"the provider refused the request, so the run stopped: {error.describe()}",
        fix=fixes.get(error.kind, "check --model, --temperature, --max-tokens and --base-url; run the same command again to resume"),
    )
