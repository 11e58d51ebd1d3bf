"""CandidateChecker: holds the reference sets (seeds, holdout, earlier candidates) and checks new candidates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlmodel import Session, select

from generator.checks.result import CheckResult
from generator.config import ChecksSection
from generator.examples import Message, structural_problems
from generator.project import Project
from generator.similarity import normalized_key
from generator.store.models import Candidate, SeedRecord


class CandidateChecker:
    """Build once per job (it indexes the reference sets), then call `check` for each new candidate.

    `check` also remembers the candidate, so a later identical candidate is a duplicate of it.
    Give it only candidates that are not stored yet.
    """

    def __init__(self, *, config: ChecksSection, seeds: Sequence[tuple[str, list[Message]]], earlier: Sequence[tuple[int, list[Message]]]) -> None:
        self.config = config
        self._seen: dict[str, str] = {}
        for seed_id, messages in seeds:
            self._seen.setdefault(normalized_key(messages), f"seed:{seed_id}")
        for candidate_id, messages in earlier:
            self._seen.setdefault(normalized_key(messages), f"candidate:{candidate_id}")

    @classmethod
    def from_store(cls, session: Session, *, project: Project) -> CandidateChecker:
        """A checker over the project's synced seeds, its holdout set and every stored candidate."""
        seeds = [(row.id, _messages(row.messages)) for row in session.exec(select(SeedRecord))]
        earlier = [(row.id, _messages(row.messages)) for row in session.exec(select(Candidate))]
        return cls(config=project.config.checks, seeds=seeds, earlier=earlier)

    def check(self, messages: list[Message], *, key: str) -> CheckResult:
        """Check one new candidate; `key` names it for later matches (e.g. its source_key)."""
        problems = structural_problems(messages)
        if problems:
            return CheckResult(status="filtered", filter_reason="structural defect", filter_match="; ".join(problems))
        normal = normalized_key(messages)
        original = self._seen.setdefault(normal, key)
        if original != key:
            return CheckResult(status="filtered", filter_reason="exact duplicate", filter_match=original)
        return CheckResult()


def _messages(raw: list[dict[str, Any]]) -> list[Message]:
    return [Message(**m) for m in raw]
