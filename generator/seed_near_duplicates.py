"""Near-duplicates within one seed set, found in bulk: each seed's best match among the seeds before it.

`seeds check` asks this of every seed. The shingle sets and LSH band keys of a large set are built
on two cores (a spawned worker and this process), and the LSH buckets are grouped with one sort per
band, so Python only loops over the few seeds that share a bucket with an earlier one.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from types import TracebackType
from typing import NamedTuple

import numpy as np

from generator import similarity  # similarity.jaccard_of_sorted looked up at call time (a test counts the comparisons)
from generator.similarity import ShingleSets, band_keys, fold, lsh_bands, normalize_text, word_hash_cache

# Seed files this large start the worker before they are read, so that its interpreter and imports
# (0.3 s; 0.8 s under the `synthgate` script, whose module a spawned process imports again) overlap
# the loading: ~10,000 seeds of a kilobyte.
EARLY_START_BYTES = 10_000_000
# Below this many texts one process signs them all: a spawned worker costs ~0.4 s of CPU to start
# (interpreter and numpy) and passing texts. `seeds check` wall time, one process against two:
# 10,000 seeds 1.5 s against 1.5-1.6 s, 20,000 seeds 2.5 s against 2.3 s, 50,000 seeds 5.4 s against 4.4 s.
PARALLEL_MIN_TEXTS = 15_000
# While the worker runs, this process switches threads every 0.5 ms, not every 5 ms: its tasks and
# results go through the pool's threads here, which wait for the GIL at each 64 KB pipe write while
# this thread lints; at 5 ms the worker got 9 of 49 tasks done during the other lints (2.3 s), at
# 0.5 ms 18, and signing then took 1.9 s instead of 2.9 (100,000 seeds).
_SWITCH_INTERVAL = 0.0005
# Texts per task: small enough for the two processes to finish together (this process takes the
# tasks the worker has not started), large enough that a task is mostly numpy (2,048 = the block
# ShingleSets sorts at once).
_TASK_TEXTS = 2_048


@dataclass(frozen=True)
class NearDuplicate:
    position: int  # of the seed, in the texts given
    original: int  # the earlier seed it is most like
    similarity: float  # exact Jaccard of their shingle sets


class Signed(NamedTuple):
    """What `sign_texts` returns for some texts: numpy arrays and strings, quick to pickle between processes."""

    values: np.ndarray  # the texts' shingle sets, as ShingleSets holds them
    offsets: np.ndarray
    keys: np.ndarray  # LSH band keys, texts x bands
    normalized: list[str]  # each text as `normalize_text` gives it (for exact duplicates)


def sign_texts(
    texts: Sequence[str], threshold: float, num_perm: int, shingle_words: int, word_hashes: dict[str, int] | None = None
) -> Signed:
    """Shingle sets, LSH band keys and normalised forms of the texts: the expensive, pure part, run in either process.

    Each text is folded once for both its words and its normalised form (folding was a third of the
    exact-duplicate lint and a fifth of shingling).
    """
    folded = [fold(text) for text in texts]
    sets = ShingleSets.from_texts(
        folded, size=shingle_words, word_hashes=word_hashes if word_hashes is not None else _worker_words, folded=True
    )
    bands, rows = lsh_bands(threshold, num_perm)
    keys = band_keys(sets.minhashes(num_perm=num_perm), bands, rows)
    return Signed(sets.values, sets.offsets, keys, [normalize_text(text, folded=True) for text in folded])


# A worker signs many tasks of one seed set: their words are hashed once per process, not once per task.
_worker_words = word_hash_cache()


def start_workers() -> ProcessPoolExecutor | None:
    """Spawned signing workers (one fewer than the CPUs, at most 3), starting now; None on one CPU or where processes cannot start."""
    count = min((os.cpu_count() or 1) - 1, 3)
    if count < 1:
        return None
    try:
        # spawn, the only start method on every OS (macOS and Windows do not fork safely)
        pool = ProcessPoolExecutor(max_workers=count, mp_context=multiprocessing.get_context("spawn"))
        pool.submit(int)  # the worker starts (interpreter, imports) now, not at the first real task
    except (OSError, RuntimeError, BrokenProcessPool):
        return None
    return pool


class SeedSigning:
    """The shingle sets and band keys of many texts, computed in the background while the caller runs other lints.

    Start it (a context manager), do other work, then call `result()`: this process takes every task
    the worker has not begun, so the split follows whatever CPU each process actually gets.
    """

    def __init__(
        self,
        texts: Sequence[str] = (),
        *,
        threshold: float,
        num_perm: int = 128,
        shingle_words: int = 3,
        workers: ProcessPoolExecutor | None = None,
    ) -> None:
        """`workers`: a pool from `start_workers`, started earlier by the caller (who shuts it down); otherwise
        one is started here when `texts` holds `PARALLEL_MIN_TEXTS` or more. More texts can follow with `add`."""
        self._arguments = (threshold, num_perm, shingle_words)
        self._chunks: list[Sequence[str]] = []
        self._pending: list[str] = []
        self.count = 0  # texts given so far
        self._owns_pool = workers is None
        self._pool = workers if workers is not None else start_workers() if len(texts) >= PARALLEL_MIN_TEXTS else None
        self._futures: list[Future[Signed]] = []
        self._switch_interval = sys.getswitchinterval()
        if self._pool is not None:
            sys.setswitchinterval(min(self._switch_interval, _SWITCH_INTERVAL))
        for text in texts:
            self.add(text)

    def add(self, text: str) -> None:
        """One more text; each full task goes to the worker at once (while the caller, say, reads the next seeds)."""
        self._pending.append(text)
        self.count += 1
        if len(self._pending) == _TASK_TEXTS:
            self._chunks.append(self._pending)
            self._pending = []
            if self._pool is not None:
                try:
                    self._futures.append(self._pool.submit(sign_texts, self._chunks[-1], *self._arguments))
                except (RuntimeError, BrokenProcessPool):  # the pool is shut down or broken: sign in this process
                    self.close()

    def __enter__(self) -> SeedSigning:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            if self._owns_pool:
                self._pool.shutdown(wait=True, cancel_futures=True)
            else:
                for future in self._futures:
                    future.cancel()
            self._pool, self._futures = None, []
            sys.setswitchinterval(self._switch_interval)

    def result(self) -> tuple[ShingleSets, np.ndarray, list[str]]:
        """Every text's shingle set, band keys and normalised form, in the texts' order."""
        if self._pending or not self._chunks:
            self._chunks.append(self._pending)
            self._pending = []
        words = word_hash_cache()
        local: Callable[[Sequence[str]], Signed] = lambda chunk: sign_texts(  # noqa: E731
            chunk, *self._arguments, word_hashes=words
        )
        parts: list[Signed | None] = [None] * len(self._chunks)
        # From the end, every task the worker has not started is taken back and done here.
        for index in reversed(range(len(self._futures))):
            if not self._futures[index].cancel():
                break
            parts[index] = local(self._chunks[index])
        for index, chunk in enumerate(self._chunks):
            if parts[index] is None:
                try:
                    parts[index] = self._futures[index].result() if index < len(self._futures) else local(chunk)
                except BrokenProcessPool:  # the worker died (killed, out of memory): this process redoes its share
                    parts[index] = local(chunk)
        self.close()
        done = [part for part in parts if part is not None]
        sets = ShingleSets.concatenate([ShingleSets(part.values, part.offsets) for part in done])
        return sets, np.concatenate([part.keys for part in done]), [text for part in done for text in part.normalized]


def first_near_duplicates(sets: ShingleSets, keys: np.ndarray, rows: Sequence[int], threshold: float) -> list[NearDuplicate]:
    """For the sets at `rows`, in that order, each one's best match among those before it, if any reaches the threshold.

    The same answers as querying two NearDuplicateIndex one seed at a time ("originals", the seeds like
    no earlier one, asked first; "variants", the near-duplicates found, asked only when no original
    matches, so a family of n variants costs n comparisons, not n^2 / 2), ties broken the same way.
    A seed that shares no LSH bucket with an earlier one cannot match and is an original without a
    look: one sort per band finds the 7% of 100,000 benchmark seeds that share one.
    """
    count = len(rows)
    if count < 2:
        return []
    by_band = keys[np.asarray(rows, dtype=np.int64)].T  # bands x seeds
    order = np.argsort(by_band, axis=1, kind="stable")  # stable: within a bucket, the seeds in their order
    ordered = np.take_along_axis(by_band, order, axis=1)
    opens_bucket = np.ones(ordered.shape, dtype=bool)
    opens_bucket[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    place = np.arange(count)
    bucket_start = np.maximum.accumulate(np.where(opens_bucket, place, 0), axis=1)
    seen_before = np.unique(order[~opens_bucket])  # seeds with an earlier seed in some bucket, in seed order
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(place, order.shape), axis=1)

    is_variant = [False] * count
    found: list[NearDuplicate] = []
    for position in seen_before.tolist():
        proposed: set[int] = set()
        for band, at in enumerate(rank[:, position].tolist()):
            start = int(bucket_start[band, at])
            if start < at:
                proposed.update(order[band, start:at].tolist())
        for variants in (False, True):
            scored = [
                (similarity.jaccard_of_sorted(sets[rows[position]], sets[rows[other]]), other)
                for other in proposed
                if is_variant[other] == variants
            ]
            matches = [(score, other) for score, other in scored if score >= threshold]
            if matches:
                # Most similar first, then the smaller key as text ("10" before "9"), as the index sorts.
                score, other = min(matches, key=lambda match: (-match[0], str(match[1])))
                found.append(NearDuplicate(position, other, score))
                is_variant[position] = True
                break
    return found
