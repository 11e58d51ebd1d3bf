"""Training-file formats: how an accepted example becomes one JSON line, each format with its own validity rules.

Every format renders a record, then checks the record (not the example) against the rules of
the trainer that will read it, so a line a trainer would refuse is reported and left out.
Every format also reads its own lines back into messages, which is how `verify` proves a line's
content against the decision that accepted it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from generator.examples import ROLE_TO_SHAREGPT, SHAREGPT_TO_ROLE, FormatError, Message, example_from_record, structural_problems

Messages = list[dict[str, Any]]


class Unrepresentable(Exception):
    """The example is fine but this format cannot hold it (e.g. a multi-turn chat in Alpaca)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ExportFormat:
    name: str
    summary: str
    render: Callable[[Messages, Messages | None], dict[str, Any]]  # (final, model's original) -> record
    problems: Callable[[Any], list[str]]  # why a record breaks the format's rules ([] = valid)
    read_back: Callable[[Any], tuple[Messages, Messages | None]]  # record -> (final, original)
    needs_original: bool = False  # only examples with a model original that a reviewer corrected
    # Unpaired labels (KTO): every human decision is a line, rejected answers and corrected originals labelled false.
    labelled: bool = False


def _plain(messages: Messages) -> Messages:
    # Only role and content: nothing else from the store (ids, metadata) leaks into a training line.
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def _non_empty_string(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


# --- openai: chat fine-tuning ------------------------------------------------------------------

# The rules of OpenAI's fine-tuning data check (the cookbook's "format validation"): known keys,
# known roles, content present and non-empty, an assistant message in every example.
OPENAI_TOP_KEYS = {"messages", "tools", "parallel_tool_calls", "functions"}
OPENAI_MESSAGE_KEYS = {"role", "content", "name", "weight", "function_call", "tool_calls", "tool_call_id"}
OPENAI_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}


def openai_message_problems(messages: Any, where: str = "messages") -> list[str]:
    if not isinstance(messages, list) or not messages:
        return [f"'{where}' must be a non-empty list"]
    problems = []
    for index, message in enumerate(messages, start=1):
        if not isinstance(message, dict):
            problems.append(f"{where}[{index}] is not an object")
            continue
        unknown = set(message) - OPENAI_MESSAGE_KEYS
        if unknown:
            problems.append(f"{where}[{index}] has keys OpenAI does not allow: {', '.join(sorted(unknown))}")
        if message.get("role") not in OPENAI_ROLES:
            problems.append(f"{where}[{index}] has an unknown role {message.get('role')!r}")
        if not _non_empty_string(message.get("content")):
            problems.append(f"{where}[{index}] has missing or empty content")
        if "weight" in message and (message.get("role") != "assistant" or message["weight"] not in (0, 1)):
            problems.append(f"{where}[{index}] weight must be 0 or 1, on assistant messages only")
    return problems


def _openai_render(final: Messages, original: Messages | None) -> dict[str, Any]:
    return {"messages": _plain(final)}


def _openai_problems(record: Any) -> list[str]:
    # The common case, a valid record, is decided in one quick pass (it runs for every line of a
    # big export); only a record that fails it pays for the detailed description.
    return [] if _plain_openai_record_is_valid(record) else _openai_problem_details(record)


def _plain_openai_record_is_valid(record: Any) -> bool:
    if type(record) is not dict or not record.keys() <= OPENAI_TOP_KEYS:
        return False
    messages = record.get("messages")
    if type(messages) is not list or not messages:
        return False
    has_assistant = False
    for message in messages:
        # Two keys, a known role and string content: exactly role and content (no set built per message).
        if type(message) is not dict or len(message) != 2:
            return False
        role, content = message.get("role"), message.get("content")
        if role not in OPENAI_ROLES or type(content) is not str or not content.strip():
            return False
        has_assistant = has_assistant or role == "assistant"
    return has_assistant


def _openai_problem_details(record: Any) -> list[str]:
    if not isinstance(record, dict):
        return ["a line must be a JSON object"]
    problems = [f"key '{k}' is not allowed at the top level" for k in sorted(set(record) - OPENAI_TOP_KEYS)]
    problems += openai_message_problems(record.get("messages"))
    if isinstance(record.get("messages"), list) and not any(
        isinstance(m, dict) and m.get("role") == "assistant" for m in record["messages"]
    ):
        problems.append("no assistant message")
    return problems


# --- trl: conversational `messages`, as TRL's SFTTrainer and chat templates read them ------------


def _trl_problems(record: Any) -> list[str]:
    # Chat templates (Llama, Mistral, Gemma...) raise on anything but system?, then user and
    # assistant alternating: hold lines to the same rule, with exactly role and content.
    if not isinstance(record, dict) or set(record) != {"messages"} or not isinstance(record["messages"], list):
        return ['a line must be exactly {"messages": [...]}']
    problems = []
    for index, message in enumerate(record["messages"], start=1):
        if not isinstance(message, dict) or set(message) != {"role", "content"}:
            problems.append(f"messages[{index}] must have exactly 'role' and 'content'")
        elif message["role"] not in ("system", "user", "assistant") or not isinstance(message["content"], str):
            problems.append(f"messages[{index}] needs role system, user or assistant and string content")
    if problems:
        return problems
    return structural_problems([Message(**m) for m in record["messages"]])


# --- sharegpt ------------------------------------------------------------------------------------


def _sharegpt_render(final: Messages, original: Messages | None) -> dict[str, Any]:
    return {"conversations": [{"from": ROLE_TO_SHAREGPT[m["role"]], "value": m["content"]} for m in final]}


def _sharegpt_problems(record: Any) -> list[str]:
    if not isinstance(record, dict) or set(record) != {"conversations"} or not isinstance(record["conversations"], list):
        return ['a line must be exactly {"conversations": [...]}']
    turns = record["conversations"]
    problems = []
    for index, turn in enumerate(turns, start=1):
        if not isinstance(turn, dict) or set(turn) != {"from", "value"}:
            problems.append(f"conversations[{index}] must have exactly 'from' and 'value'")
        elif turn["from"] not in ROLE_TO_SHAREGPT.values():
            problems.append(f"conversations[{index}].from is {turn['from']!r}; use system, human or gpt")
        elif not _non_empty_string(turn["value"]):
            problems.append(f"conversations[{index}] has an empty value")
    if problems:
        return problems
    return structural_problems([Message.model_validate({"role": SHAREGPT_TO_ROLE[t["from"]], "content": t["value"]}) for t in turns])


# --- alpaca --------------------------------------------------------------------------------------


def _alpaca_render(final: Messages, original: Messages | None) -> dict[str, Any]:
    system = [m["content"] for m in final if m["role"] == "system"]
    turns = [m for m in final if m["role"] != "system"]
    if len(turns) != 2:
        raise Unrepresentable("multi-turn conversation (alpaca holds a single instruction and output)")
    record = {"instruction": turns[0]["content"], "input": "", "output": turns[1]["content"]}
    if system:
        record["system"] = system[0]
    return record


def _alpaca_problems(record: Any) -> list[str]:
    if not isinstance(record, dict):
        return ["a line must be a JSON object"]
    problems = [f"key '{k}' is not an alpaca field" for k in sorted(set(record) - {"instruction", "input", "output", "system"})]
    for key in ("instruction", "output"):
        if not _non_empty_string(record.get(key)):
            problems.append(f"'{key}' must be a non-empty string")
    if not isinstance(record.get("input"), str):
        problems.append("'input' must be a string")
    if "system" in record and not _non_empty_string(record["system"]):
        problems.append("'system' must be a non-empty string when present")
    return problems


# --- openai-dpo: preference pairs from reviewers' corrections -------------------------------------


def _dpo_render(final: Messages, original: Messages | None) -> dict[str, Any]:
    if original is None or _plain(original) == _plain(final):
        raise Unrepresentable("accepted as written (a preference pair needs a reviewer's correction, or a rejected variant)")
    prompt = _plain(final[:-1])
    if prompt != _plain(original[:-1]):
        raise Unrepresentable("the correction changed the prompt, not only the final answer (no shared input to prefer on)")
    return {
        "input": {"messages": prompt},
        "preferred_output": _plain(final[-1:]),
        "non_preferred_output": _plain(original[-1:]),
    }


def _dpo_problems(record: Any) -> list[str]:
    # OpenAI preference fine-tuning: an input conversation ending on the user's turn, and one
    # assistant message on each side, which must differ.
    if not isinstance(record, dict) or set(record) - {"input", "preferred_output", "non_preferred_output"}:
        return ["a line must hold exactly 'input', 'preferred_output' and 'non_preferred_output'"]
    source = record.get("input")
    if not isinstance(source, dict) or set(source) - {"messages", "tools", "parallel_tool_calls"}:
        return ["'input' must be an object with 'messages'"]
    problems = openai_message_problems(source.get("messages"), "input.messages")
    if not problems and source["messages"][-1].get("role") != "user":
        problems.append("input.messages must end with the user's turn")
    for side in ("preferred_output", "non_preferred_output"):
        output = record.get(side)
        problems += openai_message_problems(output, side)
        if isinstance(output, list) and (len(output) != 1 or not isinstance(output[0], dict) or output[0].get("role") != "assistant"):
            problems.append(f"'{side}' must be exactly one assistant message")
    if not problems and record["preferred_output"] == record["non_preferred_output"]:
        problems.append("the preferred and non-preferred outputs are identical")
    return problems


def _dpo_read_back(record: Any) -> tuple[Messages, Messages | None]:
    try:
        prompt = record["input"]["messages"]
        return prompt + record["preferred_output"], prompt + record["non_preferred_output"]
    except (KeyError, TypeError) as exc:
        raise FormatError(f"not an openai-dpo line (missing {exc})") from None


# --- trl-dpo: TRL's conversational preference format ------------------------------------------------
#
# TRL's DPOTrainer reads {"prompt": [messages up to the last user turn], "chosen": [assistant message],
# "rejected": [assistant message]}. Pairs come from human decisions over two answers to one prompt:
# a reviewer's correction over the model's original, and, within a group of variants answering the
# same prompt (generate --variants), every accepted answer over every rejected one, through the same record.


def preference_pair(prompt: Messages, chosen: Messages, rejected: Messages) -> dict[str, Any]:
    return {"prompt": _plain(prompt), "chosen": _plain(chosen), "rejected": _plain(rejected)}


def _trl_dpo_render(final: Messages, original: Messages | None) -> dict[str, Any]:
    dpo = _dpo_render(final, original)  # the same rules decide which corrections make a pair
    return preference_pair(dpo["input"]["messages"], dpo["preferred_output"], dpo["non_preferred_output"])


def _conversation_problems(prompt: Any, answers: dict[str, Any]) -> list[str]:
    """TRL's conversational rules: each answer one assistant message, and the prompt followed by it a trainable chat."""
    if not isinstance(prompt, list) or not prompt:
        return ["'prompt' must be a non-empty list of messages"]
    problems = []
    for side, answer in answers.items():
        if not isinstance(answer, list) or len(answer) != 1 or not isinstance(answer[0], dict) or answer[0].get("role") != "assistant":
            problems.append(f"'{side}' must be exactly one assistant message")
        else:
            # The chat-template rules (alternating turns, ending on the answer) over the whole conversation.
            problems += [f"prompt + {side}: {p}" for p in _trl_problems({"messages": prompt + answer})]
    return problems


def _trl_dpo_problems(record: Any) -> list[str]:
    if not isinstance(record, dict) or set(record) != {"prompt", "chosen", "rejected"}:
        return ["a line must hold exactly 'prompt', 'chosen' and 'rejected'"]
    problems = _conversation_problems(record["prompt"], {"chosen": record["chosen"], "rejected": record["rejected"]})
    if not problems and record["chosen"] == record["rejected"]:
        problems.append("the chosen and rejected answers are identical")
    return problems


def _trl_dpo_read_back(record: Any) -> tuple[Messages, Messages | None]:
    return record["prompt"] + record["chosen"], record["prompt"] + record["rejected"]


# --- trl-kto: TRL's unpaired preference format ---------------------------------------------------------


def kto_record(messages: Messages, label: bool) -> dict[str, Any]:
    """{"prompt", "completion", "label"}: label true for an answer a human accepted, false for one a human turned down."""
    if messages[-1]["role"] != "assistant" or not any(m["role"] == "user" for m in messages):
        raise Unrepresentable("the conversation does not end on an answer to a user's turn")
    return {"prompt": _plain(messages[:-1]), "completion": _plain(messages[-1:]), "label": label}


def _trl_kto_problems(record: Any) -> list[str]:
    if not isinstance(record, dict) or set(record) != {"prompt", "completion", "label"}:
        return ["a line must hold exactly 'prompt', 'completion' and 'label'"]
    problems = _conversation_problems(record["prompt"], {"completion": record["completion"]})
    if not isinstance(record["label"], bool):
        problems.append("'label' must be true or false")
    return problems


def _trl_kto_read_back(record: Any) -> tuple[Messages, Messages | None]:
    return record["prompt"] + record["completion"], None


def _messages_read_back(record: Any) -> tuple[Messages, Messages | None]:
    """openai and trl lines hold the messages themselves (read back only after the rules passed).

    As they are, not copied to role and content: every use hashes them with messages_hash, which
    takes only those two (the copy cost ~0.5 us a line of a 3-message conversation).
    """
    return record["messages"], None


def _chat_read_back(record: Any) -> tuple[Messages, Messages | None]:
    """sharegpt and alpaca lines read back through the seed importer's converters."""
    example, _ignored = example_from_record(record)
    return example.messages_as_dicts(), None


FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat("openai", 'OpenAI chat fine-tuning: {"messages": [...]}', _openai_render, _openai_problems, _messages_read_back),
        ExportFormat("sharegpt", 'ShareGPT: {"conversations": [{"from", "value"}]}', _sharegpt_render, _sharegpt_problems, _chat_read_back),
        ExportFormat("alpaca", "Alpaca: instruction/input/output (single-turn only)", _alpaca_render, _alpaca_problems, _chat_read_back),
        ExportFormat("trl", 'TRL conversational: {"messages": [...]}', _openai_render, _trl_problems, _messages_read_back),
        ExportFormat(
            "openai-dpo",
            "OpenAI preference pairs: a reviewer's correction over the model's original, and accepted over rejected variants",
            _dpo_render,
            _dpo_problems,
            _dpo_read_back,
            needs_original=True,
        ),
        ExportFormat(
            "trl-dpo",
            'TRL preference pairs, conversational: {"prompt", "chosen", "rejected"} (corrections, and accepted over rejected variants)',
            _trl_dpo_render,
            _trl_dpo_problems,
            _trl_dpo_read_back,
            needs_original=True,
        ),
        ExportFormat(
            "trl-kto",
            'TRL unpaired preferences: {"prompt", "completion", "label"}; every human decision, rejected answers labelled false',
            lambda final, original: kto_record(final, True),
            _trl_kto_problems,
            _trl_kto_read_back,
            labelled=True,
        ),
    )
}
