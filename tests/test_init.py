"""`synthgate init` scaffolds a working project and never overwrites one."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_cli


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
