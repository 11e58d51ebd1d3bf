"""Flags: each kind fires on what it names, stays quiet on the verified seeds, and never repeats a secret."""

from __future__ import annotations

import pytest

from generator.checks.flags import FLAG_KINDS, FlagRules
from generator.checks.result import FILTER_REASONS, overruled_reasons, restored_flag
from generator.examples import Message
from tests.test_checks_corpus import HOLDOUT, SEEDS

RULES = FlagRules.from_seeds([messages for _, _, messages in SEEDS], length_factor=3.0)
SYSTEM = SEEDS[0][2][0]


def conversation(answer: str, question: str = "How do I export my invoices?", system: Message = SYSTEM) -> list[Message]:
    return [system, Message(role="user", content=question), Message(role="assistant", content=answer)]


def kinds(messages: list[Message]) -> dict[str, str]:
    return {flag.kind: flag.detail for flag in RULES.flags(messages)}


def test_the_verified_seeds_and_holdout_raise_no_flag() -> None:
    for _, line, messages in SEEDS + HOLDOUT:
        assert RULES.flags(messages) == [], line


def test_a_plain_answer_raises_no_flag() -> None:
    assert kinds(conversation("Go to Settings → Data → Export data and choose Invoices. The CSV arrives in a few seconds.")) == {}


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        ("As an AI language model, I cannot access your account.", "refusal"),
        ("I’m sorry, but I can’t help with that request today.", "refusal"),
        ("I'm just an AI assistant, so please ask a human about it.", "refusal"),
        ("As of my last update, exports were only available as PDF files.", "refusal"),
        ("Go to Settings and then choose the export option that", "truncation"),
        ("Go to Settings → Data and then,", "truncation"),
        ("Run this:\n```\nexport --all\n", "truncation"),
        ("Go to Settings → Data and then...", "truncation"),
        ("See [insert link here] for the steps.", "placeholder"),
        ("Lorem ipsum dolor sit amet, consectetur.", "placeholder"),
        ("TODO: write the menu path here.", "placeholder"),
        ("Dear {{ customer }}, go to Settings → Data.", "placeholder"),
        ("Write to jane.doe@example.com for a copy.", "pii"),
        ("Call our team at (415) 555-0134 for a copy.", "pii"),
        ("Use the token ghp_abcdefghijklmnopqrstuvwxyz0123456789 to sign in.", "pii"),
        ("Your card 4111 1111 1111 1111 was charged.", "pii"),
        ("## Exporting\n\nGo to Settings → Data → Export data.", "format drift"),
        ("**Yes.** Go to Settings → Data → Export data.", "format drift"),
        ("Yes.", "length"),
        ("Go to Settings → Data → Export data. " * 80, "length"),
    ],
)
def test_each_kind_fires_on_what_it_names(answer: str, kind: str) -> None:
    found = kinds(conversation(answer))
    assert kind in found, found
    assert set(found) <= set(FLAG_KINDS)


@pytest.mark.parametrize(
    "answer",
    [
        "Here is what to do with your to-do list: export it from Settings → Data.",  # lower-case "to-do" is not TODO
        "Your invoice INV-2024-0042 was paid on 2024-03-15 for $1,234.56.",  # ids, dates and amounts are not phone numbers
        "It costs $39/month (or $372/year) for 3 users.",
        "Write to support@ledgerly.app and we'll help.",  # an address the seeds themselves use
        "The export goes to your email as a link (valid for 7 days)",  # a closing bracket ends a sentence
    ],
)
def test_ordinary_text_is_not_flagged(answer: str) -> None:
    assert kinds(conversation(answer)) == {}


def test_an_answer_ending_in_an_emoji_is_finished() -> None:
    assert "truncation" not in kinds(conversation("Done, the export is on its way to your inbox 🎉"))


def test_a_different_system_prompt_is_format_drift() -> None:
    found = kinds(conversation("Go to Settings → Data → Export data.", system=Message(role="system", content="You are a pirate.")))
    assert found == {"format drift": "system prompt differs from the usual one"}


def test_refusal_phrasing_only_counts_in_answers() -> None:
    assert "refusal" not in kinds(conversation("Go to Settings → Data → Export data.", question="As an AI, can you export for me?"))


def test_secrets_are_never_repeated_in_full() -> None:
    secret = "sk-proj-" + "Ab1" * 12
    detail = kinds(conversation(f"Set OPENAI_API_KEY={secret} first."))["pii"]
    assert secret not in detail and "sk-p" in detail


def test_one_flag_per_kind_with_every_finding_in_its_detail() -> None:
    flags = RULES.flags(conversation("Email a@example.com or b@example.com, and see [insert link]."))
    assert [flag.kind for flag in flags] == ["placeholder", "pii"]
    assert "a…@example.com" in flags[1].detail and "b…@example.com" in flags[1].detail


def test_personal_data_is_masked_in_the_flag() -> None:
    detail = kinds(conversation("Write to bob.smith@gmail.com or call (415) 555-0134."))["pii"]
    assert "bob.smith" not in detail and "555-0134" not in detail
    assert "b…@gmail.com" in detail and "phone number ending 34" in detail


def test_addresses_that_mask_alike_are_still_told_apart_from_the_seeds() -> None:
    rules = FlagRules.from_seeds([conversation("Email jane.doe@example.com for help.")] * 5, length_factor=3.0)
    flags = rules.flags(conversation("Email jim.roe@example.com for a copy of the invoice."))
    assert [f.detail for f in flags if f.kind == "pii"] == ["email address j…@example.com"]


def test_strings_the_seeds_use_are_house_style() -> None:
    rules = FlagRules.from_seeds([conversation("Email jane.doe@example.com for help.")] * 5, length_factor=3.0)
    assert "pii" not in {f.kind for f in rules.flags(conversation("Email jane.doe@example.com for a copy of the invoice."))}
    assert "pii" in {f.kind for f in rules.flags(conversation("Email john.roe@example.com for a copy of the invoice."))}


@pytest.mark.parametrize("reason", FILTER_REASONS)
def test_a_restored_flag_records_the_overruled_reason(reason: str) -> None:
    flags = [restored_flag(reason, "seed:billing-001")]
    assert overruled_reasons(flags) == {reason}
    assert overruled_reasons([restored_flag(reason, None)]) == {reason}
