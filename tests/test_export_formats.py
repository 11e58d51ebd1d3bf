"""Each export format: the shape of its lines, the rules it enforces, what it cannot hold, and reading lines back."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from generator.export.formats import FORMATS, Unrepresentable
from tests.test_export import SYSTEM, add, chat, decide, entries, export, lines

# --- rendered lines, through a real export -----------------------------------------------------------


def test_openai_lines_pass_openai_rules_and_hold_only_messages(engine: Engine, tmp_path: Path) -> None:
    (candidate,) = add(engine, chat(0, turns=2))
    decide(engine, candidate, "accept")
    export(engine, tmp_path / "o.jsonl", format="openai")
    (line,) = lines(tmp_path / "o.jsonl")
    assert line == {"messages": chat(0, turns=2)}
    assert FORMATS["openai"].problems(line) == []


def test_sharegpt_maps_roles_to_human_and_gpt(engine: Engine, tmp_path: Path) -> None:
    (candidate,) = add(engine, chat(0))
    decide(engine, candidate, "accept")
    export(engine, tmp_path / "s.jsonl", format="sharegpt")
    (line,) = lines(tmp_path / "s.jsonl")
    assert line == {
        "conversations": [
            {"from": "system", "value": SYSTEM},
            {"from": "human", "value": "question 0.0"},
            {"from": "gpt", "value": "answer 0.0"},
        ]
    }
    assert FORMATS["sharegpt"].problems(line) == []


def test_alpaca_holds_single_turns_and_counts_multi_turn_skips(engine: Engine, tmp_path: Path) -> None:
    single, multi = add(engine, chat(0), chat(1, turns=2))
    decide(engine, single, "accept")
    decide(engine, multi, "accept")
    report = export(engine, tmp_path / "a.jsonl", format="alpaca")
    assert lines(tmp_path / "a.jsonl") == [{"instruction": "question 0.0", "input": "", "output": "answer 0.0", "system": SYSTEM}]
    (reason,) = report.skipped.counts
    assert "multi-turn" in reason and report.skipped.listed[reason] == [f"candidate:{multi}"]
    assert report.counts["skipped"] == 1


def test_trl_lines_are_conversational_messages(engine: Engine, tmp_path: Path) -> None:
    (candidate,) = add(engine, chat(0, system=False))
    decide(engine, candidate, "accept")
    export(engine, tmp_path / "t.jsonl", format="trl")
    (line,) = lines(tmp_path / "t.jsonl")
    assert line == {"messages": chat(0, system=False)}
    assert FORMATS["trl"].problems(line) == []


def test_openai_dpo_pairs_the_correction_with_the_original_and_holds_only_edits(engine: Engine, tmp_path: Path) -> None:
    corrected, plain, prompt_changed = add(engine, chat(0), chat(1), chat(2))
    decide(engine, corrected, "edit", messages=chat(0, answer="the reviewer's answer"))
    decide(engine, plain, "accept")
    changed_prompt = chat(2, answer="new answer")
    changed_prompt[1]["content"] = "a rewritten question"
    decide(engine, prompt_changed, "edit", messages=changed_prompt)

    report = export(engine, tmp_path / "p.jsonl", format="openai-dpo")
    (line,) = lines(tmp_path / "p.jsonl")
    assert line == {
        "input": {"messages": chat(0)[:-1]},
        "preferred_output": [{"role": "assistant", "content": "the reviewer's answer"}],
        "non_preferred_output": [{"role": "assistant", "content": "answer 0.0"}],
    }
    assert FORMATS["openai-dpo"].problems(line) == []
    assert [e["candidate_id"] for e in entries(tmp_path / "p.jsonl")] == [corrected]
    listed = {reason.split(": ", 1)[1].split(" (")[0]: ids for reason, ids in report.skipped.listed.items()}
    assert listed == {
        "accepted as written": [f"candidate:{plain}"],
        "the correction changed the prompt, not only the final answer": [f"candidate:{prompt_changed}"],
    }
    assert report.counts == {"lines": 1, "accepted": 0, "edited": 1, "seeds": 0, "skipped": 2}


def test_an_accepted_line_that_breaks_the_format_rules_is_reported_and_left_out(engine: Engine, tmp_path: Path) -> None:
    blank_answer = chat(1, answer="   ")
    good, broken = add(engine, chat(0), blank_answer)
    decide(engine, good, "accept")
    decide(engine, broken, "accept")
    report = export(engine, tmp_path / "o.jsonl", format="openai")
    assert lines(tmp_path / "o.jsonl") == [{"messages": chat(0)}]
    assert report.skipped.listed == {"breaks the openai format rules: messages[3] has missing or empty content": [f"candidate:{broken}"]}


def test_openai_dpo_with_no_edits_is_nothing_to_export(engine: Engine, tmp_path: Path) -> None:
    from generator.errors import WorkFailed

    (candidate,) = add(engine, chat(0))
    decide(engine, candidate, "accept")
    with pytest.raises(WorkFailed, match=r"nothing to export.*accepted as written"):
        export(engine, tmp_path / "p.jsonl", format="openai-dpo")


# --- each format's rules refuse what its trainer would refuse --------------------------------------------

USER = {"role": "user", "content": "q"}
ASSISTANT = {"role": "assistant", "content": "a"}


@pytest.mark.parametrize(
    ("fmt", "record", "problem"),
    [
        ("openai", {"messages": [USER]}, "no assistant message"),
        ("openai", {"messages": [USER, {"role": "assistant", "content": "  "}]}, "empty content"),
        ("openai", {"messages": [{"role": "robot", "content": "x"}, ASSISTANT]}, "unknown role"),
        ("openai", {"messages": [USER, {**ASSISTANT, "score": 1}]}, "keys OpenAI does not allow: score"),
        ("openai", {"messages": [USER, ASSISTANT], "tags": ["x"]}, "key 'tags' is not allowed"),
        ("openai", {"messages": []}, "non-empty list"),
        ("openai", [USER], "JSON object"),
        ("trl", {"messages": [ASSISTANT, USER]}, "broken role order"),
        ("trl", {"messages": [USER, {**ASSISTANT, "name": "x"}]}, "exactly 'role' and 'content'"),
        ("sharegpt", {"conversations": [{"from": "bot", "value": "x"}]}, "use system, human or gpt"),
        ("sharegpt", {"conversations": [{"from": "human", "value": "q"}]}, "no assistant turn"),
        ("sharegpt", {"conversations": [{"from": "human", "value": ""}, {"from": "gpt", "value": "a"}]}, "empty value"),
        ("alpaca", {"instruction": "q", "input": ""}, "'output' must be a non-empty string"),
        ("alpaca", {"instruction": "q", "input": "", "output": "a", "history": []}, "not an alpaca field"),
        ("openai-dpo", {"input": {"messages": [USER]}, "preferred_output": [ASSISTANT], "non_preferred_output": [ASSISTANT]}, "identical"),
        (
            "openai-dpo",
            {
                "input": {"messages": [USER, ASSISTANT]},
                "preferred_output": [ASSISTANT],
                "non_preferred_output": [{**ASSISTANT, "content": "b"}],
            },
            "end with the user's turn",
        ),
        (
            "openai-dpo",
            {"input": {"messages": [USER]}, "preferred_output": [ASSISTANT, ASSISTANT], "non_preferred_output": [ASSISTANT]},
            "exactly one assistant message",
        ),
    ],
)
def test_format_rules_refuse_what_the_trainer_refuses(fmt: str, record: object, problem: str) -> None:
    problems = FORMATS[fmt].problems(record)
    assert any(problem in p for p in problems), problems


def test_the_config_accepts_exactly_the_export_formats() -> None:
    from typing import get_args

    from generator.config import ExportSection
    from generator.export.formats import FORMATS

    assert get_args(ExportSection.model_fields["format"].annotation) == tuple(FORMATS)


@pytest.mark.parametrize("fmt", ["openai", "sharegpt", "alpaca", "trl"])
def test_every_chat_format_reads_its_own_lines_back(fmt: str) -> None:
    messages = chat(3)
    record = FORMATS[fmt].render(messages, None)
    assert FORMATS[fmt].problems(record) == []
    assert FORMATS[fmt].read_back(record) == (messages, None)


def test_dpo_reads_back_both_sides() -> None:
    original, corrected = chat(3), chat(3, answer="better")
    record = FORMATS["openai-dpo"].render(corrected, original)
    assert FORMATS["openai-dpo"].read_back(record) == (corrected, original)
    with pytest.raises(Unrepresentable):
        FORMATS["openai-dpo"].render(corrected, None)
