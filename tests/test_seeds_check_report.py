"""`seeds check` prints its problem list in one write, exactly as line-by-line printing showed it."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from generator.config import SeedsSection
from generator.seed_lint import lint_seeds
from generator.seeds import load_seeds
from tests.conftest import run_cli


def test_problems_that_look_like_markup_print_as_each_line_printed_alone(tmp_path: Path) -> None:
    seeds = tmp_path / "[bold]a:smile:.jsonl"  # Rich markup and an emoji code in every problem line
    lines = [
        {"messages": [{"role": "user", "content": f"[red]question {i}[/red]"}, {"role": "assistant", "content": f"answer {i} :+1: \n"}],
         "[link=x]": 1}
        for i in range(6)
    ]  # fmt: skip
    seeds.write_text("\n".join(json.dumps(line) for line in [*lines, lines[0]]) + "\n")
    result = run_cli("seeds", "check", str(seeds), cwd=tmp_path)
    assert result.returncode == 2, result.stderr

    seed_set = load_seeds([seeds])
    problems = seed_set.problems + lint_seeds(seed_set, SeedsSection())
    one_by_one = Console(file=io.StringIO(), markup=False, highlight=False, soft_wrap=True)
    for problem in [p for p in problems if p.severity == "error"] + [p for p in problems if p.severity == "warning"]:
        one_by_one.print(f"{problem.severity}: {problem.render(tmp_path)}")
    expected = one_by_one.file.getvalue()  # type: ignore[attr-defined]
    assert "😄" in expected and "[link=x]" in expected and expected.count("\n") > 10
    assert expected in result.stdout
