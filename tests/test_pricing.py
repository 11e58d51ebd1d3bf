"""Prices: the built-in table, [pricing] for other models, and "unknown price" (never a guess) for a model without one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from generator.cli import app
from generator.config import PriceSection
from generator.errors import UserError
from generator.generation.engine import Generation
from generator.generation.pricing import PriceTable
from generator.generation.progress import summary_table
from generator.generation.report import RunStats
from generator.project import Project

LOCAL = "llama-3.1-8b-instruct"
ADD_PRICE = f'unknown price (add [pricing."{LOCAL}"] to synthgate.toml)'


def dry_run(project_dir: Path, *extra: str) -> str:
    args = ["--project", str(project_dir), "generate", "--model", LOCAL, "--base-url", "http://127.0.0.1:9/v1", "--dry-run", *extra]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


def test_a_model_priced_in_the_config_is_priced_and_an_unknown_one_is_not_guessed() -> None:
    table = PriceTable({LOCAL: PriceSection(input_per_mtok=0.1, output_per_mtok=0.2)})
    assert table.price(LOCAL) == (0.1, 0.2)
    assert table.cost(LOCAL, 1_000_000, 1_000_000) == pytest.approx(0.3)
    assert PriceTable().price(LOCAL) is None
    assert PriceTable().price("gpt-4o-mini-2024-07-18") == (0.15, 0.60)  # dated names take their family's price


def test_dry_run_of_an_unknown_model_says_unknown_price_and_how_to_add_one(project_dir: Path) -> None:
    text = dry_run(project_dir)
    assert f"Estimated cost: {ADD_PRICE}." in text and "$" not in text.split("Estimated cost:")[1]
    report = json.loads(dry_run(project_dir, "--json"))
    assert report["estimated_cost_usd"] is None and report["worst_case_cost_usd"] is None

    config = project_dir / "synthgate.toml"
    config.write_text(config.read_text() + f'\n[pricing."{LOCAL}"]\ninput_per_mtok = 0.5\noutput_per_mtok = 1.5\n')
    priced = json.loads(dry_run(project_dir, "--json"))
    assert priced["estimated_cost_usd"] > 0
    assert "unknown price" not in dry_run(project_dir)


def test_a_run_of_an_unknown_model_reports_its_cost_as_unknown_not_zero() -> None:
    stats = RunStats(run_id="r1", total_requests=1, unpriced_model=LOCAL)
    assert stats.as_json()["cost_usd"] is None and stats.as_json()["run_cost_usd"] is None
    from rich.console import Console

    console = Console(width=200, record=True, markup=False)  # as the CLI's console
    console.print(summary_table(stats))
    assert ADD_PRICE in console.export_text() and "$0.0000" not in console.export_text()
    assert RunStats(run_id="r2", total_requests=1).as_json()["cost_usd"] == 0


def test_max_cost_with_an_unknown_price_is_bad_input_naming_the_fix(project_dir: Path) -> None:
    project = Project.locate(project_dir, None)
    settings = project.config.generate.model_copy(update={"model": LOCAL, "max_cost": 1.0})
    with pytest.raises(UserError) as error:
        Generation(project, settings, dry_run=True)
    assert error.value.exit_code == 2
    assert f'[pricing."{LOCAL}"]' in error.value.render()


def test_stats_names_an_unpriced_model_instead_of_a_silent_zero(tmp_path: Path) -> None:
    from generator.stats import api_cost
    from generator.store.db import open_store, write_session
    from generator.store.models import Run

    engine = open_store(f"sqlite:///{tmp_path / 'queue.db'}")
    with write_session(engine) as session:
        for run_id, provider, model in (("r1", "openai", LOCAL), ("r2", "openai", "gpt-4o-mini"), ("r3", "replay", "recorded")):
            session.add(Run(id=run_id, provider=provider, model=model, template="t", template_hash="h"))
    with write_session(engine) as session:
        assert api_cost(session, accepted=0)["unpriced_models"] == [LOCAL]  # a replay run pays nobody: not unpriced
        priced = PriceTable({LOCAL: PriceSection(input_per_mtok=0.1, output_per_mtok=0.2)})
        assert api_cost(session, accepted=0, prices=priced)["unpriced_models"] == []
    engine.dispose()
