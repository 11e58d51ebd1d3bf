"""The house style of a set of examples (system prompt, answer formatting), and drift from it."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from generator.examples import Message
from generator.markdown_text import read_markdown

# Each feature is a yes/no property of an assistant answer. A set is consistent when (nearly)
# every answer agrees on each feature; an answer on the minority side has drifted.
FEATURES: tuple[str, ...] = ("markdown headings", "bold markup", "bullet lists", "'1)' numbering", "code fences", "emoji")
_EMOJI = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf]")

# Below this share, a feature's minority is called drift (and only with enough examples to judge).
MAJORITY = 0.8
MIN_EXAMPLES = 5

# A feature can only be present in text where a line starts with markup, or that holds bold markers
# or an emoji: these cheap tests spare the markdown parser (~40 µs an answer) for the many answers
# with no markup at all, such as support answers with only "→" and "(…)". The line test is a search
# for a literal newline (the regex engine's fast scan, 0.2 µs an answer against 17 µs for `^…`
# with re.MULTILINE); the emoji search runs only on non-ASCII text (5-8 µs).
# benchmarks/checks_scale.py --candidates 20000 (prose answers, none parsed): 5.0 s before the
# parser, 5.2 s after (4.8 s for the old code in the next run); alternating runs on a loaded machine
# 20.0 and 19.8 s before, 17.7 and 16.7 s after. Code-heavy answers are each parsed once: flag
# checks over 20,000 conversations of tests/domains/sql took 1.2 s before and 3.7 s after.
_LINE_MARKUP = r"[ \t]*(?:[-#*+•=`~]|\d+\))"
_FIRST_LINE_MARKUP = re.compile(_LINE_MARKUP)
_LATER_LINE_MARKUP = re.compile("\n" + _LINE_MARKUP)


def _may_hold_markup(text: str) -> bool:
    return bool(
        _FIRST_LINE_MARKUP.match(text)
        or _LATER_LINE_MARKUP.search(text)
        or "**" in text
        or "__" in text
        or (not text.isascii() and _EMOJI.search(text))
    )


def answer_features(text: str) -> frozenset[str]:
    """The formatting features of an answer's prose: markup inside code (fenced, indented, inline) does not count."""
    if not _may_hold_markup(text):
        return frozenset()
    parsed = read_markdown(text)
    present = {
        "markdown headings": parsed.headings,
        "bold markup": parsed.bold,
        "bullet lists": parsed.bullet_lists,
        "'1)' numbering": parsed.paren_numbering,
        "code fences": bool(parsed.fences),
        "emoji": not parsed.prose.isascii() and bool(_EMOJI.search(parsed.prose)),
    }
    return frozenset(name for name, found in present.items() if found)


def fence_languages(messages: Sequence[Message]) -> frozenset[str]:
    """The languages of the assistant's fenced code blocks ("" for a block without one)."""
    return frozenset(
        fence.language for m in messages if m.role == "assistant" and _may_fence(m.content) for fence in read_markdown(m.content).fences
    )


def unclosed_fence(text: str) -> bool:
    """Whether a fenced code block is left open (a cut-off answer, or a broken one)."""
    return _may_fence(text) and any(not fence.closed for fence in read_markdown(text).fences)


def _may_fence(text: str) -> bool:
    return "```" in text or "~~~" in text


def language_name(language: str) -> str:
    return repr(language) if language else "none"


def has_trailing_whitespace(text: str) -> bool:
    # Substring tests, not a MULTILINE `[ \t]+$` search: the same answer at C speed (the regex was a
    # fifth of `seeds check` on 100,000 seeds). The last character is whitespace exactly when
    # `text != text.rstrip()`, without copying the text.
    return " \n" in text or "\t\n" in text or text[-1:].isspace()


def system_prompt(messages: Sequence[Message]) -> str | None:
    return messages[0].content if messages and messages[0].role == "system" else None


def answer_chars(messages: Sequence[Message]) -> int:
    """Characters the assistant wrote: the answer length seed lints and length flags measure."""
    return sum(len(m.content) for m in messages if m.role == "assistant")


def conversation_features(messages: Sequence[Message]) -> frozenset[str]:
    """Formatting features used by any assistant answer of the conversation."""
    return frozenset().union(*(answer_features(m.content) for m in messages if m.role == "assistant"))


@dataclass(frozen=True)
class StyleProfile:
    """What most examples of a set do: the usual system prompt, formatting the answers avoid, the code languages they fence.

    Only *unusual* formatting counts as drift: an answer lacking a list is normal (short answers
    need none), an answer with headings in a set that never uses them is not. A code block's
    language is drift when no example of the set uses it (`py` where they write `python`, none where
    they write `sql`); a language only some examples use is not (an SQL tutor may show a `bash` line).
    """

    system_prompt: str | None
    system_prompt_share: float
    unusual_features: frozenset[str]
    size: int
    languages: frozenset[str] = frozenset()  # every code-block language the examples use

    @classmethod
    def from_conversations(
        cls,
        conversations: Sequence[Sequence[Message]],
        features: Sequence[frozenset[str]] | None = None,
        languages: Sequence[frozenset[str]] | None = None,
    ) -> StyleProfile:
        """`features`, `languages`: each conversation's `conversation_features` and `fence_languages`, when the caller
        has them already (drift needs them too)."""
        size = len(conversations)
        prompts = Counter(system_prompt(messages) for messages in conversations)
        prompt, prompt_count = prompts.most_common(1)[0] if prompts else (None, 0)
        feature_counts: Counter[str] = Counter()
        used: set[str] = set()
        for position, messages in enumerate(conversations):
            feature_counts.update(conversation_features(messages) if features is None else features[position])
            used.update(fence_languages(messages) if languages is None else languages[position])
        unusual = frozenset(f for f in FEATURES if size and feature_counts[f] / size <= 1 - MAJORITY)
        return cls(prompt, prompt_count / size if size else 0.0, unusual, size, frozenset(used))

    def drift(
        self, messages: Sequence[Message], features: frozenset[str] | None = None, languages: frozenset[str] | None = None
    ) -> list[str]:
        """Ways this conversation departs from the profile's house style (empty: consistent); `features`, `languages` as above."""
        if self.size < MIN_EXAMPLES:
            return []
        found: list[str] = []
        if self.system_prompt_share >= MAJORITY and system_prompt(messages) != self.system_prompt:
            found.append(
                "no system prompt, unlike the others" if system_prompt(messages) is None else "system prompt differs from the usual one"
            )
        for feature in sorted((conversation_features(messages) if features is None else features) & self.unusual_features):
            found.append(f"answer uses {feature}, which the others do not")
        if self.languages:
            for language in sorted((fence_languages(messages) if languages is None else languages) - self.languages):
                usual = ", ".join(language_name(known) for known in sorted(self.languages))
                found.append(f"code block language {language_name(language)}; the seeds use {usual}")
        return found
