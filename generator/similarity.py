"""Text normalisation, word shingles, exact Jaccard and MinHash LSH: the one near-duplicate machinery everything uses.

Texts become sets of word n-grams ("shingles") hashed to 64-bit integers. Similarity is always the
exact Jaccard index of two such sets; MinHash signatures and LSH only serve to find, among very
many texts, the few worth comparing.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # not at run time: a worker process that only shingles imports numpy, not pydantic (0.15 s)
    from generator.examples import Message

_WORD = re.compile(r"\w+", re.UNICODE)

# LSH favours recall: every pair it proposes is confirmed with exact Jaccard, so a false
# candidate costs one comparison, while a missed one lets a duplicate through to a reviewer.
# At threshold 0.7 and 128 permutations this gives 20 bands of 6 rows: a pair at similarity 0.7
# is found 92% of the time, at 0.8 99.8%.
LSH_WEIGHTS = (0.1, 0.9)  # (false positive, false negative)
MINHASH_SEED = 1


def fold(text: str) -> str:
    """Compatibility- and case-folded text: what both exact and near-duplicate detection compare."""
    return unicodedata.normalize("NFKC", text).casefold()


def normalize_text(text: str, *, folded: bool = False) -> str:
    """Case- and whitespace-insensitive form used for exact-duplicate detection (`folded`: `text` is `fold`'s already)."""
    return " ".join((text if folded else fold(text)).split())  # split() is \s+, at C speed


def conversation_text(messages: Sequence[Message]) -> str:
    """The whole conversation as one string (roles included, so a swapped role is a change)."""
    return "\n".join(f"{m.role}: {m.content}" for m in messages)


def similarity_text(messages: Sequence[Message]) -> str:
    """The user and assistant turns, with roles: what near-duplicate similarity is measured on.

    The system prompt is left out: it is the same boilerplate in every example of a project, and
    its shingles would make two unrelated short conversations look alike.
    """
    return conversation_text([m for m in messages if m.role != "system"])


def normalized_key(messages: Sequence[Message]) -> str:
    return normalize_text(conversation_text(messages))


def words(text: str, *, folded: bool = False) -> list[str]:
    """The normalised words of a text (the units shingles are made of); `folded`: `text` is `fold`'s already."""
    return _WORD.findall(text if folded else fold(text))


def shingles(text: str, size: int = 3) -> set[bytes]:
    """Word n-grams of the normalised text; short texts give one shingle of all their words."""
    found = words(text)
    if len(found) < size:
        return {" ".join(found).encode()} if found else set()
    return {" ".join(found[i : i + size]).encode() for i in range(len(found) - size + 1)}


def jaccard(a: set[bytes], b: set[bytes]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


class _WordHashes(dict[str, int]):
    """word -> stable 64-bit hash, computed once per distinct word (vocabularies are small, texts are not)."""

    def __missing__(self, word: str) -> int:
        value = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
        self[word] = value
        return value


def word_hash_cache() -> dict[str, int]:
    """An empty word -> hash cache that fills itself, for `ShingleSets.from_texts` calls on texts of one vocabulary."""
    return _WordHashes()


_U64 = np.uint64
_MULTIPLIER = _U64(0x100000001B3)  # combines the word hashes of an n-gram in order


def _mix64(values: np.ndarray) -> np.ndarray:
    """The MurmurHash3 64-bit finaliser: spreads combined word hashes over all 64 bits."""
    values = values ^ (values >> _U64(33))
    values = values * _U64(0xFF51AFD7ED558CCD)
    values = values ^ (values >> _U64(33))
    values = values * _U64(0xC4CEB9FE1A85EC53)
    mixed: np.ndarray = values ^ (values >> _U64(33))  # numpy's operators are typed loosely: say what comes back
    return mixed


def _mix32(values: np.ndarray) -> np.ndarray:
    """The MurmurHash3 32-bit finaliser, as datasketch applies it before its affine permutations."""
    values = values ^ (values >> np.uint32(16))
    values = values * np.uint32(0x85EBCA6B)
    values = values ^ (values >> np.uint32(13))
    values = values * np.uint32(0xC2B2AE35)
    mixed: np.ndarray = values ^ (values >> np.uint32(16))
    return mixed


_BLOCK = 2048  # texts shingled and sorted together


def _by_text_then_hash(owner: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """The order that sorts shingles by text, then by hash: np.lexsort((hashes, owner)), quicker.

    One argsort of a single key (the text's number in the top 11 bits, a block holding at most
    2,048 texts; the hash's top 53 bits below) took 0.10 s for 2,048 texts of 100 shingles where
    lexsort over the two took 0.39 s. Two different shingles of one text sharing their top 53 bits
    cannot be ordered by that key: then lexsort decides, so the sets are exactly what they were.
    """
    if len(owner) and owner.max() >= 1 << 11:
        return np.lexsort((hashes, owner))
    key = (owner.astype(_U64) << _U64(53)) | (hashes >> _U64(11))
    order: np.ndarray = np.argsort(key)
    ordered = key[order]
    ties = ordered[1:] == ordered[:-1]
    if ties.any():
        ordered_hashes = hashes[order]
        if np.any(ties & (ordered_hashes[1:] != ordered_hashes[:-1])):
            order = np.lexsort((hashes, owner))
    return order


class ShingleSets:
    """The shingle sets of many texts: sorted, distinct 64-bit shingle hashes, one flat array for all.

    Built, compared and signed with numpy; Python touches each word once (to tokenise it).
    """

    def __init__(self, values: np.ndarray, offsets: np.ndarray) -> None:
        self.values = values  # the sets one after another, each sorted
        self.offsets = offsets  # set i is values[offsets[i]:offsets[i + 1]]

    @classmethod
    def from_texts(
        cls, texts: Iterable[str], *, size: int = 3, word_hashes: dict[str, int] | None = None, folded: bool = False
    ) -> ShingleSets:
        """`word_hashes`: a cache from `word_hash_cache()` to share between calls (one per batch of texts otherwise);
        `folded`: the texts are `fold`'s already."""
        lookup = (word_hashes if word_hashes is not None else _WordHashes()).__getitem__
        blocks: list[ShingleSets] = []
        arrays: list[np.ndarray] = []
        for text in texts:
            found = words(text, folded=folded)
            arrays.append(np.fromiter(map(lookup, found), dtype=_U64, count=len(found)))
            if len(arrays) == _BLOCK:  # sorting block by block is 2-3x faster than one big sort
                blocks.append(cls._from_word_hashes(arrays, size))
                arrays = []
        if arrays or not blocks:
            blocks.append(cls._from_word_hashes(arrays, size))
        return cls.concatenate(blocks)

    @classmethod
    def concatenate(cls, parts: Sequence[ShingleSets]) -> ShingleSets:
        if len(parts) == 1:
            return parts[0]
        starts = np.cumsum([0] + [len(part.values) for part in parts[:-1]])
        offsets = np.concatenate([[0], *(part.offsets[1:] + start for part, start in zip(parts, starts, strict=True))])
        return cls(np.concatenate([part.values for part in parts]), offsets.astype(np.int64))

    @classmethod
    def _from_word_hashes(cls, arrays: list[np.ndarray], size: int) -> ShingleSets:
        lengths = np.fromiter(map(len, arrays), dtype=np.int64, count=len(arrays))
        flat = np.concatenate(arrays) if arrays else np.empty(0, _U64)
        word_starts = np.cumsum(lengths) - lengths
        # A text of n >= size words has n - size + 1 shingles; a shorter one has one of all its words.
        counts = np.where(lengths >= size, lengths - size + 1, np.minimum(lengths, 1))
        owner = np.repeat(np.arange(len(arrays)), counts)
        shingle_starts = np.cumsum(counts) - counts
        first_word = np.arange(counts.sum()) + (word_starts - shingle_starts)[owner]
        span = np.minimum(lengths, size)[owner]
        combined = np.zeros(len(first_word), dtype=_U64)
        with np.errstate(over="ignore"):  # wrapping is the intended arithmetic modulo 2**64
            for offset in range(size):
                present = offset < span
                combined[present] = combined[present] * _MULTIPLIER + flat[first_word[present] + offset]
            hashes = _mix64(combined)
        # Sort each text's shingles and drop repeats: a set, ready for exact intersection.
        order = _by_text_then_hash(owner, hashes)
        hashes, owner = hashes[order], owner[order]
        distinct = np.ones(len(hashes), dtype=bool)
        distinct[1:] = (hashes[1:] != hashes[:-1]) | (owner[1:] != owner[:-1])
        offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
        np.cumsum(np.bincount(owner[distinct], minlength=len(arrays)), out=offsets[1:])
        return cls(hashes[distinct], offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: int) -> np.ndarray:
        return self.values[self.offsets[index] : self.offsets[index + 1]]

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self.offsets)

    def minhashes(self, *, num_perm: int, seed: int = MINHASH_SEED) -> np.ndarray:
        """MinHash signatures, one row per set (uint32).

        Bit for bit what datasketch's MinHash (scheme affine32, the given seed) computes when fed the
        top 32 bits of each shingle hash: its permutations, applied to every text at once.
        """
        multipliers, increments = affine32_permutations(num_perm, seed)
        signatures = np.full((len(self), num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
        hashed = _mix32((self.values >> _U64(32)).astype(np.uint32))
        sizes = self.sizes
        # A few hundred texts per block keeps the (num_perm x shingles) block in the CPU cache.
        block = 256
        for start in range(0, len(self), block):
            stop = min(len(self), start + block)
            rows = np.flatnonzero(sizes[start:stop]) + start
            if not len(rows):
                continue
            low, high = self.offsets[start], self.offsets[stop]
            permuted = np.multiply(multipliers[:, None], hashed[None, low:high])
            permuted += increments[:, None]
            signatures[rows] = np.minimum.reduceat(permuted, self.offsets[rows] - low, axis=1).T
        return signatures


def jaccard_of_sorted(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard index of two sorted arrays of distinct shingle hashes."""
    if not len(a) and not len(b):
        return 1.0
    if not len(a) or not len(b):
        return 0.0
    positions = np.minimum(np.searchsorted(b, a), len(b) - 1)
    shared = int(np.count_nonzero(b[positions] == a))
    return shared / (len(a) + len(b) - shared)


class AllPairsJaccard:
    """Exact Jaccard of each query against every member of a fixed reference set (e.g. seeds, a holdout set).

    One sparse matrix product counts the shared shingles of all pairs, so this stays fast for
    references in the thousands and needs no probabilistic index: nothing near it is ever missed.
    """

    def __init__(self, references: ShingleSets) -> None:
        from scipy.sparse import csr_matrix

        self._vocabulary = np.unique(references.values)
        columns = np.searchsorted(self._vocabulary, references.values)
        members = csr_matrix(
            (np.ones(len(columns), dtype=np.float32), columns, references.offsets),
            shape=(len(references), len(self._vocabulary)),
        )
        self._by_shingle = members.T.tocsr()
        self._sizes = references.sizes

    def __len__(self) -> int:
        return len(self._sizes)

    def nearest(self, queries: ShingleSets) -> tuple[np.ndarray, np.ndarray]:
        """For each query: the position of the most similar reference (the first on ties; -1 when there
        are no references) and that similarity."""
        best = np.full(len(queries), -1, dtype=np.int64)
        similarity = np.zeros(len(queries), dtype=np.float64)
        if not len(self) or not len(queries):
            return best, similarity
        sizes = queries.sizes
        reference_sizes = self._sizes.astype(np.float32)
        rows = max(1, 4_000_000 // len(self))  # bounds the dense block to ~16 MB
        for start in range(0, len(queries), rows):
            stop = min(len(queries), start + rows)
            shared = self._shared_counts(queries, start, stop)
            union = sizes[start:stop, None].astype(np.float32) + reference_sizes[None, :] - shared
            np.maximum(union, 1, out=union)  # an empty query scores 0 here (see below)
            chosen = (shared / union).argmax(axis=1)
            # The winner's similarity again in exact arithmetic: 7 shared of 10 is 0.7, meeting a 0.7 threshold.
            common = shared[np.arange(stop - start), chosen].astype(np.int64)
            total = sizes[start:stop] + self._sizes[chosen] - common
            best[start:stop] = chosen
            similarity[start:stop] = np.divide(common, total, out=np.ones(len(total)), where=total > 0)
        # Two empty sets are alike (as in `jaccard`): an empty query matches the first empty reference.
        empty_references = np.flatnonzero(self._sizes == 0)
        if len(empty_references):
            best[sizes == 0], similarity[sizes == 0] = empty_references[0], 1.0
        return best, similarity

    def _shared_counts(self, queries: ShingleSets, start: int, stop: int) -> np.ndarray:
        """Shingles shared by queries[start:stop] and each reference, as a dense block."""
        from scipy.sparse import csr_matrix

        if not len(self._vocabulary):
            return np.zeros((stop - start, len(self)), dtype=np.float32)
        values = queries.values[queries.offsets[start] : queries.offsets[stop]]
        columns = np.minimum(np.searchsorted(self._vocabulary, values), len(self._vocabulary) - 1)
        known = self._vocabulary[columns] == values  # shingles no reference has cannot be shared
        owner = np.repeat(np.arange(stop - start), np.diff(queries.offsets[start : stop + 1]))[known]
        indptr = np.zeros(stop - start + 1, dtype=np.int64)
        np.cumsum(np.bincount(owner, minlength=stop - start), out=indptr[1:])
        matrix = csr_matrix(
            (np.ones(len(owner), dtype=np.float32), columns[known], indptr),
            shape=(stop - start, len(self._vocabulary)),
        )
        return np.asarray((matrix @ self._by_shingle).toarray())  # scipy is untyped: say what comes back


@dataclass(frozen=True, slots=True)
class Signature:
    """What the index knows of one text: its shingle set (for exact Jaccard) and its LSH band keys."""

    shingles: np.ndarray
    band_keys: list[int]


# datasketch's MinHash scheme and LSH parameter search, written out here because importing
# datasketch imports scipy.integrate (~0.5 s per process) for them; tests check both against
# datasketch itself.


@functools.cache
def affine32_permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine32 permutations h -> a * h + b (mod 2^32), a odd: (multipliers, increments)."""
    generator = np.random.RandomState(seed)
    multipliers = generator.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    increments = generator.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return multipliers, increments


@functools.cache
def lsh_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band) that best separate pairs above and below the threshold, recall-weighted.

    datasketch's search: minimise the weighted areas under the false-positive curve below the
    threshold and the false-negative curve above it. Each curve is a polynomial of degree
    bands x rows <= num_perm, so Gauss-Legendre quadrature with num_perm / 2 + 1 nodes is exact.
    """
    nodes, weights = np.polynomial.legendre.leggauss(num_perm // 2 + 1)
    below, below_weights = threshold * (nodes + 1) / 2, weights * threshold / 2
    above, above_weights = threshold + (1 - threshold) * (nodes + 1) / 2, weights * (1 - threshold) / 2
    false_positive_weight, false_negative_weight = LSH_WEIGHTS
    best, choice = float("inf"), (0, 0)
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            false_positive = below_weights @ (1 - (1 - below**rows) ** bands)
            false_negative = above_weights @ ((1 - above**rows) ** bands)
            error = float(false_positive * false_positive_weight + false_negative * false_negative_weight)
            if error < best:
                best, choice = error, (bands, rows)
    return choice


def band_keys(minhashes: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """The LSH bucket of each signature in each band: one 64-bit hash of the band's rows (shape: signatures x bands)."""
    grouped = minhashes[:, : bands * rows].astype(_U64).reshape(len(minhashes), bands, rows)
    keys = np.zeros((len(minhashes), bands), dtype=_U64)
    with np.errstate(over="ignore"):
        for row in range(rows):
            keys = keys * _MULTIPLIER + grouped[:, :, row]
        return _mix64(keys)


class NearDuplicateIndex:
    """MinHash LSH over shingle sets: sub-linear lookup of items whose Jaccard similarity passes a threshold.

    LSH proposes; exact Jaccard of the shingle sets decides. Keys are any strings the caller
    chooses (e.g. "seed:billing-001", "candidate:42").

    The banding follows datasketch (its permutations and parameter search), but the tables are
    plain dicts keyed by one 64-bit hash per band, computed for many signatures at once with
    numpy: datasketch's MinHashLSH spends ~80 us per insert at 20 bands (bytes keys, a set per
    bucket), which took 100k candidates to the edge of the one-minute budget on its own.
    """

    def __init__(self, *, threshold: float, num_perm: int = 128, shingle_words: int = 3) -> None:
        self.threshold = threshold
        self.num_perm = num_perm
        self.shingle_words = shingle_words
        self.bands, self.rows = lsh_bands(threshold, num_perm)
        # band key -> position of the item, or a list of positions when several share the bucket
        self._tables: list[dict[int, int | list[int]]] = [{} for _ in range(self.bands)]
        self._keys: list[str] = []
        self._shingles: list[np.ndarray] = []

    def signatures(self, texts: Iterable[str]) -> list[Signature]:
        """Signatures for many texts at once (shingled, hashed and signed in bulk)."""
        return self.sign(ShingleSets.from_texts(texts, size=self.shingle_words))

    def sign(self, sets: ShingleSets) -> list[Signature]:
        keys = band_keys(sets.minhashes(num_perm=self.num_perm), self.bands, self.rows)
        return [Signature(sets[i], keys_of_set) for i, keys_of_set in enumerate(keys.tolist())]

    def add(self, key: str, signature: Signature) -> None:
        position = len(self._keys)
        self._keys.append(key)
        self._shingles.append(signature.shingles)
        for table, band_key in zip(self._tables, signature.band_keys, strict=True):
            bucket = table.setdefault(band_key, position)
            if bucket == position:
                continue
            if isinstance(bucket, list):
                bucket.append(position)
            else:
                table[band_key] = [bucket, position]

    def add_many(self, items: Iterable[tuple[str, Signature]]) -> None:
        for key, signature in items:
            self.add(key, signature)

    def query(self, signature: Signature) -> list[tuple[str, float]]:
        """Keys of indexed items at or above the threshold, most similar first, with their exact Jaccard."""
        proposed: set[int] = set()
        for table, band_key in zip(self._tables, signature.band_keys, strict=True):
            bucket = table.get(band_key)
            if bucket is None:
                continue
            if isinstance(bucket, list):
                proposed.update(bucket)
            else:
                proposed.add(bucket)
        found = [(self._keys[p], jaccard_of_sorted(signature.shingles, self._shingles[p])) for p in proposed]
        found = [(key, score) for key, score in found if score >= self.threshold]
        return sorted(found, key=lambda item: (-item[1], item[0]))

    def __len__(self) -> int:
        return len(self._keys)
