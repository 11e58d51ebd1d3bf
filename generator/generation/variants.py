"""`generate --variants K`: K-1 more answers to each generated example's last user turn, stored with it as one group.

Why this shape: preference data is sampled as several completions of one prompt. Once the run's
examples are stored, each one's conversation up to its last user turn is sent as it is (a plain chat
request, no schema) K-1 more times; each answer becomes the assistant turn of a candidate in the
example's group. The reviewer decides each one; export pairs every accepted member with every
rejected one (generator/export/selection.py).

The requests are a run of their own (its id derived from the generation run's), so the generation
run's journal, resumption and completeness stay exactly as they were. Like re-asks, they are planned
from the stored answers alone: the variant j of the example at position p of request i is request
(i * per_request + p) * MAX_VARIANTS + j - 1, so every rerun (after a kill too) plans the same
requests, journaled before they are sent, and none twice. An answer is committed with its call row
the moment it arrives; candidates are made from committed answers, a group at a time (so a group's
members are stored in order), by a sweep that a rerun repeats.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, func, select, update
from sqlmodel import Session, col

from generator.checks import CandidateChecker
from generator.checks.reference import as_messages
from generator.errors import WorkFailed
from generator.examples import Conversation, canonical_hash
from generator.generation import journal
from generator.generation.limits import Budget, CallFailed, FatalProviderError, RateLimitGate, RetryPolicy, Throttle, send_with_retries
from generator.generation.parsing import _read_body  # the one reader of both wire formats
from generator.generation.planning import MAX_REASK_ROUNDS, model_params, provider_identity
from generator.generation.pricing import estimate_tokens, unknown_price
from generator.generation.providers.base import ProviderRequest
from generator.generation.run_lease import run_lease
from generator.store.db import read_session, write_session
from generator.store.intake import NewCandidate, add_candidates
from generator.store.models import Candidate, LLMCall, Run, utcnow

if TYPE_CHECKING:
    from generator.generation.engine import Generation

MAX_VARIANTS = 10  # --variants at most: request indices leave this many slots per example
_CHUNK = 500  # calls loaded (and planned) per query


@dataclass
class VariantStats:
    """What the variants phase did, for the summary."""

    groups: int = 0  # examples with variants asked
    planned: int = 0  # variant requests of the run, journaled
    sent: int = 0  # requests sent by this invocation
    stored: int = 0  # candidates made from variant answers by this invocation
    filtered: int = 0
    unusable: dict[str, int] = field(default_factory=dict)  # answers with no usable text, by status
    failed: int = 0
    cost_usd: float = 0.0

    def note(self, variants: int) -> str:
        unusable = sum(self.unusable.values())
        return (
            f"--variants {variants}: {self.groups} group(s), {self.planned} variant request(s) of which {self.sent} sent now;"
            f" {self.stored} new variant candidate(s) ({self.filtered} filtered by checks)"
            + (f", {unusable} answer(s) unusable ({', '.join(f'{n} {s}' for s, n in sorted(self.unusable.items()))})" if unusable else "")
            + (f", {self.failed} request(s) failed (run the same command again to retry them)" if self.failed else "")
        )


def dry_run_lines(generation: Generation, *, variants: int) -> list[str]:
    """What `--variants K` adds to a dry run: K-1 plain-chat requests per example, sized like the seeds' prompts and answers."""
    conversations = [s.example.model_dump()["messages"] for s in generation.seeds]
    prompts = [prompt_of(messages) or [] for messages in conversations]
    prompt_tokens = sum(estimate_tokens(json.dumps(p, ensure_ascii=False)) for p in prompts) / max(1, len(prompts))
    answer_tokens = sum(estimate_tokens(m[-1]["content"]) for m in conversations) / max(1, len(conversations))
    requests = generation.settings.count * (variants - 1)
    tokens_in, tokens_out = int(requests * prompt_tokens), int(requests * answer_tokens)
    price = generation.prices.price(generation.settings.model) if generation.priced else (0.0, 0.0)
    cost = unknown_price(generation.settings.model) if price is None else f"≈ ${(tokens_in * price[0] + tokens_out * price[1]) / 1e6:.4f}"
    return [
        f"--variants {variants}: then {requests} more request(s) ({variants - 1} per example, plain chat, after the run completes):",
        f"  estimated tokens ≈ {tokens_in:,} in, ≈ {tokens_out:,} out; estimated cost {cost}.",
    ]


def variant_run_id(run_id: str) -> str:
    return canonical_hash({"variants_of": run_id})[:16]


def variant_index_of(*, request_index: int, position: int, per_request: int, j: int) -> int:
    """The request index of variant j (1..K-1) of the example at `position` of request `request_index`."""
    return (request_index * per_request + position) * MAX_VARIANTS + j - 1


def prompt_of(messages: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The conversation up to (and with) its last user turn; None when there is none."""
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=None)
    return None if last_user is None else messages[: last_user + 1]


def generate_variants(generation: Generation, engine: Engine, *, variants: int) -> VariantStats:
    """Ask, store and group the variants of the generation run's examples; a rerun resumes it and pays for nothing twice."""
    stats = VariantStats()
    if variants <= 1:
        return stats
    run_id = variant_run_id(generation.run_id)
    with run_lease(engine, run_id, pids=[os.getpid()]):
        with write_session(engine) as session:
            _open_run(session, generation, run_id=run_id, variants=variants)
            stats.groups, stats.planned = _plan(session, generation, run_id=run_id, variants=variants)
        checker = _Materializer(generation, engine, run_id=run_id)
        checker.sweep(stats)  # answers a killed invocation committed without making their candidates
        asyncio.run(_Sender(generation, engine, run_id=run_id, stats=stats, on_chunk=lambda: checker.sweep(stats)).run())
        checker.sweep(stats, partial=True)
        with write_session(engine) as session:
            open_calls = session.execute(
                select(func.count()).where(col(LLMCall.run_id) == run_id, col(LLMCall.status).in_(journal.OPEN))
            ).scalar_one()
            journal.finish_run(
                session,
                run_id=run_id,
                status="complete" if open_calls == 0 else "stopped",
                stop_reason=None if open_calls == 0 else f"{open_calls} variant request(s) without an answer",
            )
            totals = journal.run_totals(session, run_id=run_id)
            stats.cost_usd = totals.cost_usd
            stats.unusable = {status: n for status, n in totals.calls.items() if status in ("truncated", "refused", "invalid")}
    return stats


def _open_run(session: Session, generation: Generation, *, run_id: str, variants: int) -> None:
    settings = generation.settings
    journal.open_run(
        session,
        run=Run(
            id=run_id,
            provider=settings.provider,
            model=settings.model,
            base_url=settings.base_url,
            template=str(settings.template),
            template_hash=generation.template.hash,
            sampling_seed=settings.seed,
            config={"variants_of": generation.run_id, "variants": variants},
        ),
    )
    session.flush()


def _plan(session: Session, generation: Generation, *, run_id: str, variants: int) -> tuple[int, int]:
    """Journal the variant requests not journaled yet; returns (examples with variants, variant requests of the run)."""
    settings = generation.settings
    identity, params = provider_identity(settings), model_params(settings)
    planned = journal.planned_indices(session, run_id=run_id)
    rows = session.execute(
        select(col(Candidate.source_key), col(Candidate.messages), col(Candidate.seed_ids), col(LLMCall.request_index))
        .join(LLMCall, col(LLMCall.id) == col(Candidate.call_id))
        .where(
            col(Candidate.run_id) == generation.run_id,
            col(LLMCall.run_id) == generation.run_id,  # not the variants themselves (their calls are the variant run's)
            col(Candidate.status) != "filtered",
        )
        .order_by(col(LLMCall.request_index), col(Candidate.source_key)),
        execution_options={"yield_per": _CHUNK},
    )
    groups, new = 0, []
    for source_key, messages, seed_ids, request_index in rows:
        position = int(source_key.rsplit(":", 1)[1])
        prompt = prompt_of(messages)
        # A re-ask's index is below (MAX_REASK_ROUNDS + 1) * total, its positions below per_request: slots never collide.
        if prompt is None or position >= settings.per_request or request_index >= (MAX_REASK_ROUNDS + 1) * generation.planner_total:
            continue
        groups += 1
        for j in range(1, variants):
            index = variant_index_of(request_index=request_index, position=position, per_request=settings.per_request, j=j)
            if index in planned:
                continue
            # Keyed by the example it varies and its place in the group: no other request of any run has this key.
            key = canonical_hash({"messages": canonical_hash(prompt), "variant_of": source_key, "variant": j})
            new.append(
                {
                    "run_id": run_id,
                    "request_index": index,
                    "request_hash": journal.request_hash(identity=identity, params=params, prompt=key),
                    "request": {
                        "messages": prompt,
                        "asked": 1,
                        "focus": None,
                        "prompt_key": key,
                        "params": params,
                        "variant_of": source_key,
                        "variant_index": j,
                    },
                    "seed_ids": seed_ids,
                }
            )
            if len(new) >= _CHUNK:
                journal.journal_calls(session, rows=new)
                new = []
    journal.journal_calls(session, rows=new)
    total = session.execute(select(func.count()).where(col(LLMCall.run_id) == run_id)).scalar_one()
    return groups, int(total)


class _Sender:
    """Send the variant run's open calls, `concurrency` at a time, committing each answer with its call row on arrival."""

    def __init__(self, generation: Generation, engine: Engine, *, run_id: str, stats: VariantStats, on_chunk: Any) -> None:
        settings = generation.settings
        self.generation, self.engine, self.run_id, self.stats, self.on_chunk = generation, engine, run_id, stats, on_chunk
        self.policy = RetryPolicy(max_retries=settings.max_retries, deadline=settings.timeout)
        self.gate = RateLimitGate()
        self.throttle = Throttle(rpm=settings.rpm, tpm=settings.tpm)
        self.rng = random.Random()  # jitter only
        self.stopping: str | None = None

    async def run(self) -> None:
        settings = self.generation.settings
        with read_session(self.engine) as session:
            # The budget covers the generation run and its variants together (--max-cost is for the whole job).
            spent = (
                journal.run_totals(session, run_id=self.generation.run_id).cost_usd
                + journal.run_totals(session, run_id=self.run_id).cost_usd
            )
        self.budget = Budget(limit=settings.max_cost, spent=spent)
        provider = self.generation._provider()
        try:
            after = -1
            while self.stopping is None:
                calls = await asyncio.to_thread(self._load, after)
                if not calls:
                    break
                after = calls[-1].index
                work: asyncio.Queue[journal.OpenCall] = asyncio.Queue()
                for call in calls:
                    work.put_nowait(call)
                async with asyncio.TaskGroup() as tasks:
                    for lane in range(min(settings.concurrency, len(calls))):
                        tasks.create_task(self._work(provider, work, lane))
                await asyncio.to_thread(self.on_chunk)
        finally:
            await provider.close()
        if self.stopping is not None:
            raise WorkFailed(f"variants stopped: {self.stopping}", fix="run the same command again: answers already stored are kept")

    def _load(self, after: int) -> list[journal.OpenCall]:
        with read_session(self.engine) as session:
            return journal.open_calls(session, run_id=self.run_id, after_index=after, limit=_CHUNK)

    async def _work(self, provider: Any, work: asyncio.Queue[journal.OpenCall], lane: int) -> None:
        while self.stopping is None and not work.empty():
            await self._call(provider, work.get_nowait(), lane)

    async def _call(self, provider: Any, call: journal.OpenCall, lane: int) -> None:
        generation = self.generation
        settings = generation.settings
        prompt_tokens = estimate_tokens("".join(m["content"] for m in call.request["messages"]))
        max_tokens = int(call.request["params"]["max_tokens"])
        worst = generation.prices.cost(settings.model, prompt_tokens, max_tokens) if generation.priced else 0.0
        if not await self.budget.reserve(worst):
            self.stopping = self.stopping or f"--max-cost ${settings.max_cost:g} reached (spent ${self.budget.spent:.4f})"
            return
        await self.throttle.acquire(prompt_tokens + max_tokens)
        request = ProviderRequest(
            messages=call.request["messages"],
            temperature=settings.temperature,
            max_tokens=max_tokens,
            schema=None,  # a plain chat answer: the text is the assistant turn
            request_index=call.index,
            lane=lane,
            prompt_key=call.request["prompt_key"],
        )
        started = time.perf_counter()
        try:
            body, attempts = await send_with_retries(lambda: provider.send(request), policy=self.policy, gate=self.gate, rng=self.rng)
        except (CallFailed, FatalProviderError) as failure:
            self.budget.settle(worst, 0.0)
            message = failure.error.describe() if isinstance(failure, FatalProviderError) else failure.message
            await asyncio.to_thread(self._commit, call, None, attempts=failure.attempts, latency_ms=None, error=message)
            self.stats.failed += 1
            if isinstance(failure, FatalProviderError):
                self.stopping = self.stopping or message
            return
        except BaseException:
            self.budget.settle(worst, 0.0)
            raise
        latency_ms = (time.perf_counter() - started) * 1000
        cost = await asyncio.to_thread(self._commit, call, body, attempts=attempts, latency_ms=latency_ms, error=None)
        self.budget.settle(worst, cost)
        self.stats.sent += 1

    def _commit(self, call: journal.OpenCall, body: str | None, *, attempts: int, latency_ms: float | None, error: str | None) -> float:
        """The answer (or the failure) into the call row, at once: from here a kill loses nothing paid for."""
        values: dict[str, Any] = {"attempts": col(LLMCall.attempts) + attempts, "latency_ms": latency_ms, "completed_at": utcnow()}
        cost = 0.0
        if body is None:
            values |= {"status": "failed", "error": error}
        else:
            reply = read_reply(body)
            generation = self.generation
            if generation.priced:
                cost = generation.prices.cost(generation.settings.model, reply.input_tokens, reply.output_tokens)
            values |= {
                "status": reply.status,
                "response_text": body,
                "finish_reason": reply.finish_reason,
                "input_tokens": reply.input_tokens,
                "output_tokens": reply.output_tokens,
                "cost_usd": cost,
                "error": reply.error,
            }
        with write_session(self.engine) as session:
            session.execute(update(LLMCall).where(col(LLMCall.id) == call.id, col(LLMCall.status).in_(journal.OPEN)).values(**values))
        return cost


@dataclass(frozen=True)
class ChatReply:
    status: str  # ok | truncated | refused | invalid
    text: str | None
    error: str | None
    finish_reason: str | None
    input_tokens: int
    output_tokens: int


def read_reply(body: str) -> ChatReply:
    """A plain chat answer: its text is the assistant turn. A cut answer is never used (as in generation)."""
    try:
        reply = _read_body(json.loads(body))
    except (json.JSONDecodeError, TypeError, KeyError, IndexError, AttributeError) as exc:
        return ChatReply("invalid", None, f"unreadable response body ({type(exc).__name__}: {exc})", None, 0, 0)
    usage = (reply.finish_reason, reply.input_tokens, reply.output_tokens)
    if reply.refusal is not None:
        return ChatReply("refused", None, f"the model refused: {reply.refusal}", *usage)
    if reply.truncated:
        return ChatReply("truncated", None, "the answer was cut off at max_tokens", *usage)
    text = (reply.text or "").strip()
    if not text:
        return ChatReply("invalid", None, "an empty answer", *usage)
    return ChatReply("ok", text, None, *usage)


class _Materializer:
    """Make candidates from committed variant answers that have none yet, a whole group at a time, checked in one pass."""

    def __init__(self, generation: Generation, engine: Engine, *, run_id: str) -> None:
        self.generation, self.engine, self.run_id = generation, engine, run_id
        self.checker: CandidateChecker | None = None  # built on first need (it indexes the whole store)

    def sweep(self, stats: VariantStats, *, partial: bool = False) -> None:
        """Store the groups whose every variant call is answered; with `partial`, also those with some still open."""
        with write_session(self.engine) as session:
            calls = session.execute(
                select(col(LLMCall.id), col(LLMCall.status), col(LLMCall.request), col(LLMCall.response_text), col(LLMCall.seed_ids))
                .outerjoin(Candidate, col(Candidate.call_id) == col(LLMCall.id))
                .where(col(LLMCall.run_id) == self.run_id, col(Candidate.id).is_(None))
                .order_by(col(LLMCall.request_index))
            ).all()
            by_group: dict[str, list[Any]] = defaultdict(list)
            for call in calls:
                by_group[call.request["variant_of"]].append(call)
            ready = [key for key, members in by_group.items() if partial or all(m.status not in journal.OPEN for m in members)]
            if not ready:
                return
            originals = {
                row.source_key: row
                for row in session.execute(
                    select(col(Candidate.id), col(Candidate.source_key), col(Candidate.tags), col(Candidate.review_order)).where(
                        col(Candidate.source_key).in_(ready)
                    )
                )
            }
            new: list[NewCandidate] = []
            groups: dict[str, str] = {}
            for key in ready:
                for call in sorted(by_group[key], key=lambda c: int(c.request["variant_index"])):
                    if call.status != "ok" or key not in originals:
                        continue  # an unusable answer (counted from the journal), or one still to be sent
                    text = read_reply(call.response_text).text
                    messages = [*call.request["messages"], {"role": "assistant", "content": text}]
                    source_key = f"{call.id}:0"
                    groups[source_key] = key
                    new.append(
                        NewCandidate.from_example(
                            Conversation.model_validate({"messages": messages, "tags": originals[key].tags}),
                            source_key=source_key,
                            run_id=self.generation.run_id,
                            call_id=call.id,
                            seed_ids=call.seed_ids,
                            template_hash=self.generation.template.hash,
                            model=self.generation.settings.model,
                        )
                    )
            if self.checker is None:
                self.checker = CandidateChecker.from_store(session, project=self.generation.project, holdout=self.generation.holdout)
            # The originals' groups first: a variant near its own example is what was asked for, not a duplicate.
            self.checker.add_groups({f"candidate:{originals[key].id}": key for key in ready if key in originals})
            results = self.checker.check_new([(c.source_key, as_messages(c.messages)) for c in new], groups=groups)
            checked = [c.model_copy(update=result.model_dump()) for c, result in zip(new, results, strict=True)]
            ids = add_candidates(session, checked)
            index_of = {f"{call.id}:0": int(call.request["variant_index"]) for call in calls}
            for key in ready:
                original = originals.get(key)
                if original is None:
                    continue
                members = [(cid, c) for cid, c in zip(ids, checked, strict=True) if groups[c.source_key] == key]
                # The group comes to the reviewer together: every member's place in the queue is its example's id.
                session.execute(
                    update(Candidate)
                    .where(col(Candidate.id) == original.id)
                    .values(variant_group=key, variant_index=0, review_order=max(original.review_order, original.id))
                )
                for cid, c in members:
                    session.execute(
                        update(Candidate)
                        .where(col(Candidate.id) == cid)
                        .values(
                            variant_group=key, variant_index=index_of[c.source_key], review_order=max(original.review_order, original.id)
                        )
                    )
            stats.stored += len(checked)
            stats.filtered += sum(1 for c in checked if c.status == "filtered")
