"""The near-duplicate machinery: vectorised shingles, exact Jaccard, MinHash and LSH agree with their definitions."""

from __future__ import annotations

import random

import numpy as np
import pytest
from datasketch import MinHash
from datasketch.lsh import _optimal_param

from generator.examples import Message
from generator.similarity import (
    LSH_WEIGHTS,
    AllPairsJaccard,
    NearDuplicateIndex,
    ShingleSets,
    jaccard,
    jaccard_of_sorted,
    lsh_bands,
    shingles,
    similarity_text,
)

_VOCABULARY = [
    "the",
    "a",
    "invoice",
    "pay",
    "bank",
    "sync",
    "Ledgerly",
    "export",
    "CSV",
    "plan",
    "team",
    "solo",
    "refund",
    "tax",
    "VAT",
    "it's",
    "don't",
    "naïve",
    "Café",
    "ﬁle",
]


def random_texts(count: int, seed: int, longest: int = 30) -> list[str]:
    rng = random.Random(seed)
    texts = [" ".join(rng.choice(_VOCABULARY) for _ in range(rng.randint(0, longest))) for _ in range(count)]
    return [*texts, "", "one", "one two", "One  TWO\tthree", "ﬁle FILE", "?!"]


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_shingle_sets_are_the_foundation_shingles(size: int) -> None:
    """Same words (NFKC, case-folded), same n-grams, one shingle for a short text, none for an empty one."""
    texts = random_texts(300, seed=size)
    sets = ShingleSets.from_texts(texts, size=size)
    rng = random.Random(size)
    assert len(sets) == len(texts)
    for index, text in enumerate(texts):
        assert len(sets[index]) == len(shingles(text, size))
        assert np.all(sets[index][1:] > sets[index][:-1])  # sorted, distinct (compared as uint64, not via float)
    for _ in range(3000):
        i, j = rng.randrange(len(texts)), rng.randrange(len(texts))
        assert jaccard_of_sorted(sets[i], sets[j]) == pytest.approx(jaccard(shingles(texts[i], size), shingles(texts[j], size)))


def test_shingle_sets_span_blocks_and_empty_input() -> None:
    texts = random_texts(5000, seed=11, longest=8)
    sets = ShingleSets.from_texts(texts)
    assert [len(sets[i]) for i in range(len(texts))] == [len(shingles(text)) for text in texts]
    for i in range(0, len(texts), 97):  # blocks joined without shifting any set's values
        assert np.array_equal(sets[i], ShingleSets.from_texts([texts[i]])[0])
    assert len(ShingleSets.from_texts([])) == 0


def test_minhash_rows_are_datasketch_minhashes_of_the_shingle_hashes() -> None:
    texts = random_texts(200, seed=2)
    sets = ShingleSets.from_texts(texts)
    rows = sets.minhashes(num_perm=64, seed=1)
    for index in range(len(texts)):
        reference = MinHash(num_perm=64, seed=1, hashfunc=int)
        reference.update_batch([int(value) >> 32 for value in sets[index]])
        assert np.array_equal(reference.hashvalues, rows[index]), index


@pytest.mark.parametrize("num_perm", [16, 64, 128, 256])
def test_lsh_bands_are_datasketchs_choice(num_perm: int) -> None:
    for threshold in [x / 100 for x in range(30, 100, 5)]:
        assert lsh_bands(threshold, num_perm) == _optimal_param(threshold, num_perm, *LSH_WEIGHTS), threshold


def test_all_pairs_nearest_is_the_brute_force_maximum() -> None:
    texts = random_texts(200, seed=3)
    references = texts[:40]
    best, similarity = AllPairsJaccard(ShingleSets.from_texts(references)).nearest(ShingleSets.from_texts(texts))
    for index, text in enumerate(texts):
        scores = [jaccard(shingles(text), shingles(reference)) for reference in references]
        assert similarity[index] == pytest.approx(max(scores))
        assert best[index] == int(np.argmax(scores))  # ties go to the first reference


def test_all_pairs_without_references() -> None:
    best, similarity = AllPairsJaccard(ShingleSets.from_texts([])).nearest(ShingleSets.from_texts(["a b c"]))
    assert best.tolist() == [-1] and similarity.tolist() == [0.0]


def test_a_similarity_exactly_at_the_threshold_counts() -> None:
    """9 shared shingles of 11 meets a threshold of 9/11: the boundary must not depend on float rounding."""
    base = "w0 w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11"  # 10 shingles
    other = "w0 w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 x"  # shares 9 of them; union 11
    exact = 9 / 11
    _, similarity = AllPairsJaccard(ShingleSets.from_texts([base])).nearest(ShingleSets.from_texts([other]))
    assert similarity[0] == exact
    sets = ShingleSets.from_texts([base, other])
    first, second = sets[0], sets[1]
    assert jaccard_of_sorted(first, second) == exact


def test_lsh_finds_near_duplicates_among_many_and_confirms_them_exactly() -> None:
    rng = random.Random(5)
    words = [f"word{i}" for i in range(3000)]
    texts = [" ".join(rng.choice(words) for _ in range(40)) for _ in range(2000)]
    index = NearDuplicateIndex(threshold=0.7)
    index.add_many((str(i), signature) for i, signature in enumerate(index.signatures(texts)))
    variants = []
    for i in range(0, 2000, 40):
        changed = texts[i].split()
        changed[20] = "changed"
        variants.append(" ".join(changed))
    for position, signature in enumerate(index.signatures(variants)):
        matches = index.query(signature)
        assert matches and matches[0][0] == str(position * 40)
        assert matches[0][1] == pytest.approx(jaccard(shingles(variants[position]), shingles(texts[position * 40])))
    unrelated = index.signatures([" ".join(rng.choice(words) for _ in range(40)) for _ in range(50)])
    assert all(index.query(signature) == [] for signature in unrelated)


def test_similarity_ignores_the_system_prompt_but_keeps_roles() -> None:
    conversation = [
        Message(role="system", content="Be brief."),
        Message(role="user", content="How do I export?"),
        Message(role="assistant", content="Use Settings."),
    ]
    assert similarity_text(conversation) == "user: How do I export?\nassistant: Use Settings."
