"""What the verified seeds look like (code, markdown, answer length, turns, edge cases, tags), for the prompt template."""

from __future__ import annotations

import random
import re
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from generator.examples import Example
from generator.markdown_text import read_markdown

# Fences are found by their opening lines (cheap, every answer). Headings, lists and bold need the
# markdown parser to tell them from code, and it costs 0.1-1 ms an answer: 100k seeds took 14 s. So
# only answers that may hold markup are parsed, at most MARKUP_SAMPLE seeds of them drawn at random
# (seeded: the same seeds give the same facts), and the shares are scaled back up (an estimate within a few percent; a template needs no more).
_FENCE = re.compile(r"^ {0,3}(?:`{3,}|~{3,})[ \t]*([^\s`]*)", re.MULTILINE)
_MAY_HOLD_MARKUP = re.compile(r"\*\*|__|^\s{0,3}(?:#|[-+*]\s|\d+[.)]\s)", re.MULTILINE)
MARKUP_SAMPLE = 2000


@dataclass(frozen=True)
class SeedFacts:
    """Facts of a seed set; shares are 0..1 of the seeds (conversations), lengths are words per assistant answer."""

    seeds: int
    code_share: float  # seeds whose assistant answers hold a fenced code block
    code_languages: tuple[str, ...]  # fence languages in use, most used first ("" not listed)
    headings_share: float
    lists_share: float
    bold_share: float
    answer_words_median: int
    answer_words_min: int
    answer_words_max: int
    multi_turn_share: float  # seeds with more than one assistant turn
    edge_share: float  # seeds with an edge:* tag
    tags: tuple[tuple[str, int], ...]  # (tag, seeds carrying it), most used first

    @property
    def uses_code(self) -> bool:
        return self.code_share > 0

    @property
    def uses_markdown(self) -> bool:
        return self.headings_share > 0 or self.lists_share > 0 or self.bold_share > 0

    @property
    def tag_names(self) -> list[str]:
        return [tag for tag, _ in self.tags]

    @classmethod
    def of(cls, examples: Sequence[Example]) -> SeedFacts:
        """One linear pass over the seeds, then markdown parsing of a bounded sample of those that may hold markup."""
        code = multi_turn = edge = 0
        languages: Counter[str] = Counter()
        tags: Counter[str] = Counter()
        lengths: list[int] = []
        may_hold_markup: list[list[str]] = []  # the answers of each seed that may hold headings, lists or bold
        for example in examples:
            answers = [m.content for m in example.messages if m.role == "assistant"]
            lengths.extend(len(answer.split()) for answer in answers)
            fence_languages = [language.casefold() for answer in answers for language in _FENCE.findall(answer)]
            code += bool(fence_languages)
            languages.update(language for language in fence_languages if language)
            if any(_MAY_HOLD_MARKUP.search(answer) for answer in answers):
                may_hold_markup.append(answers)
            multi_turn += len(answers) > 1
            edge += any(tag.startswith("edge:") for tag in example.tags)
            tags.update(set(example.tags))
        total = len(examples)
        headings, lists, bold = _markup_counts(may_hold_markup)

        def share(n: float) -> float:
            return round(n / total, 3) if total else 0.0

        return cls(
            seeds=total,
            code_share=share(code),
            code_languages=tuple(language for language, _ in languages.most_common()),
            headings_share=share(headings),
            lists_share=share(lists),
            bold_share=share(bold),
            answer_words_median=round(statistics.median(lengths)) if lengths else 0,
            answer_words_min=min(lengths, default=0),
            answer_words_max=max(lengths, default=0),
            multi_turn_share=share(multi_turn),
            edge_share=share(edge),
            tags=tuple(sorted(tags.items(), key=lambda item: (-item[1], item[0]))),
        )

    def rows(self) -> list[tuple[str, str]]:
        """(fact, value) pairs for the table `synthgate template check` shows."""

        def percent(value: float) -> str:
            return f"{value:.0%}"

        return [
            ("seeds", str(self.seeds)),
            ("fenced code", percent(self.code_share) + (f" ({', '.join(self.code_languages)})" if self.code_languages else "")),
            ("headings / lists / bold", " / ".join(percent(v) for v in (self.headings_share, self.lists_share, self.bold_share))),
            ("answer words (median, range)", f"{self.answer_words_median} ({self.answer_words_min}-{self.answer_words_max})"),
            ("multi-turn", percent(self.multi_turn_share)),
            ("edge cases (edge:*)", percent(self.edge_share)),
            ("tags", ", ".join(f"{tag} ({n})" for tag, n in self.tags) or "none"),
        ]


def _markup_counts(candidates: list[list[str]]) -> tuple[float, float, float]:
    """Seeds (estimated from an even sample past MARKUP_SAMPLE) whose answers hold headings, bullet lists, bold."""
    # A seeded random sample, not every k-th: seed files are often periodic (generated, or promoted in rounds).
    sample = random.Random(0).sample(candidates, MARKUP_SAMPLE) if len(candidates) > MARKUP_SAMPLE else candidates
    headings = lists = bold = 0
    for answers in sample:
        texts = [read_markdown(answer) for answer in answers]
        headings += any(text.headings for text in texts)
        lists += any(text.bullet_lists for text in texts)
        bold += any(text.bold for text in texts)
    scale = len(candidates) / len(sample) if sample else 0.0
    return headings * scale, lists * scale, bold * scale
