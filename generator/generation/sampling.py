"""Stratified few-shot sampling: which seeds request i shows, a pure function of (sampling seed, i).

Requests take turns covering every tag (rare tags and `edge:*` cases get as many turns as common
ones), and the remaining examples are drawn with weights that favour under-represented tags.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from generator.errors import UserError
from generator.seeds import Seed


@dataclass(frozen=True)
class FewShot:
    seeds: list[Seed]
    focus: str | None  # the tag this request is meant to cover


class FewShotSampler:
    def __init__(self, seeds: Sequence[Seed], *, k: int, sampling_seed: int, target_tag: str | None = None) -> None:
        self.seeds = sorted(seeds, key=lambda seed: seed.id)
        self.k = min(k, len(self.seeds))
        self.sampling_seed = sampling_seed
        self.target_tag = target_tag
        counts = Counter(tag for seed in self.seeds for tag in seed.example.tags)
        if target_tag is not None and target_tag not in counts:
            known = ", ".join(sorted(counts)) or "none"
            raise UserError(f"--tag {target_tag!r} matches no seed", fix=f"use a tag the seeds carry: {known}")
        self.strata = sorted(counts)
        random.Random(f"{sampling_seed}:strata").shuffle(self.strata)
        # A seed weighs as much as its rarest tag: one seed of a tag seen twice weighs as much as
        # five seeds of a tag seen ten times.
        self._weights = [max((1 / counts[t] for t in seed.example.tags), default=1 / len(self.seeds)) for seed in self.seeds]

    def sample(self, index: int) -> FewShot:
        rng = random.Random(f"{self.sampling_seed}:{index}")
        focus = self.target_tag or (self.strata[index % len(self.strata)] if self.strata else None)
        chosen: list[int] = []
        if focus is not None and self.k:
            with_focus = [i for i, seed in enumerate(self.seeds) if focus in seed.example.tags]
            # Aimed at one tag: show as many of its seeds as fit. Otherwise one, for coverage.
            chosen = rng.sample(with_focus, min(len(with_focus), self.k if self.target_tag else 1))
        rest = [i for i in range(len(self.seeds)) if i not in chosen]
        # Weighted sampling without replacement (Efraimidis-Spirakis keys).
        rest.sort(key=lambda i: rng.random() ** (1 / self._weights[i]), reverse=True)
        chosen += rest[: self.k - len(chosen)]
        rng.shuffle(chosen)
        return FewShot(seeds=[self.seeds[i] for i in chosen], focus=focus)
