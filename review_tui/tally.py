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

    def per_minute(self, now: float) -> float | None:
        minutes = (now - self.started_at) / 60
        return self.decided / minutes if self.decided and minutes > 0 else None

    def acceptance_rate(self) -> float | None:
        return self.accepted / self.decided if self.decided else None


@dataclass
class QueueProgress:
    """Decided and left for the current filters: counted in the background, then kept up to date locally."""

    decided: int | None = None  # None until the first count arrives
    left: int | None = None

    def set_counts(self, counts: dict[str, int]) -> None:
        self.decided = counts["accepted"] + counts["rejected"]
        self.left = counts["pending"]

    def record(self, decision: DecisionView) -> None:
        if self.decided is None or self.left is None:
            return
        step = -1 if decision.action == "undo" else 1
        self.decided += step
        self.left -= step
