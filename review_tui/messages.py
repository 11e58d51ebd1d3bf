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
    # How `done` moved its candidate between statuses, each None when the candidate does not match the
    # filters; None as a whole when that is not known (the header's counts are then counted afresh).
    moved: tuple[str | None, str | None] | None = None


@dataclass
class CandidateShown(Message, bubble=False):
    """A candidate (or the empty queue) is on screen: rendered after a refresh, keys now apply to it."""

    candidate_id: int | None


@dataclass
class QueueCounted(Message, bubble=False):
    """Candidates per status, for the header's decided / left."""

    counts: dict[str, int] | None  # None: the count failed (retried on the next tick)
    filters: QueueFilter  # what was counted
    version: int = 0  # the header's QueueProgress.version when the count started


@dataclass
class QueueFailed(Message, bubble=False):
    """A queue call failed and recorded nothing.

    With `candidate_id`, that candidate is gone (someone else decided or took it) and the next one is
    claimed; without it (e.g. the database was locked), the shown candidate stays for another try.
    """

    error: str
    candidate_id: int | None = None


@dataclass
class LeaseLost(Message, bubble=False):
    """The lease on a shown candidate could not be renewed: someone else may have it now."""

    candidate_id: int


@dataclass
class NothingToUndo(Message, bubble=False):
    """The reviewer has no live decision left to take back."""
