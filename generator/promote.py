"""`promote`: append accepted examples to the seed pool, so the next generation round grows from a larger verified baseline."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError
from sqlmodel import Session

from generator.examples import Example, describe_validation_error
from generator.export.selection import PROOFS_UNCHECKED, Refusal, iter_accepted, proof_check
from generator.export.targets import seed_pattern_matching
from generator.export.writer import AtomicFile
from generator.project import Project
from generator.seeds import load_project_seeds
from generator.similarity import normalized_key


@dataclass
class PromoteReport:
    target: Path
    added: int = 0
    already_seeds: int = 0
    invalid: dict[str, str] = field(default_factory=dict)  # candidate -> why it cannot be a seed
    refused: list[Refusal] = field(default_factory=list)  # accepted by their decisions, refused by the gate
    outside_seed_paths: bool = False
    notes: list[str] = field(default_factory=list)  # what the user must still know (e.g. proofs not checked here)


def promote_accepted(session: Session, *, project: Project, target: Path, tags: Iterable[str] = ()) -> PromoteReport:
    """Append every accepted example not yet in the seed pool to `target`, with its reviewer as `verified_by`.

    An example is already in the pool when a seed has the same conversation (ignoring case and
    whitespace, the rule `seeds check` uses for exact duplicates), so promoting twice adds nothing.
    The file is rewritten atomically: it holds all of the new lines or none.
    """
    report = PromoteReport(target=target, outside_seed_paths=seed_pattern_matching(project, target) is None)
    # Appending to a broken seed file would hide its error behind new lines: loading stops on one.
    pool = load_project_seeds(project, also=[target] if target.is_file() else [])
    known = {normalized_key(seed.example.messages) for seed in pool.seeds}
    known_ids = {seed.id for seed in pool.seeds}
    output = AtomicFile(target, create_folder=True)
    try:
        if target.is_file():
            existing = target.read_bytes()
            output.handle.write(existing if not existing or existing.endswith(b"\n") else existing + b"\n")
        proofs = proof_check(session)
        if proofs.unchecked:
            report.notes.append(PROOFS_UNCHECKED)
        for item in iter_accepted(session, tags=tags, on_refusal=report.refused.append, proofs=proofs):
            seed_id = f"promoted-{item.content_hash[:12]}"
            try:
                example = Example.model_validate({"messages": item.messages, "tags": item.tags, "id": seed_id})
            except ValidationError as exc:
                report.invalid[f"candidate:{item.candidate_id}"] = describe_validation_error(exc)
                continue
            key = normalized_key(example.messages)
            if key in known or seed_id in known_ids:
                report.already_seeds += 1
                continue
            known.add(key)
            known_ids.add(seed_id)
            record = {"id": seed_id, "tags": example.tags, "verified_by": item.reviewer, "messages": example.messages_as_dicts()}
            output.handle.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
            report.added += 1
    except BaseException:
        output.discard()
        raise
    if report.added:
        output.commit()
    else:
        output.discard()
    return report
