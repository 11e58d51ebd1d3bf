"""Preference exports (trl-dpo, trl-kto): every human decision that belongs in them, only as the label a human gave it, and verify re-proves them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from generator.export.formats import FORMATS
from generator.export.manifest import manifest_path, read_manifest_header
from generator.store.db import write_session
from generator.store.models import Candidate
from tests.test_export import add, chat, decide, entries, export, lines, undo
from tests.test_verify import problems, verify

CORRECTED = "a better answer"


@pytest.fixture
def reviewed(engine: Engine) -> dict[str, int]:
    """One candidate accepted, one corrected, one rejected, one filtered, one pending, one rejected then undone."""
    accepted, edited, rejected, filtered, _pending, undone = add(engine, *(chat(i) for i in range(6)))
    decide(engine, accepted, "accept")
    decide(engine, edited, "edit", messages=chat(1, answer=CORRECTED))
    decide(engine, rejected, "reject", reasons=["off-topic", "too long"])
    decide(engine, undone, "reject")
    undo(engine)
    with write_session(engine) as session:
        row = session.get(Candidate, filtered)
        assert row is not None
        row.status = "filtered"  # a machine check removed it: never a human decision
        session.add(row)
    return {"accepted": accepted, "edited": edited, "rejected": rejected, "filtered": filtered}


def _prompt(i: int) -> list[dict[str, str]]:
    return chat(i)[:-1]


def _answer(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def test_trl_dpo_pairs_the_correction_over_the_original_in_conversational_form(
    engine: Engine, reviewed: dict[str, int], tmp_path: Path
) -> None:
    out = tmp_path / "dpo.jsonl"
    export(engine, out, format="trl-dpo")
    assert lines(out) == [{"prompt": _prompt(1), "chosen": _answer(CORRECTED), "rejected": _answer("answer 1.0")}]
    assert FORMATS["trl-dpo"].problems(lines(out)[0]) == []
    assert verify(engine, out).ok


def test_trl_kto_labels_every_human_decision_and_nothing_else(engine: Engine, reviewed: dict[str, int], tmp_path: Path) -> None:
    out = tmp_path / "kto.jsonl"
    report = export(engine, out, format="trl-kto")
    assert lines(out) == [
        {"prompt": _prompt(0), "completion": _answer("answer 0.0"), "label": True},
        {"prompt": _prompt(1), "completion": _answer(CORRECTED), "label": True},
        {"prompt": _prompt(1), "completion": _answer("answer 1.0"), "label": False},
        {"prompt": _prompt(2), "completion": _answer("answer 2.0"), "label": False},
    ]
    # The filtered, pending and undone candidates appear nowhere; the rejected one never as a positive.
    listed = [(e["candidate_id"], e["label"], e["action"]) for e in entries(out)]
    assert listed == [
        (reviewed["accepted"], True, "accept"),
        (reviewed["edited"], True, "edit"),
        (reviewed["edited"], False, "edit"),
        (reviewed["rejected"], False, "reject"),
    ]
    assert entries(out)[3]["reasons"] == ["off-topic", "too long"]  # the reject's reasons, in the manifest only
    assert report.counts["rejected"] == 1 and read_manifest_header(manifest_path(out))["counts"]["rejected"] == 1
    assert verify(engine, out).ok


def test_default_formats_never_hold_a_rejected_candidate(engine: Engine, reviewed: dict[str, int], tmp_path: Path) -> None:
    for name in ("openai", "trl", "sharegpt", "openai-dpo", "trl-dpo"):
        out = tmp_path / f"{name}.jsonl"
        export(engine, out, format=name)
        assert reviewed["rejected"] not in {e["candidate_id"] for e in entries(out)}, name
        assert "answer 2.0" not in out.read_text(), name


def test_a_negative_flipped_to_positive_by_hand_fails_verify(engine: Engine, reviewed: dict[str, int], tmp_path: Path) -> None:
    out = tmp_path / "kto.jsonl"
    export(engine, out, format="trl-kto")
    text = out.read_text().splitlines()
    text[3] = text[3].replace('"label":false', '"label":true')
    out.write_text("\n".join(text) + "\n")
    assert problems(verify(engine, out)) == [("kto.jsonl", 4, "edited after export: it differs from the line exported here")]
    # With the manifest forged to match, the rejecting decision still refuses the positive label.
    manifest = json.loads(manifest_path(out).read_text())
    import hashlib

    manifest["lines"][3].update(label=True, sha256=hashlib.sha256(text[3].encode()).hexdigest())
    manifest["files"][0]["sha256"] = hashlib.sha256(out.read_bytes()).hexdigest()
    manifest_path(out).write_text(json.dumps(manifest))
    (found,) = problems(verify(engine, out))
    assert found[1] == 4 and "'reject', not an acceptance" in found[2]


def test_a_rejection_undone_after_export_fails_its_negative_line(engine: Engine, reviewed: dict[str, int], tmp_path: Path) -> None:
    out = tmp_path / "kto.jsonl"
    export(engine, out, format="trl-kto")
    undo(engine)  # ann's last live decision: the rejection
    (found,) = problems(verify(engine, out))
    assert found[:2] == ("kto.jsonl", 4) and "undone" in found[2]


def _load(path: Path) -> Any:
    datasets = pytest.importorskip("datasets")
    return datasets.load_dataset("json", data_files=str(path), split="train")


def test_every_format_loads_with_datasets_with_the_columns_trl_reads(engine: Engine, reviewed: dict[str, int], tmp_path: Path) -> None:
    message = {"role": "string", "content": "string"}
    expected = {
        "openai": {"messages": [message]},
        "trl": {"messages": [message]},
        "trl-dpo": {"prompt": [message], "chosen": [message], "rejected": [message]},
        "trl-kto": {"prompt": [message], "completion": [message], "label": "bool"},
        "openai-dpo": {"input": {"messages": [message]}, "preferred_output": [message], "non_preferred_output": [message]},
        "sharegpt": {"conversations": [{"from": "string", "value": "string"}]},
        "alpaca": {"instruction": "string", "input": "string", "output": "string", "system": "string"},
    }
    assert set(expected) == set(FORMATS)
    for name, columns in expected.items():
        out = tmp_path / f"{name}.jsonl"
        export(engine, out, format=name)
        loaded = _load(out)
        assert _types(loaded.features) == columns, name
        assert loaded.num_rows == len(lines(out))


def _types(features: Any) -> Any:
    """A datasets Features tree as plain types: a List of a struct as [struct], a Value as its dtype."""
    if isinstance(features, dict):
        return {k: _types(v) for k, v in features.items()}
    feature = getattr(features, "feature", None)
    if feature is not None:
        return [_types(feature)]
    if isinstance(features, list):
        return [_types(features[0])]
    return features.dtype


def test_the_export_summary_counts_in_the_format_s_own_unit(engine: Engine, reviewed: dict[str, int], tmp_path: Path) -> None:
    from generator.cli.export_cmd import export_summary

    kto = export(engine, tmp_path / "kto.jsonl", format="trl-kto").counts
    assert export_summary("trl-kto", kto) == (
        "Exported 4 labelled line(s) as trl-kto: 2 labelled true (1 accepted, 1 corrected, 0 seed(s)), "
        "2 labelled false (1 rejected, 1 model answer(s) a reviewer corrected)."
    )
    dpo = export(engine, tmp_path / "dpo.jsonl", format="trl-dpo").counts
    assert export_summary("trl-dpo", dpo) == "Exported 1 preference pair(s) as trl-dpo: 1 from corrections, 0 from variant groups."
    sft = export(engine, tmp_path / "sft.jsonl", format="openai").counts
    assert export_summary("openai", sft) == "Exported 2 example(s) as openai: 1 accepted, 1 edited, 0 seed(s)."
