"""The canonical training example (chat messages + tags) and its conversions from common formats."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Role = Literal["system", "user", "assistant"]

# ShareGPT speaker names, in both directions. "human"/"gpt" are the common spelling; some
# datasets write the OpenAI role names instead, which we accept on input.
SHAREGPT_TO_ROLE = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}
ROLE_TO_SHAREGPT = {"system": "system", "user": "human", "assistant": "gpt"}

TAG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.:/-]*$")


class Message(BaseModel):
    """One chat turn."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    content: str


def structural_problems(messages: list[Message]) -> list[str]:
    """Every reason these messages are not a trainable conversation (empty list: fine).

    The rule is the one chat fine-tuning expects: an optional system message first, then user
    and assistant turns alternating, starting with the user and ending with the assistant.
    """
    problems: list[str] = []
    if not messages:
        return ["no messages"]
    for index, message in enumerate(messages):
        if not message.content.strip():
            problems.append(f"message {index + 1} ({message.role}) has empty content")
    if not any(m.role == "assistant" for m in messages):
        problems.append("no assistant turn")
    turns = messages[1:] if messages[0].role == "system" else messages
    if any(m.role == "system" for m in turns):
        problems.append("a system message may only come first")
    else:
        expected = "user"
        for message in turns:
            if message.role != expected:
                problems.append(
                    f"broken role order: expected {expected} but found {message.role} "
                    f"(turns must alternate user, assistant, ... starting with user)"
                )
                break
            expected = "assistant" if expected == "user" else "user"
        else:
            if turns and turns[-1].role != "assistant":
                problems.append("the last turn must be the assistant's")
    return problems


class Conversation(BaseModel):
    """Well-formed chat turns with tags, as a model produced them: not yet known to be trainable.

    Generation stores conversations like this, so that a structural defect (an empty answer, a
    broken role order) reaches the checks and is filtered with its reason, not silently dropped.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    messages: list[Message] = Field(min_length=1)
    tags: list[str] = Field(default_factory=list)

    @field_validator("tags")
    @classmethod
    def _tags_are_slugs(cls, tags: list[str]) -> list[str]:
        for tag in tags:
            if not TAG_PATTERN.match(tag):
                raise ValueError(f"tag {tag!r} must be lower-case letters, digits and - _ . : / (e.g. 'my-topic', 'edge:ambiguous')")
        if len(set(tags)) != len(tags):
            raise ValueError("tags repeat")
        return tags

    def content_hash(self) -> str:
        return messages_hash(self.messages)

    def messages_as_dicts(self) -> list[dict[str, str]]:
        return [{"role": m.role, "content": m.content} for m in self.messages]


class Example(Conversation):
    """A training example: a trainable conversation, optional tags (a category, `edge:*`), optional id."""

    id: str | None = None

    @field_validator("id")
    @classmethod
    def _id_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("id must not be blank")
        return value

    @model_validator(mode="after")
    def _trainable(self) -> Example:
        problems = structural_problems(self.messages)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def category(self) -> str | None:
        return category_of(self.tags)


def category_of(tags: list[str]) -> str | None:
    """The category of a tag list: its first tag that is not an edge-case marker."""
    return next((t for t in tags if not t.startswith("edge:")), None)


def messages_hash(messages: list[Message] | list[dict[str, Any]]) -> str:
    """sha256 of the conversation's canonical JSON: identical content, identical hash."""
    # A Message has exactly these two fields: the same dict model_dump() gives, without its cost.
    # `type(m) is dict` first, and a loop, not all() over a generator: isinstance against a
    # pydantic class is slow; 2.3 -> 1.7 us a 3-message conversation (verify hashes one a line).
    plain = [
        {"role": m["role"], "content": m["content"]}
        if type(m) is dict or not isinstance(m, Message)
        else {"role": m.role, "content": m.content}
        for m in messages
    ]
    for m in plain:
        if type(m["role"]) is not str or type(m["content"]) is not str:
            return canonical_hash(plain)
    try:
        return hashlib.sha256(orjson.dumps(plain, option=orjson.OPT_SORT_KEYS)).hexdigest()
    except orjson.JSONEncodeError:
        return canonical_hash(plain)  # a lone surrogate: canonical_json says what it always said about it


def canonical_hash(value: Any) -> str:
    """sha256 of a value's canonical JSON: every content hash in synthgate is one of these."""
    return hashlib.sha256(canonical_bytes(value)).hexdigest()


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: the form every hash in synthgate is taken over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_bytes(value: Any) -> bytes:
    """canonical_json(value) in UTF-8, byte for byte -- through orjson wherever orjson writes the same bytes.

    json.dumps costs ~15 us for a 3-message conversation (a new encoder per call), orjson ~0.4 us:
    verify hashes two of these per exported line, seeds check one per seed. orjson writes the same
    bytes for str (every code point tested), int, bool, None, lists and str-keyed dicts, and for
    floats in fixed notation (Python's repr switches to 1e+16 / 1e-05 outside [1e-4, 1e16), orjson
    elsewhere); anything else, or anything orjson refuses (a lone surrogate, an int past 64 bits,
    deep nesting), goes through json as before, so every existing hash stays what it was.
    """
    if _orjson_writes_the_same(value, 0):
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            pass
    return canonical_json(value).encode()


# Exact types: a subclass (an IntEnum, a str Enum) may be written differently.
_SAME_LEAVES = frozenset({str, int, bool, type(None)})


def _orjson_writes_the_same(value: Any, depth: int) -> bool:
    # Leaves are tested inline, not by a call each: the walk must cost less than the json.dumps it saves.
    kind = type(value)
    if kind in _SAME_LEAVES:
        return True
    if kind is float:
        return bool(value == 0 or 1e-4 <= abs(value) < 1e16)  # NaN and infinities fail both tests
    if depth > 64:
        return False
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or (type(item) not in _SAME_LEAVES and not _orjson_writes_the_same(item, depth + 1)):
                return False
        return True
    if kind is list or kind is tuple:
        return all(type(item) in _SAME_LEAVES or _orjson_writes_the_same(item, depth + 1) for item in value)
    return False


# Keys a seed line may carry besides the conversation itself.
META_KEYS = {"id", "tags", "verified_by"}


class FormatError(ValueError):
    """A record is in none of the supported formats, or is malformed within one."""


def detect_format(record: dict[str, Any]) -> str:
    if "messages" in record:
        return "openai"
    if "conversations" in record:
        return "sharegpt"
    if "instruction" in record or "output" in record:
        return "alpaca"
    raise FormatError(
        "no conversation found: expected 'messages' (OpenAI chat), 'conversations' (ShareGPT) or 'instruction'/'output' (Alpaca)"
    )


FORMAT_KEYS = {
    "openai": {"messages"},
    "sharegpt": {"conversations", "system"},
    "alpaca": {"instruction", "input", "output", "system"},
}


def example_from_record(record: Any) -> tuple[Example, list[str]]:
    """Convert one decoded JSON record in any supported format to an Example.

    Returns the example and the keys that were ignored (so callers can warn). Raises
    FormatError with a message a user can act on.
    """
    if not isinstance(record, dict):
        raise FormatError(f"expected a JSON object, found {type(record).__name__}")
    fmt = detect_format(record)
    ignored = sorted(set(record) - FORMAT_KEYS[fmt] - META_KEYS)
    if fmt == "openai":
        messages = record["messages"]
    elif fmt == "sharegpt":
        messages = _messages_from_sharegpt(record)
    else:
        messages = _messages_from_alpaca(record)
    data = {"messages": messages, "tags": record.get("tags", []), "id": record.get("id")}
    try:
        return Example.model_validate(data), ignored
    except ValidationError as exc:
        raise FormatError(describe_validation_error(exc)) from None


def _messages_from_sharegpt(record: dict[str, Any]) -> list[dict[str, Any]]:
    turns = record["conversations"]
    if not isinstance(turns, list):
        raise FormatError('\'conversations\' must be a list of {"from": ..., "value": ...} objects')
    messages = _system_turn(record)
    for index, turn in enumerate(turns, start=1):
        if not isinstance(turn, dict) or "from" not in turn or "value" not in turn:
            raise FormatError(f"conversations[{index}] must be an object with 'from' and 'value'")
        speaker = turn["from"]
        if speaker not in SHAREGPT_TO_ROLE:
            raise FormatError(f"conversations[{index}].from is {speaker!r}; use one of 'system', 'human', 'gpt'")
        messages.append({"role": SHAREGPT_TO_ROLE[speaker], "content": turn["value"]})
    return messages


def _messages_from_alpaca(record: dict[str, Any]) -> list[dict[str, Any]]:
    for key in ("instruction", "output"):
        if not isinstance(record.get(key), str):
            raise FormatError(f"Alpaca records need a string '{key}'")
    extra_input = record.get("input") or ""
    if not isinstance(extra_input, str):
        raise FormatError("Alpaca 'input' must be a string")
    user = record["instruction"] if not extra_input.strip() else f"{record['instruction']}\n\n{extra_input}"
    return [*_system_turn(record), {"role": "user", "content": user}, {"role": "assistant", "content": record["output"]}]


def _system_turn(record: dict[str, Any]) -> list[dict[str, Any]]:
    """ShareGPT and Alpaca carry the system prompt in a top-level 'system' key."""
    system = record.get("system")
    return [{"role": "system", "content": system}] if isinstance(system, str) and system.strip() else []


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem, with the JSON path of the offending value."""
    parts = []
    for error in exc.errors():
        path = ".".join(str(p) for p in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{path}: {message}" if path else message)
    return "; ".join(parts)
