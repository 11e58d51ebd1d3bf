"""How many output tokens a request may use: derived from the seeds when not set, never past the model's limit."""

from __future__ import annotations

import math

from generator.generation.pricing import estimate_tokens
from generator.seeds import Seed

# Most output tokens each model accepts per request (the providers' documented limits). A model not
# listed (a local server, a new model) is held to UNKNOWN_LIMIT unless max_tokens is set higher.
MODEL_OUTPUT_LIMITS: dict[str, int] = {
    "gpt-4o-mini": 16_384,
    "gpt-4o": 16_384,
    "gpt-4.1": 32_768,
    "gpt-4.1-mini": 32_768,
    "gpt-4.1-nano": 32_768,
    "claude-3-haiku": 4_096,
    "claude-3-5-haiku": 8_192,
    "claude-3-5-sonnet": 8_192,
    "claude-3-7-sonnet": 64_000,
    "claude-sonnet-4": 64_000,
    "claude-opus-4": 32_000,
    "claude-haiku-4-5": 64_000,
}
UNKNOWN_LIMIT = 4_096
MARGIN = 1.5  # room over the longest seed: generated answers vary in length around the seeds'
JSON_OVERHEAD = 100  # tokens of the answer's wrapper ({"examples": [...]}, a code fence)
FLOOR = 512
REASK_GROWTH = 2  # a re-ask of a cut answer gets this many times the room of the request it repeats


def model_limit(model: str, *, configured: int | None = None) -> int:
    """The model's output limit: the table's entry for it (or for the family its dated name belongs to)."""
    # Dated names ("gpt-4o-mini-2024-07-18", "claude-3-5-haiku-20241022") share their family's limit;
    # the longest matching prefix wins, so gpt-4o-mini is not taken for gpt-4o.
    matches = [name for name in MODEL_OUTPUT_LIMITS if model == name or model.startswith(name + "-")]
    limit = MODEL_OUTPUT_LIMITS[max(matches, key=len)] if matches else UNKNOWN_LIMIT
    return max(limit, configured or 0)  # an explicit max_tokens says the model takes at least that


def derived_max_tokens(seeds: list[Seed], *, per_request: int, model: str) -> int:
    """The longest seed's tokens x per_request, with a margin, rounded up to 256, within [FLOOR, the model's limit]."""
    longest = max((estimate_tokens(seed.example.model_dump_json()) for seed in seeds), default=0)
    if longest == 0:
        return min(UNKNOWN_LIMIT, model_limit(model))
    wanted = math.ceil((longest * per_request * MARGIN + JSON_OVERHEAD) / 256) * 256
    return max(FLOOR, min(wanted, model_limit(model)))


def reask_max_tokens(previous: int, *, limit: int) -> int:
    """Room for a re-ask: more than the cut request had, within the model's limit."""
    return min(limit, previous * REASK_GROWTH)
