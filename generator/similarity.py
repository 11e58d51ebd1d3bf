"""Text normalisation, word shingles and MinHash LSH: the one near-duplicate machinery everything uses."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from generator.examples import Message

if TYPE_CHECKING:  # datasketch pulls in numpy/scipy: import it only when similarity is needed
    from datasketch import LeanMinHash

_WORD = re.compile(r"\w+", re.UNICODE)
_SPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Case- and whitespace-insensitive form used for exact-duplicate detection."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def conversation_text(messages: Sequence[Message]) -> str:
    """The whole conversation as one string (roles included, so a swapped role is a change)."""
    return "\n".join(f"{m.role}: {m.content}" for m in messages)


def normalized_key(messages: Sequence[Message]) -> str:
    return normalize_text(conversation_text(messages))


def shingles(text: str, size: int = 3) -> set[bytes]:
    """Word n-grams of the normalised text; short texts give one shingle of all their words."""
    words = _WORD.findall(normalize_text(text))
    if len(words) < size:
        return {" ".join(words).encode()} if words else set()
    return {" ".join(words[i : i + size]).encode() for i in range(len(words) - size + 1)}


def jaccard(a: set[bytes], b: set[bytes]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


class NearDuplicateIndex:
    """MinHash LSH over shingle sets: sub-linear lookup of items whose Jaccard similarity passes a threshold.

    Keys are any strings the caller chooses (e.g. "seed:billing-001", "candidate:42").
    """

    def __init__(self, *, threshold: float, num_perm: int = 128, shingle_words: int = 3) -> None:
        from datasketch import MinHashLSH

        self.threshold = threshold
        self.num_perm = num_perm
        self.shingle_words = shingle_words
        self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self._signatures: dict[str, LeanMinHash] = {}

    def signatures(self, texts: Iterable[str]) -> list[LeanMinHash]:
        """MinHash signatures for many texts at once (MinHash.bulk shares the permutation setup)."""
        from datasketch import LeanMinHash, MinHash

        shingle_sets = [sorted(shingles(text, self.shingle_words)) for text in texts]
        return [LeanMinHash(m) for m in MinHash.bulk(shingle_sets, num_perm=self.num_perm)]

    def add(self, key: str, signature: LeanMinHash) -> None:
        if key in self._signatures:
            return
        self._signatures[key] = signature
        self._lsh.insert(key, signature)

    def add_many(self, items: Iterable[tuple[str, LeanMinHash]]) -> None:
        with self._lsh.insertion_session() as session:
            for key, signature in items:
                if key not in self._signatures:
                    self._signatures[key] = signature
                    session.insert(key, signature)

    def query(self, signature: LeanMinHash) -> list[tuple[str, float]]:
        """Keys of indexed items at or above the threshold, most similar first, with estimated Jaccard."""
        found = [(key, signature.jaccard(self._signatures[key])) for key in self._lsh.query(signature)]
        found = [(key, score) for key, score in found if score >= self.threshold]
        return sorted(found, key=lambda item: (-item[1], item[0]))

    def __contains__(self, key: str) -> bool:
        return key in self._signatures

    def __len__(self) -> int:
        return len(self._signatures)
