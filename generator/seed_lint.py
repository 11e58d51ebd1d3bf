"""Lints over a whole seed set, the checks a careful expert runs before trusting it as a baseline."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from generator.config import SeedsSection
from generator.errors import UserError
from generator.examples import Message
from generator.project import display_path
from generator.seed_near_duplicates import SeedSigning, first_near_duplicates
from generator.seeds import LineProblem, Seed, SeedSet, collector_paused
from generator.similarity import ShingleSets, normalize_text, normalized_key, similarity_text
from generator.style import (
    StyleProfile,
    answer_chars,
    conversation_features,
    fence_languages,
    has_trailing_whitespace,
    unclosed_fence,
)

_MIN_GROUP = 5  # seeds of a kind needed to judge lengths by the kind's own median


@dataclass(frozen=True)
class LengthStats:
    minimum: int
    median: float
    p90: float
    maximum: int


def answer_length(seed: Seed) -> int:
    return answer_chars(seed.example.messages)


def length_stats(seeds: list[Seed]) -> LengthStats | None:
    if not seeds:
        return None
    lengths = sorted(answer_length(s) for s in seeds)
    p90 = lengths[min(len(lengths) - 1, int(0.9 * len(lengths)))]
    return LengthStats(lengths[0], statistics.median(lengths), p90, lengths[-1])


def tag_counts(seeds: list[Seed]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for seed in seeds:
        counts.update(seed.example.tags or ["(untagged)"])
    return counts


def lint_seeds(seed_set: SeedSet, config: SeedsSection, *, signing: SeedSigning | None = None) -> list[LineProblem]:
    """Problems across the set: exact duplicates are errors, everything else is a warning.

    `signing`: the near-duplicate signing the caller started while loading, given `signing_text` of
    each seed in order (seeds check); otherwise it starts here.
    """
    seeds = seed_set.seeds
    threshold = config.near_duplicate_threshold
    with collector_paused():
        if signing is None or signing.count != len(seeds):
            # Shingling and signing, the costliest lint, starts first: a worker process does it while this one runs the others.
            signing = SeedSigning([signing_text(seed) for seed in seeds], threshold=threshold)
        with signing:
            problems = _style(seeds)
            problems += _tags(seeds, config.min_per_tag)
            problems += _length_outliers(seeds, config.length_outlier_factor)
            sets, keys, normalized_turns = signing.result()
        duplicates, unique = _exact_duplicates(seeds, normalized_turns)
        problems += duplicates + _near_duplicates(seeds, unique, sets, keys, threshold)
    return sorted(problems, key=lambda p: (str(p.file), p.line, p.message))


def signing_text(seed: Seed) -> str:
    """What near-duplicates are measured on, like the candidate checks: the turns, not the shared system prompt."""
    return similarity_text(seed.example.messages)


def seed_set_errors(seed_set: SeedSet) -> list[LineProblem]:
    """The errors `seeds check` reports for this set (broken lines, repeated ids, exact duplicates), in file order.

    Only the lints that can find an error run here: `generate` calls this to refuse a set with errors.
    """
    with collector_paused():
        duplicates, _ = _exact_duplicates(seed_set.seeds)
    return sorted(seed_set.errors + duplicates, key=lambda p: (str(p.file), p.line, p.message))


def raise_on_seed_errors(seed_set: SeedSet, root: Path | None = None) -> None:
    """Stop with exit 2 while `seeds check` would report an error: generation must not start from a bad baseline."""
    errors = seed_set_errors(seed_set)
    if not errors:
        return
    first = errors[0]
    more = f" ({len(errors) - 1} more error(s) in the seed set)" if len(errors) > 1 else ""
    raise UserError(
        first.message + more,
        file=display_path(first.file, root),
        line=first.line or None,
        fix="run `synthgate seeds check` to see every error; generate runs once it reports none",
    )


def _where(seed: Seed) -> str:
    return f"{seed.file.name}:{seed.line}"


def _exact_duplicates(seeds: list[Seed], normalized_turns: list[str] | None = None) -> tuple[list[LineProblem], list[int]]:
    """Errors for seeds that repeat an earlier one (ignoring case and whitespace), and the positions of the seeds that do not.

    `normalized_turns`: each seed's similarity text normalised, when the near-duplicate search has them.
    """
    problems = []
    first_by_key: dict[str, Seed] = {}
    unique: list[int] = []
    systems: dict[str, str] = {}
    for position, seed in enumerate(seeds):
        messages = seed.example.messages
        key = normalized_key(messages) if normalized_turns is None else exact_key(messages, normalized_turns[position], systems)
        original = first_by_key.setdefault(key, seed)
        if original is not seed:
            problems.append(
                LineProblem(seed.file, seed.line, f"exact duplicate of {_where(original)} (ignoring case and whitespace); delete one")
            )
        else:
            unique.append(position)
    return problems, unique


def exact_key(messages: list[Message], normalized_turns: str, systems: dict[str, str]) -> str:
    """normalized_key(messages), built from the normalised similarity text of the messages.

    The system prompt, the same in most seeds, is normalised once (in `systems`); it can only be the
    first message (Example refuses one elsewhere), and the messages are joined by newlines, which
    neither Unicode normalisation nor case folding carries anything across.
    """
    if messages[0].role != "system":
        return normalized_turns
    system = messages[0].content
    prefix = systems.get(system)
    if prefix is None:
        prefix = systems[system] = normalize_text(f"system: {system}")
    return f"{prefix} {normalized_turns}"


def _near_duplicates(seeds: list[Seed], unique: list[int], sets: ShingleSets, keys: np.ndarray, threshold: float) -> list[LineProblem]:
    """Warnings for seeds (of those at `unique`) similar to an earlier one.

    A family of n variants of one seed would make every variant compare with all the variants before
    it (quadratic: 50,000 such lines took 100 s). So seeds like no earlier one ("originals") and the
    near-duplicates found ("variants") are told apart, and variants are compared only when no original
    matches: a variant costs one comparison with its original, and a seed close to a variant but not
    to the original is still reported (first_near_duplicates).
    """
    return [
        LineProblem(
            seeds[unique[match.position]].file,
            seeds[unique[match.position]].line,
            f"near-duplicate of {_where(seeds[unique[match.original]])} (similarity {match.similarity:.2f}); keep the better one",
            "warning",
        )
        for match in first_near_duplicates(sets, keys, unique, threshold)
    ]


def _style(seeds: list[Seed]) -> list[LineProblem]:
    problems = []
    conversations = [s.example.messages for s in seeds]
    # Once, for the profile and each seed's drift (computed twice, they were a fifth of this lint).
    features = [conversation_features(messages) for messages in conversations]
    languages = [fence_languages(messages) for messages in conversations]
    profile = StyleProfile.from_conversations(conversations, features, languages)
    for seed, seed_features, seed_languages in zip(seeds, features, languages, strict=True):
        for drift in profile.drift(seed.example.messages, seed_features, seed_languages):
            problems.append(LineProblem(seed.file, seed.line, f"format drift: {drift}", "warning"))
        for number, message in enumerate(seed.example.messages, start=1):
            content = message.content
            if has_trailing_whitespace(content):
                problems.append(LineProblem(seed.file, seed.line, f"message {number} ({message.role}) has trailing whitespace", "warning"))
            if unclosed_fence(content):
                problems.append(
                    LineProblem(
                        seed.file, seed.line, f"message {number} ({message.role}) leaves a ``` code block open; close it", "warning"
                    )
                )
    return problems


def _tags(seeds: list[Seed], min_per_tag: int) -> list[LineProblem]:
    problems = []
    by_tag: dict[str, list[Seed]] = defaultdict(list)
    # The fix names categories the user's seeds already use (a demo word would mean nothing to them).
    categories = [seed.example.category for seed in seeds]  # once: it is a scan of the tags
    in_use = sorted({category for category in categories if category})
    suggestion = f'"tags": ["{in_use[0]}"]; categories in use: {", ".join(in_use[:5])}' if in_use else '"tags": ["<topic>"]'
    for seed, category in zip(seeds, categories, strict=True):
        if category is None:
            problems.append(
                LineProblem(
                    seed.file, seed.line, f"no category tag: few-shot sampling cannot balance it (add e.g. {suggestion})", "warning"
                )
            )
        for tag in seed.example.tags:
            by_tag[tag].append(seed)
    for tag, members in sorted(by_tag.items()):
        if len(members) < min_per_tag:
            first = members[0]
            problems.append(
                LineProblem(
                    first.file,
                    first.line,
                    f"tag {tag!r} has only {len(members)} example(s) (fewer than {min_per_tag}): generation will lean on too little",
                    "warning",
                )
            )
    return problems


def _length_outliers(seeds: list[Seed], factor: float) -> list[LineProblem]:
    """Answers far from the median of comparable seeds.

    Seeds are compared within their kind (same edge-case tags) when the kind has enough members:
    a clarifying question is short by design and must not be called an outlier.
    """
    if len(seeds) < _MIN_GROUP:
        return []
    kinds: dict[frozenset[str], list[tuple[Seed, int]]] = defaultdict(list)
    for seed in seeds:
        kinds[frozenset(t for t in seed.example.tags if t.startswith("edge:"))].append((seed, answer_length(seed)))
    overall = statistics.median(length for members in kinds.values() for _, length in members)
    problems = []
    for members in kinds.values():
        median = statistics.median(length for _, length in members) if len(members) >= _MIN_GROUP else overall
        for seed, length in members:
            if length > factor * median:
                problems.append(
                    LineProblem(
                        seed.file, seed.line, f"answer is unusually long ({length} chars; comparable seeds' median {median:.0f})", "warning"
                    )
                )
            elif length < median / factor:
                problems.append(
                    LineProblem(
                        seed.file,
                        seed.line,
                        f"answer is unusually short ({length} chars; comparable seeds' median {median:.0f})",
                        "warning",
                    )
                )
    return problems
