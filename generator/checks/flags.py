"""Flags: reasons for a reviewer to look closely (refusals, truncation, placeholders, length, format drift, PII).

A flag never filters: the candidate stays pending and the reviewer sees why it deserves a second
look. The verified seeds set what is normal: a placeholder or PII match that also occurs in the
seeds (a support address) is part of the house style, not a reason to look, and a decline like the
seeds' own declines (by similarity, not by a shared phrase) is not a refusal. Text inside code is
code: a template's `{{ name }}`, `row[name]` or a commit hash there is no placeholder or key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from generator.examples import Message
from generator.markdown_text import could_hold_code, read_markdown
from generator.similarity import jaccard, shingles
from generator.store.models import Flag
from generator.style import StyleProfile, answer_chars, unclosed_fence

FLAG_KINDS: tuple[str, ...] = ("refusal", "truncation", "placeholder", "length", "format drift", "pii")

# An assistant speaking of itself as an AI, or of its training: boilerplate in any domain, always a reason to look.
_AI_BOILERPLATE = re.compile(
    r"\bas an? (?:ai|artificial intelligence|(?:large )?language model|ai (?:language )?model|ai assistant|llm)\b"
    r"|\bi(?:'m| am) (?:just |only )?an? (?:ai|(?:large )?language model|ai assistant|ai model)\b"
    r"|\b(?:my (?:knowledge|training) (?:cutoff|cut-off|data)|as of my last (?:knowledge )?update)\b",
    re.IGNORECASE,
)
# A stock decline ("I'm unable to assist with that request"): a reason to look unless the seeds
# model such declines (their out-of-scope examples) and this answer is like one of them.
_DECLINE = re.compile(
    r"\bi(?:'m| am) (?:sorry|afraid),? (?:but )?i (?:can(?:no|')t|am unable to|am not able to|won't)\b"
    r"|\bi(?:'m| am)? (?:can(?:no|')t|unable to|not able to|won't|must decline to) (?:help|assist|comply|fulfil+|provide that|do that)\b",
    re.IGNORECASE,
)
# How the seeds' own declines are found: wider wording than _DECLINE, since a domain expert's
# decline ("that's outside what support covers", "Ledgerly doesn't give tax advice") rarely sounds
# like a stock one. Only used to pick the seeds a candidate's decline is compared with.
_SEED_DECLINE = re.compile(
    r"\b(?:can(?:no|')?t|can not|unable to|not able to|won't|(?:do|does)(?:n't| not)) (?:help|assist|advise|give|offer|provide|cover|answer)\b"
    r"|\b(?:outside|beyond) (?:of )?(?:what|the scope|my|our|\w+ support)\b"
    r"|\bmust decline\b",
    re.IGNORECASE,
)
# A candidate's decline is one the seeds model when its words, decline phrases left out, are at
# least this close (Jaccard) to a seed decline's. Leaving the phrases out matters: a short seed
# decline ("I can't help with X, ask Y") otherwise makes every stock "I can't help with that" look
# like it (0.32). Measured on the demo seeds' out-of-scope answers and a SQL tutor's: stock declines
# ("I'm sorry, but I can't assist with that request", with or without a line about the product)
# reach 0.04-0.16; declines reworded in the seeds' manner (decline, who to ask instead, what the
# assistant can do) 0.26-0.44. A decline on a topic no seed declines stays flagged (0.13): a flag
# only asks a reviewer to look. Word pairs separate less (0.03-0.06 against 0.08-0.21).
DECLINE_SIMILARITY = 0.2
_PLACEHOLDER = re.compile(
    r"\[(?:insert|your|add|enter|placeholder|name|company|customer|date|link|url|todo|tbd|x{2,})\b[^\]\n]{0,60}\]"
    r"|<(?:insert|your|placeholder)\b[^>\n]{0,60}>"
    r"|\{\{[^{}\n]{0,60}\}\}"  # an unrendered template variable
    r"|\blorem ipsum\b"
    r"|\b(?:TODO|TBD|FIXME)\b"  # upper case only: "what to do" is not a placeholder
    r"|\b(?:XXX+|xxxx+)\b",
    re.IGNORECASE,
)
# IGNORECASE above would make "todo" match; these words must be written in capitals to count.
_SHOUTED_ONLY = {"todo", "tbd", "fixme"}
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}\b", re.IGNORECASE)
_PHONE = re.compile(r"(?<![\w$€£.,/-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])\d{3,4}[ .-]\d{3,4}(?![\w/-])")
_KEY = re.compile(
    r"\b(?:sk|pk|rk)[-_](?:live|test|proj|ant)[-_][\w-]{8,}"
    r"|\bsk-[\w-]{20,}"
    r"|\bAKIA[0-9A-Z]{16}\b"
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}\b"
    r"|\bxox[abprs]-[\w-]{10,}"
    r"|\beyJ[\w-]{10,}\.[\w-]{10,}\."  # a JSON web token
    r"|(?P<generic>\b(?=\w*\d)(?=\w*[A-Za-z])\w{32,}\b)"  # long random-looking tokens (hex, base62)
)
_CARD = re.compile(r"\b\d(?:[ -]?\d){12,18}\b")
# A finished answer ends with a sentence mark, a closing bracket or quote, or a symbol (emoji);
# a letter, digit, comma or joining mark at the very end means it was cut off.
_UNFINISHED = re.compile(r"[\w,;:\-–—(/&+=]")


def _straight_quotes(text: str) -> str:
    # Same length as the input, so matches can be shown as the model wrote them.
    return text.replace("’", "'").replace("‘", "'")


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


# Cheap tests first: a pattern runs only over text holding one of its trigger strings (lower case).
# Most answers hold none, and a regex pass costs ~10x a substring search.
_REFUSAL_TRIGGERS = ("as a", "i'm", "i’m", "i am", "i can", "i won", "i must", "my knowledge", "my training", "my last")
_PLACEHOLDER_TRIGGERS = ("[", "<", "{{", "lorem", "todo", "tbd", "fixme", "xxx")
_KEY_TRIGGERS = ("sk-", "sk_", "pk_", "rk_", "akia", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "xox", "eyj")
# Byte tables for C-speed scans of the UTF-8 text: every digit becomes "0" (to count digits), and
# every ASCII letter, digit or "_" becomes "a", anything else " " (to spot a 32-character token).
_DIGIT_SHAPE = bytes.maketrans(b"0123456789", b"0000000000")
_WORD_SHAPE = bytes(ord("a") if chr(i).isascii() and (chr(i).isalnum() or chr(i) == "_") else ord(" ") for i in range(256))
_LONG_TOKEN = b"a" * 32


def _has_any(lower: str, triggers: tuple[str, ...]) -> bool:
    return any(map(lower.__contains__, triggers))


def _placeholders(text: str, *, in_code: bool = False) -> Iterator[str]:
    if not _has_any(text.casefold(), _PLACEHOLDER_TRIGGERS):
        return
    for match in _PLACEHOLDER.finditer(text):
        found = match.group(0)
        if found.casefold() in _SHOUTED_ONLY and not found.isupper():
            continue
        # In code, brackets and braces are syntax: `row[name]`, a Jinja or Go template's `{{ .Name }}`.
        if in_code and found.startswith(("[", "{{")):
            continue
        yield found


def _personal_data(text: str, *, in_code: bool = False) -> Iterator[str]:
    if "@" in text:
        for match in _EMAIL.finditer(text):
            yield f"email address {match.group(0)}"
    encoded = text.encode()
    if encoded.translate(_DIGIT_SHAPE).count(b"0") >= 9:  # fewer digits make neither a phone nor a card number
        # In code, digits are mostly numbers (ids, timestamps, sizes): only a grouped card number counts there.
        for match in () if in_code else _PHONE.finditer(text):
            if sum(c.isdigit() for c in match.group(0)) >= 9:
                yield f"phone number {match.group(0)}"
        for match in _CARD.finditer(text):
            digits = re.sub(r"\D", "", match.group(0))
            if _luhn_valid(digits) and not (in_code and digits == match.group(0)):
                yield f"card-like number ending {digits[-4:]}"
    if _has_any(text.casefold(), _KEY_TRIGGERS) or _LONG_TOKEN in encoded.translate(_WORD_SHAPE):
        for match in _KEY.finditer(text):
            token = match.group(0)
            if in_code and match.group("generic"):
                continue  # a commit hash, a digest or a long identifier: only a known key format counts in code
            # Never repeat a secret in full: the flag is shown in the UI and counted in stats.
            yield f"key-like token {token[:4]}… ({len(token)} characters)"


_SHOWN_EMAIL = re.compile(r"^email address (\S)\S*@(\S+)$")
_SHOWN_PHONE = re.compile(r"^phone number .*?(\d)\D*(\d)\D*$")


def _masked(detail: str) -> str:
    """A personal-data finding as a flag shows it: enough to find it in the text, never the whole of it.

    Flags are stored, counted in stats and shown on every screen; the candidate's own text stays whole
    for the reviewer. (The full match is compared with the seeds' before masking: two addresses that
    mask alike are still told apart.)
    """
    email = _SHOWN_EMAIL.match(detail)
    if email:
        return f"email address {email.group(1)}…@{email.group(2)}"
    phone = _SHOWN_PHONE.match(detail)
    if phone:
        return f"phone number ending {phone.group(1)}{phone.group(2)}"
    return detail  # card and key findings are masked where they are found


@dataclass(frozen=True)
class FlagRules:
    """The flag checks, calibrated on the verified seeds (their length range, style and known strings)."""

    style: StyleProfile
    shortest: int | None
    longest: int | None
    length_factor: float
    seen_in_seeds: frozenset[str]
    seed_declines: tuple[set[bytes], ...] = ()  # the word sets of the seeds' declining answers

    @classmethod
    def from_seeds(cls, seeds: Sequence[Sequence[Message]], *, length_factor: float) -> FlagRules:
        lengths = [answer_chars(messages) for messages in seeds]
        seen = {
            found.casefold()
            for messages in seeds
            for message in messages
            for finder in _TEXT_FINDERS.values()
            for found in finder(message.content)
        }
        return cls(
            style=StyleProfile.from_conversations(seeds),
            shortest=min(lengths, default=None),
            longest=max(lengths, default=None),
            length_factor=length_factor,
            seen_in_seeds=frozenset(seen),
            seed_declines=tuple(
                _words_besides_declining(message.content)
                for messages in seeds
                for message in messages
                if message.role == "assistant" and _SEED_DECLINE.search(_straight_quotes(message.content))
            ),
        )

    def flags(self, messages: Sequence[Message]) -> list[Flag]:
        """Every reason to look closely at this conversation, at most one flag per kind, in FLAG_KINDS order."""
        found: dict[str, list[str]] = {}
        refusals = self._refusals(messages)
        if refusals:
            found["refusal"] = refusals
        # One pass over the whole conversation (blank lines between turns: no pattern matches across
        # two); only when it finds something is each turn read as its own markdown text.
        everything = "\n\n".join(m.content for m in messages)
        for kind, finder in _TEXT_FINDERS.items():
            if not any(found.casefold() not in self.seen_in_seeds for found in finder(everything)):
                continue
            details = [found for m in messages for found in _find(finder, m.content) if found.casefold() not in self.seen_in_seeds]
            if details:
                found[kind] = [_masked(detail) for detail in details] if kind == "pii" else details
        truncation = _truncation(messages)
        if truncation:
            found["truncation"] = [truncation]
        length = self._length(messages)
        if length:
            found["length"] = [length]
        drift = self.style.drift(messages)
        if drift:
            found["format drift"] = drift
        return [Flag(kind=kind, detail="; ".join(dict.fromkeys(found[kind]))) for kind in FLAG_KINDS if kind in found]

    def _refusals(self, messages: Sequence[Message]) -> list[str]:
        """AI boilerplate in any answer, and stock declines in answers unlike every decline the seeds model."""
        found: list[str] = []
        for message in messages:
            if message.role != "assistant" or not _has_any(message.content.casefold(), _REFUSAL_TRIGGERS):
                continue
            text = _straight_quotes(message.content)
            found += [m.group(0) for m in _AI_BOILERPLATE.finditer(text)]
            declines = [m.group(0) for m in _DECLINE.finditer(text)]
            if declines and not self._like_a_seed_decline(message.content):
                found += declines
        return found

    def _like_a_seed_decline(self, answer: str) -> bool:
        answer_words = _words_besides_declining(answer)
        return any(jaccard(answer_words, decline) >= DECLINE_SIMILARITY for decline in self.seed_declines)

    def _length(self, messages: Sequence[Message]) -> str | None:
        if self.shortest is None or self.longest is None:
            return None
        length = answer_chars(messages)
        if length > self.longest * self.length_factor:
            return f"answer is {length} characters; the seeds' longest is {self.longest}"
        if length < self.shortest / self.length_factor:
            return f"answer is {length} characters; the seeds' shortest is {self.shortest}"
        return None


def _words_besides_declining(text: str) -> set[bytes]:
    """The words of an answer without its decline phrases: what it is about, whom it sends where."""
    text = _straight_quotes(text)
    for pattern in (_AI_BOILERPLATE, _DECLINE, _SEED_DECLINE):
        text = pattern.sub(" ", text)
    return shingles(text, size=1)


def _find(finder: Callable[..., Iterator[str]], text: str) -> list[str]:
    """A finder's matches in the prose, and its code-aware matches in the code (parsed only when needed)."""
    found = list(finder(text))
    if not found or not could_hold_code(text):
        return found
    parsed = read_markdown(text)
    return [*finder(parsed.prose), *finder(parsed.code, in_code=True)]


def _truncation(messages: Sequence[Message]) -> str | None:
    """Why the final answer looks cut off (None: it ends like a finished answer)."""
    if not messages or messages[-1].role != "assistant":
        return None
    text = messages[-1].content.rstrip()
    if not text:
        return None
    if unclosed_fence(text):
        return "a code block is never closed"
    trails_off = text.endswith(("...", "…"))
    if not trails_off and not _UNFINISHED.match(text[-1]):
        return None
    if could_hold_code(text) and read_markdown(text).ends_in_code:
        return None  # the last character is code (an indented or ~~~ block), not the end of a sentence
    if trails_off:
        return "the answer trails off with an ellipsis"
    return "the answer stops mid-sentence: …" + " ".join(text[-40:].split())


# The kinds found by searching message text (matches seen in the seeds do not count).
_TEXT_FINDERS: dict[str, Callable[[str], Iterator[str]]] = {
    "placeholder": _placeholders,
    "pii": _personal_data,
}
