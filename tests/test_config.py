"""Config errors name the file, the line and the fix, and exit 2 without a traceback."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest

from generator.config import Config, load_config
from generator.errors import UserError
from generator.init_project import render_config
from tests.conftest import run_cli


def config_error(tmp_path: Path, text: str) -> UserError:
    path = tmp_path / "synthgate.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError) as info:
        load_config(path)
    return info.value


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    error = config_error(tmp_path, '[project]\nname = "x"\n\n[generate]\nmodel = "m"\nconcurency = 4\n')
    assert (error.line, error.file) == (6, str(tmp_path / "synthgate.toml"))
    assert "unknown key 'generate.concurency'" in error.message
    assert error.fix == "did you mean 'concurrency'?"


def test_unknown_section_lists_known_ones(tmp_path: Path) -> None:
    error = config_error(tmp_path, "[genrate]\nmodel = 'm'\n")
    assert error.line == 1 and "did you mean 'generate'" in (error.fix or "")


def test_wrong_type_names_key_line_and_expected_type(tmp_path: Path) -> None:
    error = config_error(tmp_path, "[checks]\n\nnear_duplicate_threshold = 'high'\n")
    assert error.line == 3
    assert "'checks.near_duplicate_threshold'" in error.message and "'high'" in error.message
    assert "float" in (error.fix or "")


def test_out_of_range_value(tmp_path: Path) -> None:
    error = config_error(tmp_path, "[generate]\nconcurrency = 0\n")
    assert error.line == 2 and "greater than or equal to 1" in error.message


def test_pricing_table_keys_are_checked(tmp_path: Path) -> None:
    error = config_error(tmp_path, '[pricing."my-model"]\ninput_per_mtok = 1.0\noutput_per_mtk = 2.0\n')
    assert error.line == 3 and error.fix == "did you mean 'output_per_mtok'?"


def test_toml_syntax_error_has_its_line(tmp_path: Path) -> None:
    error = config_error(tmp_path, "[generate]\nmodel = \n")
    assert error.line == 2 and "not valid TOML" in error.message


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="config file not found"):
        load_config(tmp_path / "absent.toml")


def test_scaffold_config_is_valid_and_documents_every_key() -> None:
    text = render_config("demo")
    assert Config.model_validate(tomllib.loads(text)).project.name == "demo"
    for section, field in Config.model_fields.items():
        if section == "pricing":
            continue
        for key in field.annotation.model_fields:  # type: ignore[union-attr]
            assert f"# {key} =" in text or f"{key} =" in text, f"{section}.{key} missing from the scaffold"


def test_cli_config_error_exits_2_without_traceback(project_dir: Path) -> None:
    config = project_dir / "synthgate.toml"
    config.write_text("[project]\nname = 'p'\n\n[review]\nreject_reasons = 'wrong'\n")
    result = run_cli("stats", cwd=project_dir)
    assert result.returncode == 2
    assert "synthgate.toml:5:" in result.stderr and "review.reject_reasons" in result.stderr
    assert "Traceback" not in result.stderr


def test_outside_a_project_says_how_to_start(tmp_path: Path) -> None:
    result = run_cli("stats", cwd=tmp_path)
    assert result.returncode == 2
    assert "not inside a synthgate project" in result.stderr and "synthgate init" in result.stderr


def test_project_is_found_from_a_subfolder_and_by_flag(project_dir: Path, tmp_path: Path) -> None:
    sub = project_dir / "seeds"
    assert run_cli("stats", cwd=sub).returncode == 0
    assert (project_dir / ".synthgate" / "queue.db").exists()
    assert run_cli("--project", str(project_dir), "stats", "--json", cwd=tmp_path).returncode == 0


def test_db_flag_and_env_choose_the_store(project_dir: Path, tmp_path: Path) -> None:
    flagged = tmp_path / "flag.db"
    assert run_cli("--db", f"sqlite:///{flagged}", "stats", cwd=project_dir).returncode == 0
    env_db = tmp_path / "env.db"
    assert run_cli("stats", cwd=project_dir, env={"SYNTHGATE_DB": f"sqlite:///{env_db}"}).returncode == 0
    assert flagged.exists() and env_db.exists()
    assert not (project_dir / ".synthgate" / "queue.db").exists()


def test_bad_database_url_is_a_user_error(project_dir: Path) -> None:
    result = run_cli("--db", "not a url", "stats", cwd=project_dir)
    assert result.returncode == 2 and "not a database URL" in result.stderr


# Absurd limits: every one is refused with the file, the line and the allowed range (issue 11, point 6).
@pytest.mark.parametrize(
    ("section", "key", "value", "allowed"),
    [
        ("review", "lease_seconds", "9223372036854775807", "from 10 to 3600"),
        ("generate", "max_tokens", "9223372036854775807", "from 1 to 1000000"),
        ("generate", "timeout", "inf", "more than 0 and at most 3600"),
        ("generate", "timeout", "nan", "more than 0 and at most 3600"),
        ("generate", "timeout", "-1.0", "more than 0 and at most 3600"),
        ("generate", "count", "9223372036854775807", "from 1 to 1000000000"),
        ("generate", "concurrency", "-3", "from 1 to 1000"),
        ("generate", "per_request", "9223372036854775807", "from 1 to 100"),
        ("generate", "few_shot", "9223372036854775807", "from 0 to 100"),
        ("generate", "rpm", "9223372036854775807", "from 1 to 1000000"),
        ("generate", "tpm", "-1", "from 1 to 10000000000"),
        ("generate", "max_cost", "inf", "from 0 to 1000000"),
        ("generate", "max_cost", "nan", "from 0 to 1000000"),
        ("generate", "max_retries", "9223372036854775807", "from 0 to 100"),
    ],
)
def test_absurd_limits_are_refused_with_their_line_and_allowed_range(
    tmp_path: Path, section: str, key: str, value: str, allowed: str
) -> None:
    error = config_error(tmp_path, f'[project]\nname = "x"\n\n[{section}]\n{key} = {value}\n')
    assert (error.file, error.line) == (str(tmp_path / "synthgate.toml"), 5)
    assert f"'{section}.{key}'" in error.message
    assert allowed in (error.fix or "")


def test_sane_limits_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "synthgate.toml"
    path.write_text("[generate]\ncount = 100000000\ntimeout = 3600\nmax_tokens = 200000\nmax_cost = 0\n[review]\nlease_seconds = 10\n")
    config = load_config(path)
    assert (config.generate.count, config.generate.timeout, config.review.lease_seconds) == (100_000_000, 3600.0, 10)


def test_leases_default_to_a_minute() -> None:
    assert Config().review.lease_seconds == 60


def test_toml_nested_50k_deep_is_a_line_not_a_recursion_error(tmp_path: Path) -> None:
    error = config_error(tmp_path, '[project]\nname = "x"\nx = ' + "[" * 50_000 + "]" * 50_000 + "\n")
    assert error.line == 3 and "nested too deeply" in error.message


def test_a_config_path_that_is_a_folder_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "synthgate.toml").mkdir()
    with pytest.raises(UserError, match="cannot read config file"):
        load_config(tmp_path / "synthgate.toml")


@pytest.mark.parametrize(
    ("flag", "value", "allowed"),
    [
        ("--count", "9223372036854775807", "from 1 to 1000000000"),
        ("--max-tokens", "9223372036854775807", "from 1 to 1000000"),
        ("--max-cost", "inf", "from 0 to 1000000"),
        ("--max-cost", "nan", "from 0 to 1000000"),
        ("--max-cost", "-1", "from 0 to 1000000"),
        ("--concurrency", "0", "from 1 to 1000"),
        ("--per-request", "-5", "from 1 to 100"),
        ("--few-shot", "1000000", "from 0 to 100"),
        ("--rpm", "0", "from 1 to 1000000"),
        ("--tpm", "99999999999999999999", "from 1 to 10000000000"),
        ("--temperature", "nan", "from 0 to 2"),
        ("--seed", "99999999999999999999", "less than 9223372036854775808"),
    ],
)
def test_absurd_generate_flags_are_refused_naming_the_flag_and_range(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], flag: str, value: str, allowed: str
) -> None:
    from generator.cli.app import main

    monkeypatch.setattr(sys, "argv", ["synthgate", "--project", str(project_dir), "generate", "--dry-run", flag, value])
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    assert err.startswith(f"error: {flag}: ") and allowed in err
