"""From a raw response body to Examples: OpenAI or Anthropic wire format, structured or plain JSON.

Everything that is not a usable answer is classified, never queued: a refusal, invalid JSON or a
schema mismatch. A truncated answer (finish_reason=length / stop_reason=max_tokens) keeps the
examples it completed before the cut: they are salvaged; the cut one is never used.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from pydantic import ValidationError
from pydantic_core import from_json

from generator.examples import TAG_PATTERN, Conversation, describe_validation_error

AnswerStatus = Literal["ok", "invalid", "truncated", "refused"]

_MESSAGE = {
    "type": "object",
    "properties": {"role": {"type": "string", "enum": ["system", "user", "assistant"]}, "content": {"type": "string"}},
    "required": ["role", "content"],
    "additionalProperties": False,
}
# The answer's JSON schema, in the subset OpenAI's strict mode accepts (every key required, no extras).
ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "examples": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"messages": {"type": "array", "items": _MESSAGE}, "tags": {"type": "array", "items": {"type": "string"}}},
                "required": ["messages", "tags"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["examples"],
    "additionalProperties": False,
}

_FENCE = re.compile(r"```(?:json)?\s*\n(.*?)\n?```", re.DOTALL)


@dataclass(frozen=True)
class ParsedAnswer:
    status: AnswerStatus
    examples: list[Conversation] = field(default_factory=list)
    error: str | None = None  # why the answer (or some of its examples) could not be used
    # A truncated answer: examples holds those completed before the cut (salvaged); this many of the
    # asked ones are missing (the cut one, and those never begun) and are asked again.
    missing: int = 0
    # A complete answer: examples asked that the model did not write, and written ones that were unusable.
    short: int = 0
    unusable: int = 0
    finish_reason: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0


class _Usage(TypedDict):
    """What every parsed answer reports, usable or not."""

    finish_reason: str | None
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class _Reply:
    payload: Any  # structured output (a tool's input), or None
    text: str | None
    finish_reason: str | None
    truncated: bool
    refusal: str | None
    input_tokens: int
    output_tokens: int


def parse_answer(body: str, *, asked: int) -> ParsedAnswer:
    """Classify one response body and extract at most `asked` valid examples from it."""
    try:
        reply = _read_body(json.loads(body))
    except (json.JSONDecodeError, TypeError, KeyError, IndexError, AttributeError) as exc:
        return ParsedAnswer("invalid", error=f"unreadable response body ({type(exc).__name__}: {exc})")
    usage: _Usage = {"finish_reason": reply.finish_reason, "input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens}
    if reply.refusal is not None:
        return ParsedAnswer("refused", error=f"the model refused: {reply.refusal}", **usage)
    if reply.truncated:
        return _salvage(reply, asked=asked, usage=usage)
    payload = reply.payload
    if payload is None:
        try:
            payload = json_from_text(reply.text or "")
        except ValueError as exc:
            return ParsedAnswer("invalid", error=f"invalid JSON: {exc}", **usage)
    items = payload.get("examples") if isinstance(payload, dict) else payload
    if not isinstance(items, list):
        return ParsedAnswer("invalid", error='schema mismatch: expected {"examples": [...]}', **usage)
    examples, problems = _examples(items[:asked])
    error = f"{len(problems)} of {min(len(items), asked)} examples unusable: " + "; ".join(problems) if problems else None
    if not examples:
        return ParsedAnswer("invalid", error=error or "schema mismatch: no examples", **usage)
    return ParsedAnswer("ok", examples=examples, error=error, short=max(0, asked - len(items)), unusable=len(problems), **usage)


def _examples(items: list[Any]) -> tuple[list[Conversation], list[str]]:
    examples, problems = [], []
    for position, item in enumerate(items, start=1):
        try:
            examples.append(_example(item))
        except (ValidationError, TypeError, AttributeError) as exc:
            detail = describe_validation_error(exc) if isinstance(exc, ValidationError) else "not an object with messages and tags"
            problems.append(f"example {position}: {detail}")
    return examples, problems


def _salvage(reply: _Reply, *, asked: int, usage: _Usage) -> ParsedAnswer:
    """A cut answer: the examples it completed before the cut, valid ones kept; the rest count as missing."""
    items = complete_items(reply.payload, reply.text or "")
    examples, problems = _examples(items[:asked])
    missing = asked - len(examples)
    error = f"the answer was cut off at max_tokens after {len(items)} complete example(s) of {asked}; {missing} asked again"
    if problems:
        error += f" ({len(problems)} complete but unusable: " + "; ".join(problems) + ")"
    return ParsedAnswer("truncated", examples=examples, error=error, missing=missing, **usage)


def complete_items(payload: Any, text: str) -> list[Any]:
    """The examples a cut answer completed: from its structured payload, or its text parsed as far as it goes.

    pydantic-core's JSON parser (jiter) reads a cut document in partial mode and returns every array
    item it began, the cut one included, with no hand-written tokenizer; it cannot say whether the
    last item was closed, so the last item counts only if the document, closed right after it, parses.
    """
    if payload is not None:
        # Structured output: the provider delivers the tool input parsed so far; its last example is
        # where generation stopped, so it is the cut one even when it looks whole.
        items = payload.get("examples") if isinstance(payload, dict) else payload
        return list(items[:-1]) if isinstance(items, list) else []
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if not starts:
        return []
    document = text[min(starts) :].rstrip().removesuffix("```").rstrip().removesuffix(",")
    try:
        value = from_json(document, allow_partial="trailing-strings")
    except ValueError:
        return []
    items = value.get("examples") if isinstance(value, dict) else value
    if not isinstance(items, list) or not items:
        return []
    closers = ("]}", "}") if isinstance(value, dict) else ("]",)
    for closer in closers:
        try:
            closed = from_json(document + closer)
        except ValueError:
            continue
        closed_items = closed.get("examples") if isinstance(closed, dict) else closed
        if isinstance(closed_items, list) and len(closed_items) == len(items):
            return items
    return items[:-1]


def json_from_text(text: str) -> Any:
    """JSON from a model's text: bare, in a ``` fence, or the outermost {...} amid prose."""
    candidates = [text.strip(), *(m.group(1) for m in _FENCE.finditer(text))]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    error = "no JSON found"
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except json.JSONDecodeError as exc:
            error = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    raise ValueError(error)


def _example(item: Any) -> Conversation:
    # Keep only the conversation and its tags (models like to add titles or ids), forgive tag
    # spelling ("Bank Sync" -> "bank-sync") and drop tags that are no tag at all. A conversation
    # that is well-formed but not trainable (an empty answer) is kept: the checks filter it with
    # its reason, where reviewers and `stats` can see it.
    spelled = (str(t).strip().lower().replace(" ", "-") for t in item.get("tags") or [])
    tags = list(dict.fromkeys(t for t in spelled if TAG_PATTERN.match(t)))
    return Conversation.model_validate({"messages": item.get("messages"), "tags": tags})


def _read_body(data: dict[str, Any]) -> _Reply:
    if "choices" in data:  # OpenAI chat completion
        choice = data["choices"][0]
        message = choice.get("message") or {}
        usage = data.get("usage") or {}
        finish = choice.get("finish_reason")
        refusal = message.get("refusal") or ("content filter" if finish == "content_filter" else None)
        return _Reply(
            None,
            message.get("content"),
            finish,
            finish == "length",
            refusal,
            usage.get("prompt_tokens") or 0,
            usage.get("completion_tokens") or 0,
        )
    if data.get("type") == "message":  # Anthropic message
        blocks = data.get("content") or []
        tool_inputs = [b.get("input") for b in blocks if b.get("type") == "tool_use"]
        text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
        stop = data.get("stop_reason")
        usage = data.get("usage") or {}
        return _Reply(
            tool_inputs[0] if tool_inputs else None,
            text,
            stop,
            stop == "max_tokens",
            (text or "refused") if stop == "refusal" else None,
            usage.get("input_tokens") or 0,
            usage.get("output_tokens") or 0,
        )
    raise KeyError("neither an OpenAI chat completion nor an Anthropic message")
