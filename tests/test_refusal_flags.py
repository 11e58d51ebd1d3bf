"""Refusals: boilerplate is flagged whatever the seeds say; a decline like the seeds' own declines is not."""

from __future__ import annotations

import pytest

from generator.checks.flags import FlagRules
from generator.examples import Message
from tests.test_checks_corpus import SEEDS as DEMO_SEEDS

SYSTEM = Message(role="system", content="You are a patient SQL tutor for analysts who know spreadsheets.")


def conversation(answer: str, question: str = "Can you help me with this?") -> list[Message]:
    return [SYSTEM, Message(role="user", content=question), Message(role="assistant", content=answer)]


IN_SCOPE = [
    conversation("Group by the customer and count: SELECT customer_id, COUNT(*) FROM orders GROUP BY customer_id;", "Orders per customer?"),
    conversation("Use a LEFT JOIN and keep the rows where the right side IS NULL: that is an anti-join.", "Products never sold?"),
    conversation("Sort by the sum and LIMIT 5: ORDER BY SUM(total) DESC LIMIT 5 gives the top five customers.", "Top customers?"),
    conversation("Compare with a half-open range on ordered_at, from the first of last month to the first of this one.", "Last month?"),
    conversation("AVG over a subquery that counts items per order gives the average basket size.", "Basket size?"),
    conversation("COALESCE(discount, 0) turns a missing discount into zero before you add it up.", "Null discounts?"),
]
# The tutor's out-of-scope examples: decline, say who can help instead, offer what the tutor can do.
DECLINES = [
    conversation(
        "Tuning the production server is outside what this SQL tutor covers, so your database administrator is the right "
        "person for that. What I can help with is the query itself: share it and we can read its plan with EXPLAIN QUERY PLAN.",
        "How do I tune our Postgres server settings?",
    ),
    conversation(
        "Choosing a database vendor for your company is outside what this SQL tutor covers; your IT team weighs licences "
        "and support. What I can help with is the SQL itself, which works much the same on any of them.",
        "Should we buy Oracle or SQL Server?",
    ),
]
# Worded differently from both seed declines, but the same kind of answer.
SEED_STYLE_DECLINE = (
    "I can't help with recovering a dropped production table here, that is a job for your database administrator and "
    "their backups. What this SQL tutor can do is show you the query to check the table exists: share it and we can read it."
)
BOILERPLATE = [
    "I'm unable to assist with that request.",
    "I'm sorry, but I can't help with that.",
    "As an AI language model, I cannot run queries on your database.",
]


def refusal(rules: FlagRules, answer: str) -> str | None:
    return {flag.kind: flag.detail for flag in rules.flags(conversation(answer))}.get("refusal")


WITH_DECLINES = FlagRules.from_seeds(IN_SCOPE + DECLINES, length_factor=10.0)
WITHOUT_DECLINES = FlagRules.from_seeds(IN_SCOPE, length_factor=10.0)


@pytest.mark.parametrize("answer", BOILERPLATE)
@pytest.mark.parametrize("rules", [WITH_DECLINES, WITHOUT_DECLINES], ids=["with decline seeds", "without"])
def test_boilerplate_refusals_are_flagged_with_or_without_decline_seeds(rules: FlagRules, answer: str) -> None:
    assert refusal(rules, answer)


def test_a_decline_in_the_seeds_manner_is_recognised_only_when_the_seeds_model_declines() -> None:
    assert refusal(WITH_DECLINES, SEED_STYLE_DECLINE) is None
    assert refusal(WITHOUT_DECLINES, SEED_STYLE_DECLINE) == "I can't help"


def test_sharing_a_phrase_with_a_seed_does_not_excuse_a_stock_refusal() -> None:
    # A seed decline that happens to say "I can't help" no longer makes every "I can't help" house style.
    seeds = [*IN_SCOPE, conversation("I can't help with server tuning, that is for your database administrator; share the query instead.")]
    assert refusal(FlagRules.from_seeds(seeds, length_factor=10.0), "Sorry, I can't help with that request.") == "I can't help"


def test_ai_boilerplate_is_flagged_even_inside_a_decline_like_the_seeds() -> None:
    assert refusal(WITH_DECLINES, "As an AI language model, " + SEED_STYLE_DECLINE) == "As an AI"


def test_the_demo_seeds_declines_are_recognised_by_similarity() -> None:
    rules = FlagRules.from_seeds([messages for _, _, messages in DEMO_SEEDS], length_factor=3.0)
    decline = (
        "I can't help with choosing a tax rate, since that's a tax question and Ledgerly doesn't give tax advice; an accountant "
        "or your tax authority can tell you. Once you know the rate, add it at Settings → Taxes → Tax rates and it applies to new invoices."
    )
    question = [DEMO_SEEDS[0][2][0], Message(role="user", content="Which VAT rate should I charge?")]
    assert rules.flags([*question, Message(role="assistant", content=decline)]) == []
    stock = rules.flags([*question, Message(role="assistant", content="I'm unable to assist with that request.")])
    assert "refusal" in {f.kind for f in stock}
