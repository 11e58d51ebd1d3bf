"""What makes this `generate` a new (paid) run: the inputs that changed since the store's latest run, in words."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from generator.store.models import Run

RECENT_RUNS = 20  # runs looked at to find the latest generation run (variant runs are journaled as runs too)

# Identity keys in the words a user knows them by (the flag or config key that sets them).
_PARAMETERS = {
    "count": "-n",
    "per_request": "--per-request",
    "few_shot": "--few-shot",
    "temperature": "--temperature",
    "max_tokens": "--max-tokens",
    "tag": "--tag",
    "sampling_seed": "--seed",
}
_MODEL = {"provider": "provider", "model": "model", "base_url": "base URL", "structured_output": "structured output"}
_GROUPS = ("seeds", "template", "model", "parameters")


@dataclass(frozen=True)
class RunChange:
    previous_run_id: str
    previous_at: datetime
    changed: list[str]  # e.g. "seeds changed: 65 -> 70 verified examples"
    unchanged: list[str]  # of seeds, template, model, parameters
    requests: int  # requests the new run sends at most (identical ones stored before come from the cache)

    def lines(self, run_id: str, *, cached: bool) -> list[str]:
        unchanged = f"; {', '.join(self.unchanged)} unchanged" if self.unchanged else ""
        cache = " (identical requests of earlier runs come from the cache, free)" if cached else ""
        return [
            f"New run {run_id}: inputs changed since run {self.previous_run_id} ({self.previous_at:%Y-%m-%d %H:%M}):"
            f" {'; '.join(self.changed)}{unchanged}.",
            f"It will send up to {self.requests} request(s){cache}. The earlier run stays as it is (rerun it with its own inputs).",
        ]

    def as_json(self) -> dict[str, Any]:
        return {
            "previous_run_id": self.previous_run_id,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "requests": self.requests,
        }


def compare_with_latest(
    session: Session, *, run_id: str, identity: dict[str, Any], template: str, seed_count: int, requests: int
) -> RunChange | None:
    """None when the run exists (it resumes, or is complete) or no generation run came before it."""
    if session.get(Run, run_id) is not None:
        return None
    recent = session.exec(select(Run).order_by(col(Run.updated_at).desc()).limit(RECENT_RUNS)).all()
    latest = next((run for run in recent if "seeds_hash" in (run.config or {})), None)
    if latest is None:
        return None
    before = latest.config
    changed: list[str] = []
    touched: set[str] = set()
    for key in sorted((set(identity) | set(before)) - {"template", "rejection_reasons", "seed_count"}):
        old, new = before.get(key, "" if key == "description" else None), identity.get(key, "" if key == "description" else None)
        if old == new:
            continue
        group, words = _describe(key, old, new, before=before, seed_count=seed_count)
        touched.add(group)
        changed.append(words)
    if before.get("template") != template:
        touched.add("template")
        changed = [w for w in changed if not w.startswith("template")] + [f"template: {before.get('template')} -> {template}"]
    if not changed:  # the same inputs under another run id: a synthgate upgrade changed how runs are identified
        changed = ["the run's identity (a synthgate upgrade)"]
    return RunChange(latest.id, latest.updated_at, changed, [g for g in _GROUPS if g not in touched], requests)


def _shown(value: Any) -> str:
    return "(default)" if value is None else str(value)  # an unset --base-url is the provider's default, not "None"


def _describe(key: str, old: Any, new: Any, *, before: dict[str, Any], seed_count: int) -> tuple[str, str]:
    """(group, words) for one changed identity key."""
    old, new = _shown(old), _shown(new)
    if key == "seeds_hash":
        previous = before.get("seed_count")
        if previous is None:
            return "seeds", f"seeds changed (now {seed_count} verified examples)"
        if previous == seed_count:
            return "seeds", f"seeds changed: {seed_count} verified examples, edited"
        return "seeds", f"seeds changed: {previous} -> {seed_count} verified examples"
    if key == "template_hash":
        return "template", f"template changed ({before.get('template', 'the template')} edited)"
    if key in _MODEL:
        return "model", f"{_MODEL[key]}: {old} -> {new}"
    if key in _PARAMETERS:
        return "parameters", f"{_PARAMETERS[key]}: {old} -> {new}"
    words = {
        "context_hash": "context files changed",
        "description": "project description changed",
        "replay_hash": "replay file changed",
        "schema": "the answer schema changed (a synthgate upgrade)",
    }
    return key, words.get(key, f"{key}: {old} -> {new}")
