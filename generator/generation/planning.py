"""A run's requests, derived deterministically: request i comes from (sampling seed, i) alone.

The run id is a hash of everything that decides the run's output (provider, model, server,
template, seeds, context, sampling and model parameters), never of operational knobs
(concurrency, rate limits, budget, timeouts), so the same command resumes the same run.

Re-asks: the examples a cut answer did not complete are asked again by one follow-up request with
more room, planned from the stored answer alone (request i's re-ask is request i + total), so the
writer process, a rerun and a rerun after a kill all plan the same one, and none twice.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from generator.config import GenerateSection
from generator.examples import canonical_hash
from generator.generation.journal import CutCall, prompt_key, request_hash
from generator.generation.max_tokens import model_limit, reask_max_tokens
from generator.generation.parsing import ANSWER_SCHEMA, parse_answer
from generator.generation.pricing import estimate_tokens
from generator.generation.sampling import FewShotSampler
from generator.generation.templates import PromptTemplate
from generator.seed_facts import SeedFacts
from generator.seeds import Seed


@dataclass(frozen=True)
class ContextFile:
    name: str
    text: str


@dataclass(frozen=True)
class PlannedCall:
    index: int
    messages: list[dict[str, str]]
    asked: int
    seed_ids: list[str]
    focus: str | None


MAX_REASK_ROUNDS = 2  # a re-ask may itself be cut and re-asked once more; then the missing examples are given up
DRY_RUN_SAMPLE = 200  # prompts a dry run renders to estimate a large run (~0.1 s)


def sample_indices(total: int, size: int) -> list[int]:
    """Up to `size` request indices spread evenly over 0..total-1, the first and the last included (all for a small run)."""
    if total <= size:
        return list(range(total))
    return sorted({i * (total - 1) // max(1, size - 1) for i in range(size)})


def seed_set_hash(seeds: list[Seed]) -> str:
    return canonical_hash(sorted([seed.id, seed.content_hash, list(seed.example.tags)] for seed in seeds))


def provider_identity(settings: GenerateSection) -> dict[str, Any]:
    """What, besides the prompt and parameters, decides an answer: who answers it and how it is asked."""
    return {
        "provider": settings.provider,
        "model": settings.model,
        "base_url": settings.base_url,
        "structured_output": settings.structured_output,
        "schema": canonical_hash(ANSWER_SCHEMA),
    }


def model_params(settings: GenerateSection) -> dict[str, Any]:
    return {"temperature": settings.temperature, "max_tokens": settings.max_tokens}


def run_identity(
    settings: GenerateSection,
    *,
    template_hash: str,
    seeds_hash: str,
    context: list[ContextFile],
    replay_hash: str | None,
    description: str = "",
) -> dict[str, Any]:
    # The project description is rendered into prompts; unset, it is left out so earlier run ids stay the same.
    described = {"description": description} if description else {}
    return {
        **described,
        **provider_identity(settings),
        **model_params(settings),
        "template_hash": template_hash,
        "seeds_hash": seeds_hash,
        "context_hash": canonical_hash([[c.name, c.text] for c in context]),
        "replay_hash": replay_hash,
        "few_shot": settings.few_shot,
        "per_request": settings.per_request,
        "count": settings.count,
        "tag": settings.tag,
        "sampling_seed": settings.seed,
    }


def run_id_for(identity: dict[str, Any]) -> str:
    return canonical_hash(identity)[:16]


class RequestPlanner:
    def __init__(
        self,
        *,
        settings: GenerateSection,
        template: PromptTemplate,
        seeds: list[Seed],
        context: list[ContextFile],
        rejection_reasons: list[tuple[str, int]],
        description: str = "",
    ) -> None:
        self.settings = settings
        self.description = description
        # Derived from the seeds, which the run id already covers: they change prompts only through the seeds.
        self.facts = SeedFacts.of([seed.example for seed in seeds])
        self.template = template
        self.context = context
        self.rejection_reasons = rejection_reasons
        self.sampler = FewShotSampler(seeds, k=settings.few_shot, sampling_seed=settings.seed, target_tag=settings.tag)
        self.total = math.ceil(settings.count / settings.per_request)

    def estimated_input_tokens(self, *, sample: int = DRY_RUN_SAMPLE) -> int:
        """Input tokens of the whole run: counted over every prompt of a run of at most `sample` requests,
        else extrapolated from `sample` prompts spread over the run (a run of 10^8 candidates has
        2 * 10^7 prompts: rendering them all took minutes and more memory than the machine had)."""
        indices = sample_indices(self.total, sample)
        rendered = sum(estimate_tokens("".join(m["content"] for m in self.build(i).messages)) for i in indices)
        return round(rendered * self.total / len(indices)) if indices else 0

    def asked(self, index: int) -> int:
        """Examples asked of request `index`: per_request, except a smaller last one so the run asks for exactly count."""
        return min(self.settings.per_request, self.settings.count - index * self.settings.per_request)

    def build(self, index: int, *, asked: int | None = None) -> PlannedCall:
        asked = self.asked(index) if asked is None else asked
        few_shot = self.sampler.sample(index)
        messages = self.template.render(
            {
                "examples": [seed.example for seed in few_shot.seeds],
                "count": asked,
                "tags": [self.settings.tag] if self.settings.tag else [],
                "focus": few_shot.focus,
                "rejection_reasons": self.rejection_reasons,
                "context": self.context,
                "description": self.description,
                "facts": self.facts,
            }
        )
        return PlannedCall(index, messages, asked, [seed.id for seed in few_shot.seeds], few_shot.focus)

    def journal_rows(self, *, run_id: str, skip: set[int]) -> Iterator[dict[str, Any]]:
        """LLMCall rows for every request not in `skip`; identical prompts are told apart by their occurrence."""
        identity, params = provider_identity(self.settings), model_params(self.settings)
        occurrences: Counter[str] = Counter()
        last = max((index for index in range(self.total) if index not in skip), default=-1)
        for index in range(last + 1):  # a resumed run renders no prompt past its last missing one
            call = self.build(index)
            same_prompt = canonical_hash(call.messages)
            occurrence = occurrences[same_prompt]
            occurrences[same_prompt] += 1
            if index in skip:
                continue
            key = prompt_key(same_prompt, occurrence)
            yield {
                "run_id": run_id,
                "request_index": index,
                "request_hash": request_hash(identity=identity, params=params, prompt=key),
                "request": {"messages": call.messages, "asked": call.asked, "focus": call.focus, "prompt_key": key, "params": params},
                "seed_ids": call.seed_ids,
            }

    def missing(self, cut: CutCall) -> int:
        """Examples the cut answer did not complete (re-parsed from the stored body: the same on every rerun)."""
        if cut.response_text is None:
            return 0
        return parse_answer(cut.response_text, asked=int(cut.request["asked"])).missing

    def reask_rows(self, *, run_id: str, cut: list[CutCall], planned: set[int]) -> list[dict[str, Any]]:
        """The re-asks of cut answers not planned yet: the missing examples of request i, asked by request i + total
        from request i's few-shot sample, with more max_tokens (within the model's limit)."""
        identity = provider_identity(self.settings)
        limit = model_limit(self.settings.model, configured=self.settings.max_tokens)
        rows = []
        for call in cut:
            index = call.index + self.total
            if index in planned or index // self.total > MAX_REASK_ROUNDS or (missing := self.missing(call)) <= 0:
                continue
            few_shot = self.build(call.index % self.total, asked=missing)
            params = {**call.request["params"], "max_tokens": reask_max_tokens(int(call.request["params"]["max_tokens"]), limit=limit)}
            # Keyed by the request it repeats: no other request of any run has this key.
            key = canonical_hash({"messages": canonical_hash(few_shot.messages), "reask_of": call.request["prompt_key"]})
            rows.append(
                {
                    "run_id": run_id,
                    "request_index": index,
                    "request_hash": request_hash(identity=identity, params=params, prompt=key),
                    "request": {
                        "messages": few_shot.messages,
                        "asked": missing,
                        "focus": few_shot.focus,
                        "prompt_key": key,
                        "params": params,
                        "reask_of": call.index,
                    },
                    "seed_ids": few_shot.seed_ids,
                }
            )
        return rows
