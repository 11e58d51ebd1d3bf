"""What the progress header shows: queue progress (decided / left) and this session's pace."""

from __future__ import annotations

from dataclasses import dataclass, field

from generator.store.models import ACCEPTING_ACTIONS
from generator.store.queue import DecisionView


@dataclass
class SessionTally:
    """Decisions made in this sitting, kept from the decisions the app itself recorded.

    An undo only counts against the session if it takes back a decision made in it.
    """

    started_at: float
    actions: dict[int, str] = field(default_factory=dict)  # decision id -> action, live ones only

    def record(self, decision: DecisionView) -> None:
        if decision.action == "undo":
            self.actions.pop(decision.undoes_id or 0, None)
        else:
            self.actions[decision.id] = decision.action

    @property
    def decided(self) -> int:
        return len(self.actions)

    @property
    def accepted(self) -> int:
        return sum(1 for action in self.actions.values() if action in ACCEPTING_ACTIONS)

    @property
    def rejected(self) -> int:
        return sum(1 for action in self.actions.values() if action == "reject")

    @property
    def edited(self) -> int:
        return sum(1 for action in self.actions.values() if action == "edit")

    def seconds_per_decision(self, now: float) -> float | None:
        return (now - self.started_at) / self.decided if self.decided else None

    def per_minute(self, now: float) -> float | None:
        minutes = (now - self.started_at) / 60
        return self.decided / minutes if self.decided and minutes > 0 else None

    def acceptance_rate(self) -> float | None:
        return self.accepted / self.decided if self.decided else None


DECIDED_STATUSES = ("accepted", "rejected")


@dataclass
class QueueProgress:
    """Decided and left for the current filters: counted in the background, then kept up to date locally.

    A local change moves one candidate between statuses, and only if it matches the filters (an undo
    can bring back a candidate decided under other filters). `version` counts local changes: a count
    that was running while one happened may or may not include it, so it is thrown away and redone.
    """

    decided: int | None = None  # None until the first count arrives
    left: int | None = None
    version: int = 0

    def set_counts(self, counts: dict[str, int]) -> None:
        self.decided = sum(counts[status] for status in DECIDED_STATUSES)
        self.left = counts["pending"]

    def move(self, before: str | None, after: str | None) -> None:
        """One candidate went from status `before` to `after` (None: it does not match the filters)."""
        self.version += 1
        if self.decided is None or self.left is None:
            return
        self.decided += (after in DECIDED_STATUSES) - (before in DECIDED_STATUSES)
        self.left += (after == "pending") - (before == "pending")

    def forget(self) -> None:
        """The numbers are no longer known (e.g. after an undo): show "counting…" until a new count arrives."""
        self.version += 1
        self.decided = self.left = None
