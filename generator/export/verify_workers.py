"""The decision chain walked for `verify`, in this process or in one spawned worker while this process checks the lines.

The walk recomputes every decision's hash and proof (~13 us a decision with the fingerprints
below) and learns, from the same rows, each candidate's newest decision; the line checks (~17 us
a line) need both. Measured on 1,000,000 lines (quiet machine): one process walking first, then
checking, 57.5 s; the walk in a spawned process beside the line checks, 20.2 s, and 17.7-19.6 s
since both sides were cut (the former code measured 19.8-24.9 s back to back: the machine varies,
the line checks are the limit). On a large
store the walk runs in a spawned process (the only start method every OS has) while the line
checks run here, each line's use of those facts recorded as a claim: "decision d is proven",
"candidate c's latest live decision is d". When the walk is done the claims are settled against
its facts. A walk that saw another chain head than this process (a decision saved meanwhile), or
a claim the facts do not bear out (a forged, altered or undone decision), sends verify back to
checking every line in this process against the facts, exactly as a one-process verify does: the
report of a store with a broken line is never built from a guess.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from array import array
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlmodel import Session

from generator.export.workers import PARALLEL_FROM, ChainHead, begin_snapshot
from generator.store.audit import ChainBreak, verify_chain
from generator.store.signing import SigningKey, load_key, store_identity

# latest_live's answer when the walk cannot say: the candidate's newest decision was undone, so
# its latest live one is an earlier one (rare: the store's own query answers it).
UNKNOWN = -1
FINGERPRINT = 16  # bytes of blake2b: a manifest entry forged to match a stored decision's would need a second preimage


def fingerprint(candidate_id: Any, action: Any, reviewer: Any, decided_at: Any, decision_hash: Any, content_hash: Any) -> bytes | None:
    """What a line's check reads of its decision, in 16 bytes: equal fingerprints, equal fields (None: not expressible)."""
    try:
        return hashlib.blake2b(
            orjson.dumps([candidate_id, action, reviewer, decided_at, decision_hash, content_hash]), digest_size=FINGERPRINT
        ).digest()
    except orjson.JSONEncodeError:
        return None


# Ids below this are kept in a flat array (8 bytes each), above it in a dict: a row inserted by
# hand with a huge id must not cost gigabytes.
_DENSE_IDS = 1 << 24


class IdMap:
    """int id -> int value (0: none), a flat array for the ids a store actually uses."""

    def __init__(self) -> None:
        self.dense = array("q")
        self.sparse: dict[int, int] = {}

    def get(self, key: int) -> int:
        return self.dense[key] if 0 <= key < len(self.dense) else self.sparse.get(key, 0)

    def set(self, key: int, value: int) -> None:
        if 0 <= key < _DENSE_IDS:
            if key >= len(self.dense):
                self.dense.frombytes(bytes(8 * (max(key + 1, 2 * len(self.dense)) - len(self.dense))))
            self.dense[key] = value
        else:
            self.sparse[key] = value


@dataclass
class ChainFacts:
    """What one walk over the decisions found, in one snapshot."""

    head: ChainHead  # the chain head that snapshot saw
    breaks: list[ChainBreak] = field(default_factory=list)
    proven: bytearray = field(default_factory=bytearray)  # byte d set: decision d's hash recomputes and its proof holds
    newest: IdMap = field(default_factory=IdMap)  # candidate id -> its newest non-undo decision
    undone: set[int] = field(default_factory=set)  # decisions an undo points at
    # FINGERPRINT bytes per decision id, of its stored fields (only when the lines' checks wait for them).
    fingerprints: bytearray | None = None

    def latest_live(self, candidate_id: int) -> int | None:
        """The candidate's latest live non-undo decision (what audit.latest_live_decision_id selects), None, or UNKNOWN."""
        newest = self.newest.get(candidate_id)
        if newest == 0:
            return None
        return UNKNOWN if newest in self.undone else newest

    def see(self, body: dict[str, Any], stored_hash: str) -> None:
        """One decision row, as audit.decision_body gives it."""
        decision_id, candidate_id, action, undoes_id = body["id"], body["candidate_id"], body["action"], body["undoes_id"]
        if self.fingerprints is not None and 0 <= decision_id < _DENSE_IDS:
            end = (decision_id + 1) * FINGERPRINT
            if end > len(self.fingerprints):
                self.fingerprints.extend(bytes(max(end, 2 * len(self.fingerprints)) - len(self.fingerprints)))
            # The body's timestamp always has its microseconds; created_at.isoformat(), which the
            # manifest's decided_at is, drops them when they are 0 (one isoformat less: ~1 s a million).
            decided_at = body["created_at"].replace(".000000", "", 1)
            print_ = fingerprint(candidate_id, action, body["reviewer"], decided_at, stored_hash, body["content_hash"])
            self.fingerprints[end - FINGERPRINT : end] = print_ or bytes(FINGERPRINT)
        if action == "undo":
            if undoes_id is not None:
                self.undone.add(undoes_id)
        elif action is not None and candidate_id is not None:
            self.newest.set(candidate_id, decision_id)  # the walk goes in id order: the newest so far


def walk_chain(session: Session, *, key: SigningKey | None, head: ChainHead, fingerprints: bool = False) -> ChainFacts:
    """Walk the chain in `session`'s snapshot (whose head begin_snapshot returned)."""
    facts = ChainFacts(head, fingerprints=bytearray() if fingerprints else None)
    facts.breaks = list(verify_chain(session, key=key, proven=facts.proven, seen=facts.see))
    return facts


def walk_elsewhere(session: Session, decisions: int) -> bool:
    """Whether a walk over `decisions` decisions is worth a second process (it costs a second or so to start one)."""
    url = session.get_bind().engine.url
    in_memory = url.get_backend_name() == "sqlite" and (not url.database or url.database == ":memory:" or "mode=memory" in str(url))
    return decisions >= PARALLEL_FROM and (os.cpu_count() or 1) > 1 and not in_memory


def start_walk(session: Session, *, with_key: bool) -> tuple[ProcessPoolExecutor, Future[ChainFacts]]:
    """Walk the chain in a spawned process; the caller shuts the pool down after taking the result."""
    url = session.get_bind().engine.url.render_as_string(hide_password=False)
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    return pool, pool.submit(_walk_in_worker, url, with_key)


def _walk_in_worker(db_url: str, with_key: bool) -> ChainFacts:
    from generator.store.db import create_store_engine, read_session

    engine = create_store_engine(db_url)
    try:
        with read_session(engine) as session:
            head = begin_snapshot(session)
            # The key file is read here, not sent through a pipe: the secret never leaves a process that read it.
            key = load_key(store_identity(session)) if with_key else None
            return walk_chain(session, key=key, head=head, fingerprints=True)
    finally:
        engine.dispose()


class Claims:
    """What the line checks took on trust while the walk ran elsewhere; settled against its facts at the end."""

    def __init__(self) -> None:
        self.used = bytearray()  # byte d set: a line relied on decision d being proven
        self.latest = IdMap()  # candidate id -> the decision a line relied on being its latest live one
        self.conflict = False  # two lines relied on two different latest decisions for one candidate, or a line failed
        self.fingerprints = bytearray()  # FINGERPRINT bytes per decision id: what a line relied on its decision to say

    def proven(self, decision_id: int) -> bool:
        if decision_id >= len(self.used):
            self.used.extend(bytes(max(decision_id + 1, 2 * len(self.used)) - len(self.used)))
        self.used[decision_id] = 1
        return True

    def decision_says(self, decision_id: int, print_: bytes | None) -> None:
        """A line relied on decision `decision_id`'s fields being those whose fingerprint is `print_`."""
        end = (decision_id + 1) * FINGERPRINT
        if print_ is None or not 0 <= decision_id < _DENSE_IDS:
            self.conflict = True  # not settled by fingerprints: the lines are checked again against the rows
            return
        if end > len(self.fingerprints):
            self.fingerprints.extend(bytes(max(end, 2 * len(self.fingerprints)) - len(self.fingerprints)))
        before = self.fingerprints[end - FINGERPRINT : end]
        if any(before) and before != print_:
            self.conflict = True
        self.fingerprints[end - FINGERPRINT : end] = print_

    def latest_live(self, candidate_id: int, decision_id: int) -> int:
        before = self.latest.get(candidate_id)
        if before not in (0, decision_id):
            self.conflict = True
        self.latest.set(candidate_id, decision_id)
        return decision_id

    def hold(self, facts: ChainFacts) -> bool:
        """True when every claim is what the walk found: the lines' checks stand as made."""
        if self.conflict:
            return False
        # Big-int masks: a used decision the walk did not prove, over a million ids in ~10 ms.
        used, proven = int.from_bytes(self.used, "little"), int.from_bytes(facts.proven[: len(self.used)], "little")
        if used & ~proven:
            return False
        claimed, newest = self.latest.dense, facts.newest.dense
        if not facts.undone.isdisjoint(claimed) or not facts.undone.isdisjoint(self.latest.sparse.values()):
            return False
        if any(d and (c >= len(newest) or newest[c] != d) for c, d in enumerate(claimed)):
            return False
        if not all(facts.newest.get(c) == d for c, d in self.latest.sparse.items()):
            return False
        return self._fingerprints_hold(facts.fingerprints or bytearray())

    def _fingerprints_hold(self, stored: bytearray) -> bool:
        claimed = self.fingerprints
        if len(claimed) > len(stored):
            stored = stored + bytes(len(claimed) - len(stored))
        if claimed == stored[: len(claimed)]:
            return True  # every decision was exported (the usual whole-store export): one comparison
        blank = bytes(FINGERPRINT)
        view, other = memoryview(claimed), memoryview(stored)
        return all(
            view[start : start + FINGERPRINT] == blank or view[start : start + FINGERPRINT] == other[start : start + FINGERPRINT]
            for start in range(0, len(claimed), FINGERPRINT)
        )
