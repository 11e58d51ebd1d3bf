"""The house style of a set of examples (system prompt, answer formatting), and drift from it."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from generator.examples import Message

# Each feature is a yes/no property of an assistant answer. A set is consistent when (nearly)
# every answer agrees on each feature; an answer on the minority side has drifted.
_FEATURES: dict[str, re.Pattern[str]] = {
    "markdown headings": re.compile(r"^\s{0,3}#{1,6}\s", re.MULTILINE),
    "bold markup": re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__"),
    "bullet lists": re.compile(r"^\s*[-*•]\s+\S", re.MULTILINE),
    "'1)' numbering": re.compile(r"^\s*\d+\)\s+\S", re.MULTILINE),
    "code fences": re.compile(r"```"),
    "emoji": re.compile("[\U0001f300-\U0001faff\u2600-\u27bf]"),
}
_TRAILING_SPACE = re.compile(r"[ \t]+$", re.MULTILINE)

# Below this share, a feature's minority is called drift (and only with enough examples to judge).
MAJORITY = 0.8
MIN_EXAMPLES = 5


# A feature's pattern can only match text holding one of these strings: a substring test (C speed)
# spares the regex for most answers. Emoji need a non-ASCII character.
_NEEDS: dict[str, tuple[str, ...]] = {
    "markdown headings": ("#",),
    "bold markup": ("**", "__"),
    "bullet lists": ("-", "*", "•"),
    "'1)' numbering": (")",),
    "code fences": ("```",),
}


def answer_features(text: str) -> frozenset[str]:
    return frozenset(
        name
        for name, pattern in _FEATURES.items()
        if (any(map(text.__contains__, _NEEDS[name])) if name in _NEEDS else not text.isascii()) and pattern.search(text)
    )


def has_trailing_whitespace(text: str) -> bool:
    return bool(_TRAILING_SPACE.search(text)) or text != text.rstrip()


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
    """What most examples of a set do: the usual system prompt, and formatting the answers avoid.

    Only *unusual* formatting counts as drift: an answer lacking a list is normal (short answers
    need none), an answer with headings in a set that never uses them is not.
    """

    system_prompt: str | None
    system_prompt_share: float
    unusual_features: frozenset[str]
    size: int

    @classmethod
    def from_conversations(cls, conversations: Sequence[Sequence[Message]]) -> StyleProfile:
        size = len(conversations)
        prompts = Counter(system_prompt(messages) for messages in conversations)
        prompt, prompt_count = prompts.most_common(1)[0] if prompts else (None, 0)
        feature_counts: Counter[str] = Counter()
        for messages in conversations:
            feature_counts.update(conversation_features(messages))
        unusual = frozenset(f for f in _FEATURES if size and feature_counts[f] / size <= 1 - MAJORITY)
        return cls(prompt, prompt_count / size if size else 0.0, unusual, size)

    def drift(self, messages: Sequence[Message]) -> list[str]:
        """Ways this conversation departs from the profile's house style (empty: consistent)."""
        if self.size < MIN_EXAMPLES:
            return []
        found: list[str] = []
        if self.system_prompt_share >= MAJORITY and system_prompt(messages) != self.system_prompt:
            found.append(
                "no system prompt, unlike the others" if system_prompt(messages) is None else "system prompt differs from the usual one"
            )
        for feature in sorted(conversation_features(messages) & self.unusual_features):
            found.append(f"answer uses {feature}, which the others do not")
        return found
