"""The canonical Example and its conversion from OpenAI chat, ShareGPT and Alpaca records."""

from __future__ import annotations

import pytest

from generator.examples import Example, FormatError, Message, example_from_record, messages_hash, structural_problems

SYSTEM = {"role": "system", "content": "You are Ledgerly's support assistant."}
USER = {"role": "user", "content": "How do I void an invoice?"}
ASSISTANT = {"role": "assistant", "content": "Open the invoice and choose More → Void."}


def test_openai_chat_record_keeps_messages_tags_and_id() -> None:
    example, ignored = example_from_record({"id": "inv-1", "tags": ["invoices"], "messages": [SYSTEM, USER, ASSISTANT]})
    assert [m.role for m in example.messages] == ["system", "user", "assistant"]
    assert example.tags == ["invoices"] and example.id == "inv-1" and example.category == "invoices"
    assert ignored == []


def test_sharegpt_record_maps_speakers_to_roles() -> None:
    record = {
        "system": SYSTEM["content"],
        "conversations": [{"from": "human", "value": USER["content"]}, {"from": "gpt", "value": ASSISTANT["content"]}],
        "tags": ["invoices", "edge:ambiguous"],
    }
    example, _ = example_from_record(record)
    assert example.messages_as_dicts() == [SYSTEM, USER, ASSISTANT]
    assert example.category == "invoices"


def test_alpaca_record_joins_instruction_and_input() -> None:
    example, _ = example_from_record(
        {"instruction": "Summarise the refund policy.", "input": "Annual plan, day 10.", "output": "Full refund."}
    )
    assert example.messages_as_dicts() == [
        {"role": "user", "content": "Summarise the refund policy.\n\nAnnual plan, day 10."},
        {"role": "assistant", "content": "Full refund."},
    ]


def test_alpaca_without_input_is_just_the_instruction() -> None:
    example, _ = example_from_record({"instruction": "Hi", "input": "", "output": "Hello"})
    assert example.messages[0].content == "Hi"


def test_unknown_keys_are_reported_not_fatal() -> None:
    _, ignored = example_from_record({"messages": [USER, ASSISTANT], "source": "forum"})
    assert ignored == ["source"]


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"messages": [USER]}, "no assistant turn"),
        ({"messages": [USER, {"role": "assistant", "content": "   "}]}, "empty content"),
        ({"messages": [ASSISTANT, USER, ASSISTANT]}, "broken role order"),
        ({"messages": [USER, ASSISTANT, SYSTEM]}, "system message may only come first"),
        ({"messages": [USER, ASSISTANT, USER]}, "last turn must be the assistant"),
        ({"messages": [{"role": "tool", "content": "x"}, ASSISTANT]}, "messages.0.role"),
        ({"messages": [USER, ASSISTANT], "tags": ["Has Space"]}, "tag 'Has Space'"),
        ({"conversations": [{"from": "bot", "value": "x"}]}, "use one of 'system', 'human', 'gpt'"),
        ({"instruction": "x"}, "need a string 'output'"),
        ({"text": "no conversation"}, "expected 'messages'"),
        (["not", "an", "object"], "expected a JSON object"),
    ],
)
def test_invalid_records_say_what_is_wrong(record: object, expected: str) -> None:
    with pytest.raises(FormatError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        example_from_record(record)


def test_structural_problems_accepts_a_multi_turn_conversation() -> None:
    turns = [Message(**m) for m in (SYSTEM, USER, ASSISTANT, USER, ASSISTANT)]
    assert structural_problems(turns) == []


def test_content_hash_depends_on_content_only() -> None:
    a = Example(messages=[USER, ASSISTANT], tags=["x"], id="1")
    b = Example(messages=[USER, ASSISTANT])
    c = Example(messages=[USER, {"role": "assistant", "content": ASSISTANT["content"] + "!"}])
    assert a.content_hash() == b.content_hash() == messages_hash([USER, ASSISTANT])
    assert a.content_hash() != c.content_hash()
