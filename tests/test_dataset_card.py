"""The dataset card an export writes: Hugging Face front matter and a summary made from the manifest, never over someone else's file."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML, through the dev extra's datasets
from sqlalchemy import Engine

from generator.errors import UserError
from generator.export.card import CARD_MARK
from generator.export.manifest import manifest_path
from tests.test_export import add, chat, decide, export


def _front_matter(card: Path) -> Any:
    text = card.read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def _reviewed(engine: Engine) -> None:
    for i, candidate in enumerate(add(engine, *(chat(i) for i in range(10)), tags=["billing", "edge:ambiguous"])):
        decide(engine, candidate, "accept", reviewer="ann" if i % 2 else "bob")


def test_export_writes_a_card_beside_the_files_made_from_the_manifest(engine: Engine, tmp_path: Path) -> None:
    _reviewed(engine)
    out = tmp_path / "train.jsonl"
    report = export(engine, out, val_fraction=0.2)
    card = tmp_path / "README.md"
    assert report.card == card.resolve()
    front = _front_matter(card)
    assert "license" not in front  # unknown: a reader must add it, synthgate cannot guess
    assert front["task_categories"] == ["text-generation"] and front["size_categories"] == ["n<1K"]
    assert front["configs"] == [
        {
            "config_name": "default",
            "data_files": [{"split": "train", "path": "train.jsonl"}, {"split": "validation", "path": "train.val.jsonl"}],
        }
    ]
    text = card.read_text()
    assert hashlib.sha256(manifest_path(out).read_bytes()).hexdigest() in text
    assert "| ann | 5 |" in text and "| bob | 5 |" in text
    assert "| edge:ambiguous | 10 |" in text and "| billing | 10 |" in text


def test_a_readme_synthgate_did_not_write_is_left_alone(engine: Engine, tmp_path: Path) -> None:
    _reviewed(engine)
    theirs = tmp_path / "README.md"
    theirs.write_text("# my project\n")
    report = export(engine, tmp_path / "train.jsonl", force=True)
    assert theirs.read_text() == "# my project\n" and report.card is None
    assert any("README.md is not a dataset card synthgate wrote" in note for note in report.notes)
    with pytest.raises(UserError, match="not a dataset card synthgate wrote"):
        export(engine, tmp_path / "again.jsonl", card=theirs)
    assert theirs.read_text() == "# my project\n" and not (tmp_path / "again.jsonl").exists()


def test_a_card_synthgate_wrote_is_replaced_and_one_can_go_elsewhere(engine: Engine, tmp_path: Path) -> None:
    _reviewed(engine)
    export(engine, tmp_path / "train.jsonl")
    first = (tmp_path / "README.md").read_text()
    (extra,) = add(engine, chat(20))
    decide(engine, extra, "accept")
    export(engine, tmp_path / "train.jsonl")
    assert (tmp_path / "README.md").read_text() != first and CARD_MARK in first
    (tmp_path / "cards").mkdir()
    export(engine, tmp_path / "train.jsonl", card=tmp_path / "cards" / "card.md")
    assert _front_matter(tmp_path / "cards" / "card.md")["configs"][0]["data_files"] == [{"split": "train", "path": "../train.jsonl"}]


def test_untrusted_names_stay_text_in_the_card(engine: Engine, tmp_path: Path) -> None:
    (candidate,) = add(engine, chat(0))
    decide(engine, candidate, "accept", reviewer="eve [x](javascript:alert) <b>\x1b[31m")
    export(engine, tmp_path / "t.jsonl")
    text = (tmp_path / "README.md").read_text()
    assert "\x1b" not in text and "](javascript" not in text and "<b>" not in text
    assert r"eve \[x\]\(javascript:alert\) \<b\>" in text
