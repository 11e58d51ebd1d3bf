"""The reference sets checks compare against: the verified seeds in the store and the holdout files named in config."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from generator.config import locate_key
from generator.errors import UserError
from generator.examples import Message
from generator.project import Project, display_path
from generator.seeds import load_seed_file
from generator.store.models import Candidate, SeedRecord

Labelled = tuple[str, list[Message]]  # a reference's name (a seed id, "eval/holdout.jsonl:7") and its conversation


def as_messages(raw: list[dict[str, Any]]) -> list[Message]:
    """Messages of a stored conversation (validated when stored: built without validating again, ~3x faster)."""
    return [Message.model_construct(role=m["role"], content=m["content"]) for m in raw]


def stored_seeds(session: Session) -> list[Labelled]:
    """The verified seeds as last synced into the store, in file order (so ties go to the earlier seed)."""
    rows = session.execute(select(col(SeedRecord.id), col(SeedRecord.messages)).order_by(col(SeedRecord.source), col(SeedRecord.line)))
    return [(seed_id, as_messages(messages)) for seed_id, messages in rows]


def stored_candidates(session: Session, *, statuses: tuple[str, ...]) -> Iterator[tuple[int, list[Message]]]:
    """Stored candidates with these statuses, oldest first."""
    rows = session.execute(
        select(col(Candidate.id), col(Candidate.messages)).where(col(Candidate.status).in_(statuses)).order_by(col(Candidate.id)),
        execution_options={"yield_per": 5000},
    )
    for candidate_id, messages in rows:
        yield candidate_id, as_messages(messages)


def stored_variant_groups(session: Session) -> dict[str, str]:
    """Every grouped candidate (generate --variants) as "candidate:<id>" -> its group: siblings never filter each other."""
    rows = session.execute(select(col(Candidate.id), col(Candidate.variant_group)).where(col(Candidate.variant_group).is_not(None)))
    return {f"candidate:{candidate_id}": group for candidate_id, group in rows}


def load_holdout(project: Project) -> list[Labelled]:
    """Every example of the holdout files in `[checks] holdout`, named "<file>:<line>".

    A missing file or a broken line stops the checks (exit 2): checking against a partial
    evaluation set would let leaks through unnoticed.
    """
    references: list[Labelled] = []
    for entry in project.config.checks.holdout:
        path = project.path(entry)
        if not path.is_file():
            config_text = project.config_path.read_text(encoding="utf-8")
            raise UserError(
                f"holdout file {entry!r} not found",
                file=project.config_path,
                line=locate_key(config_text, ["checks", "holdout"]),
                fix="correct [checks] holdout (paths are relative to the project), or create the file",
            )
        loaded = load_seed_file(path)
        loaded.raise_on_errors(project.root)
        shown = display_path(path, project.root)
        references += [(f"{shown}:{example.line}", list(example.example.messages)) for example in loaded.seeds]
    return references
