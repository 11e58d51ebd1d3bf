"""Style lints and flags read answers as markdown: markup inside code is code, and code gets its own checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from generator.checks.flags import FlagRules
from generator.config import SeedsSection
from generator.examples import Message
from generator.seed_lint import lint_seeds
from generator.seeds import load_seeds

SYSTEM = Message(role="system", content="You are a patient SQL tutor for analysts who know spreadsheets.")

# A small code-heavy seed set: every answer is a sentence and a fenced `sql` block, no other markup.
SQL_ANSWERS = [
    (
        "How many orders per customer?",
        "Group by the customer:\n\n```sql\nSELECT customer_id, COUNT(*) AS orders\nFROM orders\nGROUP BY customer_id;\n```",
    ),
    (
        "How many days between order and delivery?",
        "Subtract the Julian days:\n\n```sql\nSELECT id,\n  julianday(delivered_at)\n  - julianday(ordered_at) AS days\nFROM orders;\n```",
    ),
    (
        "Which products never sold?",
        "An anti-join keeps the unmatched rows:\n\n```sql\nSELECT p.*\nFROM products p\nLEFT JOIN order_items i ON i.product_id = p.id\nWHERE i.product_id IS NULL;\n```",
    ),
    (
        "Top 5 customers by revenue?",
        "Sort the totals and keep five:\n\n```sql\nSELECT customer_id, SUM(total) AS revenue\nFROM orders\nGROUP BY customer_id\nORDER BY revenue DESC\nLIMIT 5;\n```",
    ),
    (
        "Orders from last month?",
        "Compare with a date range:\n\n```sql\nSELECT *\nFROM orders\nWHERE ordered_at >= date('now', 'start of month', '-1 month')\n  AND ordered_at < date('now', 'start of month');\n```",
    ),
    (
        "Average basket size?",
        "Average the per-order item counts:\n\n```sql\nSELECT AVG(items) FROM (\n  SELECT order_id, COUNT(*) AS items FROM order_items GROUP BY order_id\n);\n```",
    ),
]


def conversation(answer: str, question: str = "How do I count rows per group?") -> list[Message]:
    return [SYSTEM, Message(role="user", content=question), Message(role="assistant", content=answer)]


SQL_SEEDS = [conversation(answer, question) for question, answer in SQL_ANSWERS]
RULES = FlagRules.from_seeds(SQL_SEEDS, length_factor=3.0)


def flags(answer: str, rules: FlagRules = RULES) -> dict[str, str]:
    return {flag.kind: flag.detail for flag in rules.flags(conversation(answer))}


def test_the_code_heavy_seeds_raise_no_flag() -> None:
    for seed in SQL_SEEDS:
        assert RULES.flags(seed) == [], seed[1].content


@pytest.mark.parametrize(
    "answer",
    [
        # An SQL continuation line that starts with "-" is an operator, not a bullet.
        "Subtract:\n\n```sql\nSELECT\n  julianday(shipped_at)\n  - julianday(ordered_at) AS lag\nFROM orders;\n```",
        # Python's dict merge is not bold, inline or fenced; a shell comment is not a heading.
        "Merge them with `{**a, **b}`:\n\n```sql\nSELECT json_patch(a, b) FROM t;\n```",
        "Export first:\n\n```sql\n# sqlite3 shell: .mode csv\n-- * every column\nSELECT * FROM t;\n```",
        "Number them:\n\n```sql\nSELECT 1) AS broken_on_purpose,\n__x__ FROM t;\n```",
        "Label the rows:\n\n```sql\nSELECT '🎉 done' AS status FROM t;\n```",  # an emoji in a string literal
    ],
)
def test_markup_inside_code_is_not_format_drift(answer: str) -> None:
    assert flags(answer) == {}


@pytest.mark.parametrize(
    ("answer", "feature"),
    [
        ("## Counting\n\n```sql\nSELECT COUNT(*) FROM t;\n```", "markdown headings"),
        ("**Group** first:\n\n```sql\nSELECT COUNT(*) FROM t GROUP BY a;\n```", "bold markup"),
        ("Two steps:\n\n- group\n- count\n\n```sql\nSELECT COUNT(*) FROM t GROUP BY a;\n```", "bullet lists"),
        ("Two steps:\n• group\n• count\n\n```sql\nSELECT COUNT(*) FROM t GROUP BY a;\n```", "bullet lists"),
        ("Grouped 🎉\n\n```sql\nSELECT COUNT(*) FROM t GROUP BY a;\n```", "emoji"),
    ],
)
def test_markup_in_prose_still_is(answer: str, feature: str) -> None:
    assert feature in flags(answer).get("format drift", "")


@pytest.mark.parametrize(
    ("answer", "reported"),
    [
        ("Group by it:\n\n```\nSELECT a, COUNT(*) FROM t GROUP BY a;\n```", "code block language none; the seeds use 'sql'"),
        (
            "Group by it:\n\n```postgresql\nSELECT a, COUNT(*) FROM t GROUP BY a;\n```",
            "code block language 'postgresql'; the seeds use 'sql'",
        ),
    ],
)
def test_a_fence_language_the_seeds_do_not_use_is_drift(answer: str, reported: str) -> None:
    assert flags(answer) == {"format drift": reported}


def test_any_language_the_seeds_use_is_house_style() -> None:
    rules = FlagRules.from_seeds([*SQL_SEEDS, conversation("From a terminal:\n\n```bash\nsqlite3 shop.db\n```")], length_factor=3.0)
    assert flags("Open it first:\n\n```bash\nsqlite3 orders.db\n```", rules) == {}
    assert flags("Open it first:\n\n```sh\nsqlite3 orders.db\n```", rules) == {
        "format drift": "code block language 'sh'; the seeds use 'bash', 'sql'"
    }


def test_python_and_py_are_different_languages() -> None:
    rules = FlagRules.from_seeds([conversation(f"Do it:\n\n```python\nprint({n})\n```") for n in range(6)], length_factor=3.0)
    assert flags("Do it:\n\n```py\nprint(7)\n```", rules) == {"format drift": "code block language 'py'; the seeds use 'python'"}
    assert flags("Do it:\n\n```Python\nprint(7)\n```", rules) == {}


@pytest.mark.parametrize(
    "answer",
    [
        "Group it:\n\n```sql\nSELECT a, COUNT(*)\nFROM t\nGROUP BY a;",
        "Group it:\n\n~~~sql\nSELECT a, COUNT(*)\n",
    ],
)
def test_a_fence_left_open_is_truncation(answer: str) -> None:
    assert flags(answer) == {"truncation": "a code block is never closed"}


@pytest.mark.parametrize(
    "answer",
    [
        "Close a block with a line of ` ``` ` and nothing else: `SELECT 1;` then ends it.",  # a fence marker quoted in inline code
        "List the files:\n\n    ls -la",  # ends in an indented code block: its last character is code
        "Keep the comma:\n\n~~~sql\nSELECT a,\n  b\nFROM t;\n~~~",
    ],
)
def test_code_at_the_end_is_not_a_cut_sentence(answer: str) -> None:
    assert "truncation" not in flags(answer)


@pytest.mark.parametrize(
    "answer",
    [
        "In a dbt model:\n\n```sql\nSELECT * FROM {{ ref('orders') }} WHERE id = {{ var('id') }};\n```",
        "Index the row with `row[name]`, then:\n\n```sql\nSELECT name FROM t;\n```",
        "Pin the migration:\n\n```sql\n-- from commit 3f9a1c2e7b4d5a6f8e9d0c1b2a3f4e5d6c7b8a9f\nSELECT 1;\n```",
        "Epoch milliseconds:\n\n```sql\nSELECT 1700000000000 AS ts, 415 555 0134 AS n;\n```",
    ],
)
def test_template_syntax_indexing_and_numbers_in_code_are_not_placeholders_or_pii(answer: str) -> None:
    assert flags(answer) == {}


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        ("Dear {{ customer }}, group it:\n\n```sql\nSELECT a FROM t GROUP BY a;\n```", "placeholder"),
        ("Connect with:\n\n```sql\n-- token ghp_abcdefghijklmnopqrstuvwxyz0123456789\nSELECT 1;\n```", "pii"),
        ("Log in:\n\n```sql\nSELECT * FROM users WHERE email = 'jane.doe@gmail.com';\n```", "pii"),
        ("Finish it:\n\n```sql\n-- TODO: add the filter\nSELECT 1;\n```", "placeholder"),
    ],
)
def test_placeholders_in_prose_and_real_secrets_in_code_still_flag(answer: str, kind: str) -> None:
    assert kind in flags(answer)


def _write_seeds(path: Path, answers: list[tuple[str, str]]) -> Path:
    lines = [
        json.dumps({"tags": ["queries"], "messages": [{"role": m.role, "content": m.content} for m in conversation(answer, question)]})
        for question, answer in answers
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_code_heavy_seed_set_lints_clean(tmp_path: Path) -> None:
    problems = lint_seeds(load_seeds([_write_seeds(tmp_path / "sql.jsonl", SQL_ANSWERS)]), SeedsSection(min_per_tag=1))
    assert [p.message for p in problems if "drift" in p.message or "code block" in p.message] == []


def test_seed_lint_names_an_open_fence_but_not_a_language_only_some_seeds_use(tmp_path: Path) -> None:
    seeds = [
        *SQL_ANSWERS,
        ("Count them?", "Like this:\n\n```sql\nSELECT COUNT(*) FROM t;"),
        ("Open the file?", "From a terminal:\n\n```bash\nsqlite3 shop.db\n```"),
    ]
    problems = lint_seeds(load_seeds([_write_seeds(tmp_path / "sql.jsonl", seeds)]), SeedsSection(min_per_tag=1))
    assert [(p.line, p.message) for p in problems if "code block" in p.message] == [
        (7, "message 3 (assistant) leaves a ``` code block open; close it")
    ]
