"""Messages the queue workers post back to the UI thread (workers never touch widgets).

The review screen posts them to itself; they do not bubble up to the app.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from generator.store.queue import CandidateView, DecisionView, QueueFilter


@dataclass
class CandidateLoaded(Message, bubble=False):
    """The next candidate to show (None: nothing left for these filters), after `done` was committed."""

    candidate: CandidateView | None
    done: DecisionView | None = None  # the decision or undo just recorded, if any
    note: str | None = None  # what to tell the reviewer, e.g. "skipped #12"


@dataclass
class CandidateShown(Message, bubble=False):
    """A candidate (or the empty queue) is on screen: rendered after a refresh, keys now apply to it."""

    candidate_id: int | None


@dataclass
class QueueCounted(Message, bubble=False):
    counts: dict[str, int] | None  # None: the count failed (retried on the next tick)
    filters: QueueFilter  # what was counted


@dataclass
class QueueFailed(Message, bubble=False):
    """A queue call failed; nothing was recorded, and the candidate on screen stays."""

    error: str
    candidate_id: int | None = None  # set when this candidate is gone (decided or taken by someone else)


@dataclass
class LeaseLost(Message, bubble=False):
    """The lease on a shown candidate could not be renewed: someone else may have it now."""

    candidate_id: int


@dataclass
class NothingToUndo(Message, bubble=False):
    pass
