"""`synthgate init` scaffolds a working project and never overwrites one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from generator.cli import app, init_cmd
from generator.config import load_config
from generator.errors import UserError
from generator.examples import Example
from generator.init_project import init_project
from generator.seed_facts import MARKUP_SAMPLE, SeedFacts
from tests.conftest import REPO, run_cli


def test_init_creates_a_project_that_the_cli_can_use(tmp_path: Path) -> None:
    target = tmp_path / "newproj"
    result = run_cli("init", str(target), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for relative in ("synthgate.toml", "seeds/seeds.jsonl", "seeds/README.md", "prompts/generate.jinja", ".gitignore"):
        assert (target / relative).is_file(), relative
    assert (target / "seeds" / "seeds.jsonl").read_text() == ""
    assert ".synthgate/" in (target / ".gitignore").read_text().splitlines()
    assert 'name = "newproj"' in (target / "synthgate.toml").read_text()
    stats = run_cli("stats", "--json", cwd=target)
    assert stats.returncode == 0 and '"seeds": 0' in stats.stdout


def test_init_refuses_to_overwrite_and_changes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "p"
    assert run_cli("init", str(target), cwd=tmp_path).returncode == 0
    config = target / "synthgate.toml"
    config.write_text(config.read_text() + "\n# my edits\n")
    before = config.read_text()
    result = run_cli("init", str(target), cwd=tmp_path)
    assert result.returncode == 2
    assert "refusing to overwrite synthgate.toml" in result.stderr
    assert config.read_text() == before


def test_init_keeps_an_existing_gitignore(tmp_path: Path) -> None:
    target = tmp_path / "repo"
    target.mkdir()
    (target / ".gitignore").write_text("node_modules/")
    assert run_cli("init", str(target), cwd=tmp_path).returncode == 0
    assert (target / ".gitignore").read_text().splitlines() == ["node_modules/", ".synthgate/"]


def test_an_empty_seed_file_checks_clean_as_empty(tmp_path: Path) -> None:
    target = tmp_path / "p"
    run_cli("init", str(target), cwd=tmp_path)
    result = run_cli("seeds", "check", cwd=target)
    assert result.returncode == 0  # an empty file is valid, just empty
    assert "0 valid seed(s)" in result.stdout


# --- a template made for the user's project (issue #12) ---

SQL_SEEDS = REPO / "tests" / "domains" / "sql" / "seeds.jsonl"
DEMO_WORDS = ("customer-support", "support channels", "freelancer", "shop owner", "accountant", "billing", "frustrated")


def invoke(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(app, list(args), input=stdin)


def test_init_writes_a_neutral_template_and_the_description_and_says_what_to_adapt(tmp_path: Path) -> None:
    result = invoke("init", str(tmp_path / "p"), "--description", "A Python helper for data engineers.")
    assert result.exit_code == 0, result.output
    assert "prompts/generate.jinja" in result.output and "template check" in result.output
    config = load_config(tmp_path / "p" / "synthgate.toml")
    assert config.project.description == "A Python helper for data engineers."
    for written in ("prompts/generate.jinja", "seeds/README.md"):
        text = (tmp_path / "p" / written).read_text()
        assert not [word for word in DEMO_WORDS if word in text], written


def test_init_asks_for_the_description_only_in_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # CliRunner's input is not a terminal: no question, no waiting, an empty description and a hint where to set it.
    result = invoke("init", str(tmp_path / "piped"), stdin="ignored\n")
    assert result.exit_code == 0 and "Enter to skip" not in result.output
    assert load_config(tmp_path / "piped" / "synthgate.toml").project.description == ""
    assert "[project] description" in result.output
    monkeypatch.setattr(init_cmd, "stdin_is_terminal", lambda: True)
    result = invoke("init", str(tmp_path / "tty"), stdin="A shell tutor.\n")
    assert result.exit_code == 0 and "Enter to skip" in result.output
    assert load_config(tmp_path / "tty" / "synthgate.toml").project.description == "A shell tutor."


def sql_project(tmp_path: Path) -> Path:
    root = tmp_path / "sql"
    init_project(root, description="An SQL tutor for analysts.")
    shutil.copyfile(SQL_SEEDS, root / "seeds" / "seeds.jsonl")
    return root


def test_facts_follow_the_seeds() -> None:
    lines = [json.loads(line) for line in SQL_SEEDS.read_text().splitlines()]
    seeds = [Example.model_validate({key: value for key, value in line.items() if key != "verified_by"}) for line in lines]
    facts = SeedFacts.of(seeds)
    assert facts.seeds == 22 and facts.code_languages == ("sql",)
    assert facts.code_share == round(19 / 22, 3)  # the three out-of-scope declines hold no code
    assert facts.multi_turn_share == round(3 / 22, 3) and facts.edge_share == round(6 / 22, 3)
    assert not facts.uses_markdown
    assert facts.tags[:1] == (("aggregation", 4),) and "scope" in facts.tag_names
    prose = SeedFacts.of(
        [Example.model_validate({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "one two three"}]})]
    )
    assert (prose.uses_code, prose.answer_words_median, prose.tags) == (False, 3, ())
    assert SeedFacts.of([]).seeds == 0


def test_markup_shares_of_a_large_seed_set_are_estimated_from_a_bounded_sample() -> None:
    def seed(i: int) -> Example:
        answer = f"Steps for case {i}:\n\n- open it\n- close it" if i % 4 == 0 else f"Plain answer {i}: rename it to `snake__case`."
        return Example.model_validate({"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": answer}]})

    facts = SeedFacts.of([seed(i) for i in range(3 * MARKUP_SAMPLE + 7)])
    assert facts.lists_share == pytest.approx(0.25, abs=0.03)  # 2,000 of 6,007 drawn: sd of the estimate ~0.008
    # "__" inside inline code makes every seed a candidate (so the sample is drawn) but is not bold.
    assert facts.bold_share == 0 and facts.headings_share == 0 and facts.code_share == 0


def test_template_check_renders_the_prompt_from_the_seeds_facts(tmp_path: Path) -> None:
    root = sql_project(tmp_path)
    result = invoke("--project", str(root), "template", "check")
    assert result.exit_code == 0, result.output
    assert "86% (sql)" in result.output  # the facts table
    assert "An SQL tutor for analysts." in result.output
    assert "fenced code blocks marked with the language `sql`" in result.output
    # The demo's support seeds: no code, so the same template asks for none.
    shutil.copyfile(REPO / "seeds" / "support.jsonl", root / "seeds" / "seeds.jsonl")
    prose = invoke("--project", str(root), "template", "check")
    assert prose.exit_code == 0 and "Do not use code blocks" in prose.output and "language `sql`" not in prose.output


def test_template_check_names_the_file_and_line_of_a_template_error(tmp_path: Path) -> None:
    root = sql_project(tmp_path)
    (root / "prompts" / "broken.jinja").write_text("{% block user %}\n{{ facts.no_such_fact }}\n{% endblock %}\n")
    result = invoke("--project", str(root), "template", "check", "--template", "prompts/broken.jinja")
    # main() prints a UserError as one `file:line` message with its fix and exits 2.
    error = result.exception
    assert isinstance(error, UserError) and error.exit_code == 2
    assert "broken.jinja:2" in error.render() and "no_such_fact" in error.render()


def test_help_and_hints_carry_no_demo_words(tmp_path: Path) -> None:
    for command in (["generate", "--help"], ["review", "--help"], ["init", "--help"]):
        text = invoke(*command).output
        assert "billing" not in text and "frustrated" not in text, command
    root = tmp_path / "p"
    init_project(root)
    lines = [
        {"tags": ["joins"], "messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"answer {i}"}]}
        for i in range(3)
    ]
    lines.append({"messages": [{"role": "user", "content": "untagged"}, {"role": "assistant", "content": "an answer"}]})
    (root / "seeds" / "seeds.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    check = invoke("--project", str(root), "seeds", "check")
    hint = next(line for line in check.output.splitlines() if "no category tag" in line)
    assert '"tags": ["joins"]' in hint and "billing" not in hint
    (root / "seeds" / "seeds.jsonl").write_text(json.dumps(lines[-1]) + "\n")
    hint = next(line for line in invoke("--project", str(root), "seeds", "check").output.splitlines() if "no category tag" in line)
    assert '"tags": ["<topic>"]' in hint
