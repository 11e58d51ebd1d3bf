"""Loading and linting verified seeds: every bad line is named by file and line, and never a traceback."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generator.config import SeedsSection
from generator.seed_lint import lint_seeds
from generator.seeds import load_seed_file, load_seeds
from tests.conftest import REPO, run_cli

GOOD = {
    "tags": ["billing"],
    "messages": [
        {"role": "system", "content": "You are Ledgerly's support assistant."},
        {"role": "user", "content": "Can I pay yearly?"},
        {"role": "assistant", "content": "Yes. Go to Settings → Billing → Plan and choose Annual."},
    ],
}


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_all_three_formats_load_from_one_file(tmp_path: Path) -> None:
    lines = [
        json.dumps(GOOD),
        json.dumps({"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}], "tags": ["account"]}),
        json.dumps({"instruction": "Define proration.", "input": "", "output": "Charging for the part of a cycle used."}),
        "",
    ]
    seed_set = load_seed_file(write_lines(tmp_path / "s.jsonl", lines))
    assert seed_set.errors == []
    assert [s.line for s in seed_set.seeds] == [1, 2, 3]
    assert [s.example.messages[-1].role for s in seed_set.seeds] == ["assistant"] * 3


def test_each_broken_line_is_reported_with_its_number(tmp_path: Path) -> None:
    lines = [
        json.dumps(GOOD),
        "{not json",
        json.dumps({"messages": [{"role": "user", "content": "only a question"}]}),
        json.dumps(GOOD) + " trailing",
    ]
    seed_set = load_seed_file(write_lines(tmp_path / "s.jsonl", lines))
    assert [(p.line, p.severity) for p in seed_set.errors] == [(2, "error"), (3, "error"), (4, "error")]
    assert "invalid JSON" in seed_set.errors[0].message
    assert "no assistant turn" in seed_set.errors[1].message
    assert len(seed_set.seeds) == 1


def test_duplicate_explicit_ids_are_errors(tmp_path: Path) -> None:
    messages: list[dict[str, str]] = GOOD["messages"]  # type: ignore[assignment]
    other = {**GOOD, "id": "b-1", "messages": [*messages[:2], {"role": "assistant", "content": "Different."}]}
    seed_set = load_seeds([write_lines(tmp_path / "s.jsonl", [json.dumps({**GOOD, "id": "b-1"}), json.dumps(other)])])
    assert [(p.line, "already used" in p.message) for p in seed_set.errors] == [(2, True)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.one_of(
            st.text(max_size=60),
            st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                lambda inner: (
                    st.lists(inner, max_size=3)
                    | st.dictionaries(
                        st.sampled_from(
                            ["messages", "role", "content", "tags", "conversations", "from", "value", "instruction", "output", "id"]
                        ),
                        inner,
                        max_size=4,
                    )
                ),
                max_leaves=12,
            ).map(json.dumps),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_fuzzed_seed_lines_never_raise_and_always_name_a_line(tmp_path: Path, lines: list[str]) -> None:
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass"))
    seed_set = load_seed_file(path)
    physical_lines = len(path.read_bytes().splitlines())
    for problem in seed_set.problems:
        assert problem.file == path
        assert 1 <= problem.line <= physical_lines
        assert problem.message
    lint_seeds(seed_set, SeedsSection())  # never raises either


def test_lint_finds_duplicates_drift_small_tags_and_trailing_space(tmp_path: Path) -> None:
    seeds = [json.loads(line) for line in (REPO / "seeds" / "support.jsonl").read_text().splitlines()[:20]]
    exact = json.loads(json.dumps(seeds[0]))
    exact["messages"][1]["content"] = exact["messages"][1]["content"].upper()  # same after case folding
    exact.pop("id")
    near = json.loads(json.dumps(seeds[1]))
    near.pop("id")
    near["messages"][-1]["content"] = near["messages"][-1]["content"].replace(".", "!", 1)
    drift = json.loads(json.dumps(seeds[2]))
    drift.pop("id")
    drift["messages"][0]["content"] = "You are a helpful assistant."
    drift["messages"][-1]["content"] = "## Answer\n**Yes.** " + drift["messages"][-1]["content"] + "  "
    drift["tags"] = ["rare-tag"]
    path = write_lines(tmp_path / "s.jsonl", [json.dumps(s) for s in [*seeds, exact, near, drift]])
    problems = lint_seeds(load_seeds([path]), SeedsSection())
    found = {(p.line, p.severity, p.message.split(" (")[0].split(":")[0]) for p in problems}
    assert (21, "error", "exact duplicate of s.jsonl") in found
    assert (22, "warning", "near-duplicate of s.jsonl") in found
    messages_23 = [p.message for p in problems if p.line == 23]
    assert any("system prompt differs" in m for m in messages_23)
    assert any("markdown headings" in m for m in messages_23) and any("bold markup" in m for m in messages_23)
    assert any("trailing whitespace" in m for m in messages_23)
    assert any("'rare-tag' has only 1" in m for m in messages_23)


def test_shipped_seeds_check_clean(tmp_path: Path) -> None:
    result = run_cli("seeds", "check", cwd=REPO, env={"SYNTHGATE_DB": f"sqlite:///{tmp_path / 'q.db'}"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 error(s)" in result.stdout
    assert "Recorded" in result.stdout


def test_seeds_check_names_file_and_line_and_exits_2(project_dir: Path) -> None:
    seeds = project_dir / "seeds" / "seeds.jsonl"
    lines = seeds.read_text().splitlines()
    lines.insert(4, '{"messages": [{"role": "user", "content": "hi"}')  # truncated JSON on line 5
    seeds.write_text("\n".join(lines) + "\n")
    result = run_cli("seeds", "check", cwd=project_dir)
    assert result.returncode == 2
    assert "seeds/seeds.jsonl:5: invalid JSON" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert not (project_dir / ".synthgate").exists()  # a failed check records nothing


def test_seeds_check_of_loose_files_outside_a_project(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    shutil.copyfile(REPO / "seeds" / "support.jsonl", path)
    result = run_cli("seeds", "check", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"{len(path.read_text().splitlines())} valid seed(s)" in result.stdout


def test_a_lone_surrogate_is_a_line_error_not_a_traceback(project_dir: Path) -> None:
    seeds = project_dir / "seeds" / "seeds.jsonl"
    lone = json.dumps(
        {"messages": [{"role": "user", "content": "hi \ud800"}, {"role": "assistant", "content": "hello"}], "tags": ["billing"]}
    )
    assert "\\ud800" in lone  # the JSON escape, as a file holds it
    seeds.write_text(seeds.read_text() + lone + "\n")
    line = len(seeds.read_text().splitlines())
    for command in (["seeds", "check"], ["generate", "--dry-run"]):
        result = run_cli(*command, cwd=project_dir)
        assert result.returncode == 2, result.stdout + result.stderr
        assert f"seeds/seeds.jsonl:{line}: invalid JSON: a lone surrogate" in result.stdout + result.stderr
        assert "Traceback" not in result.stdout + result.stderr


def test_a_seed_path_that_is_a_named_pipe_is_refused_without_waiting(tmp_path: Path) -> None:
    pipe = tmp_path / "seeds.jsonl"
    os.mkfifo(pipe)
    seed_set = load_seed_file(pipe)  # reading it would block forever: no writer ever comes
    assert [(p.line, p.message) for p in seed_set.errors] == [(0, "not a regular file")]


def test_generate_refuses_while_seeds_check_reports_errors(project_dir: Path) -> None:
    """An exact duplicate fails `seeds check` (exit 2); generate then refuses too and writes nothing (issue 11, point 7)."""
    seeds = project_dir / "seeds" / "seeds.jsonl"
    lines = seeds.read_text().splitlines()
    duplicate = json.loads(lines[2])
    duplicate.pop("id", None)
    seeds.write_text("\n".join([*lines, json.dumps(duplicate)]) + "\n")
    check = run_cli("seeds", "check", cwd=project_dir)
    assert check.returncode == 2 and f"seeds/seeds.jsonl:{len(lines) + 1}: exact duplicate of seeds.jsonl:3" in check.stdout
    result = run_cli(
        "generate", "--count", "5", cwd=project_dir, env={"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": "http://127.0.0.1:9"}
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith(f"error: seeds/seeds.jsonl:{len(lines) + 1}: exact duplicate of seeds.jsonl:3")
    assert "synthgate seeds check" in result.stderr
    assert not (project_dir / ".synthgate").exists()  # no store, no run, no request


def test_a_family_of_near_duplicates_costs_linear_comparisons(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 11, point 9: n variants of one seed were each compared with every variant before them (n^2 / 2)."""
    import generator.similarity

    words = [f"word{i}" for i in range(100)]
    variants = []
    for i in range(400):
        answer = words.copy()
        if i:
            answer[i % 100] = f"changed{i}"  # one word from the first line (similarity ~0.94; to each other ~0.89)
        conversation = [{"role": "user", "content": "the same question"}, {"role": "assistant", "content": " ".join(answer)}]
        variants.append(json.dumps({"messages": conversation}))
    compared = Counter[str]()
    exact_jaccard = generator.similarity.jaccard_of_sorted

    def counting(a, b):
        compared["pairs"] += 1
        return exact_jaccard(a, b)

    monkeypatch.setattr(generator.similarity, "jaccard_of_sorted", counting)
    problems = lint_seeds(load_seeds([write_lines(tmp_path / "s.jsonl", variants)]), SeedsSection())
    near = [p for p in problems if "near-duplicate" in p.message]
    assert len(near) == len(variants) - 1 and all("near-duplicate of s.jsonl:1 " in p.message for p in near)
    assert compared["pairs"] <= 2 * len(variants)  # was 79,800: every pair
