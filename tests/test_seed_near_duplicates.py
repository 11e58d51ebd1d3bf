"""Bulk near-duplicate search of a seed set: the same answers as two NearDuplicateIndex queried seed by seed, in one process or two."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import generator.seed_near_duplicates as bulk
from generator.config import SeedsSection
from generator.examples import Message
from generator.seed_lint import exact_key, lint_seeds, signing_text
from generator.seed_near_duplicates import NearDuplicate, SeedSigning, first_near_duplicates
from generator.seeds import load_seeds
from generator.similarity import NearDuplicateIndex, normalize_text, normalized_key, similarity_text


def _texts(count: int) -> list[str]:
    """Unrelated texts, families of close variants, variants of variants, exact repeats and empty ones."""
    rng = random.Random(7)
    vocabulary = [f"w{i}" for i in range(400)]
    texts: list[str] = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.03:
            texts.append("")
        elif roll < 0.08 and texts:
            texts.append(rng.choice(texts))
        elif roll < 0.35 and texts:
            words = rng.choice(texts[-30:]).split()
            for _ in range(max(1, len(words) // 15)):
                if words:
                    words[rng.randrange(len(words))] = rng.choice(vocabulary)
            texts.append(" ".join(words))
        else:
            texts.append(" ".join(rng.choice(vocabulary) for _ in range(rng.randint(2, 60))))
    return texts


def _one_at_a_time(texts: list[str], rows: list[int], threshold: float) -> list[NearDuplicate]:
    """The seed lint as it was: originals asked first, variants only when no original matches."""
    originals = NearDuplicateIndex(threshold=threshold)
    variants = NearDuplicateIndex(threshold=threshold)
    signatures = originals.signatures(texts[row] for row in rows)
    found = []
    for position, signature in enumerate(signatures):
        matches = originals.query(signature) or variants.query(signature)
        if not matches:
            originals.add(str(position), signature)
            continue
        found.append(NearDuplicate(position, int(matches[0][0]), matches[0][1]))
        variants.add(str(position), signature)
    return found


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.9])
def test_bulk_search_finds_what_the_index_finds_seed_by_seed(threshold: float) -> None:
    texts = _texts(1500)
    rows = [row for row in range(len(texts)) if row % 11]  # some rows left out, as exact duplicates are
    with SeedSigning(texts, threshold=threshold) as signing:
        sets, keys, _ = signing.result()
    expected = _one_at_a_time(texts, rows, threshold)
    assert len(expected) > 100
    assert first_near_duplicates(sets, keys, rows, threshold) == expected


def test_a_worker_process_signs_the_same_as_this_one(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = _texts(3000)
    with SeedSigning(texts, threshold=0.7) as signing:
        sets, keys, normalized = signing.result()
    assert normalized == [normalize_text(text) for text in texts]
    monkeypatch.setattr(bulk, "PARALLEL_MIN_TEXTS", 1)
    monkeypatch.setattr(bulk, "_TASK_TEXTS", 100)  # 30 tasks: the worker (spawned) takes some, this process the rest
    with SeedSigning(texts, threshold=0.7) as signing:
        assert signing._pool is not None
        signing._futures[0].result()  # the worker has done at least the first task, whatever the machine's speed
        pooled_sets, pooled_keys, pooled_normalized = signing.result()
    assert (pooled_sets.offsets == sets.offsets).all() and (pooled_sets.values == sets.values).all()
    assert (pooled_keys == keys).all() and pooled_normalized == normalized


_TRICKY = st.text(
    alphabet=st.sampled_from(["a", "B", " ", "\n", "\t", "\u0301", "\u00e9", "\ufb01", "\u212b", "\u00a0", "\u2028", "\u1e9e", "ß", "ǅ"])
)


@given(system=st.one_of(st.none(), _TRICKY), turns=st.lists(_TRICKY, min_size=2, max_size=4))
def test_the_exact_key_from_parts_is_the_normalized_key(system: str | None, turns: list[str]) -> None:
    """Combining marks, ligatures, case-folding expansions and odd whitespace at the turns' edges included."""
    messages = [Message(role="system", content=system)] if system is not None else []
    messages += [Message(role="user" if i % 2 == 0 else "assistant", content=turn) for i, turn in enumerate(turns)]
    normalized_turns = normalize_text(similarity_text(messages))
    assert exact_key(messages, normalized_turns, {}) == normalized_key(messages)


def test_workers_started_by_the_caller_sign_the_same_and_stay_the_callers(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = _texts(2000)
    with SeedSigning(texts, threshold=0.7) as signing:
        sets, keys, normalized = signing.result()
    monkeypatch.setattr(bulk, "_TASK_TEXTS", 100)
    workers = bulk.start_workers()
    if workers is None:
        pytest.skip("one CPU: no signing workers")
    try:
        with SeedSigning(texts, threshold=0.7, workers=workers) as signing:
            signing._futures[0].result()
            pooled_sets, pooled_keys, pooled_normalized = signing.result()
        assert workers.submit(len, "still open").result() == 10  # the caller's pool: not shut down by the signing
    finally:
        workers.shutdown()
    assert (pooled_sets.values == sets.values).all() and (pooled_keys == keys).all() and pooled_normalized == normalized


def test_seeds_signed_while_they_load_lint_as_seeds_signed_after(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """seeds check's large-set path: the worker gets each task of seeds as they are read."""
    path = tmp_path / "seeds.jsonl"
    answers = [text or "empty" for text in _texts(1200)]
    path.write_text(
        "\n".join(json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": a}]}) for a in answers)
    )
    expected = lint_seeds(load_seeds([path]), SeedsSection())
    assert sum("near-duplicate" in problem.message for problem in expected) > 20
    monkeypatch.setattr(bulk, "_TASK_TEXTS", 100)
    workers = bulk.start_workers()
    with SeedSigning(threshold=SeedsSection().near_duplicate_threshold, workers=workers) as signing:
        seed_set = load_seeds([path], on_seed=lambda seed: signing.add(signing_text(seed)))
        assert signing.count == len(seed_set.seeds) == len(answers)
        assert lint_seeds(seed_set, SeedsSection(), signing=signing) == expected
    if workers is not None:
        workers.shutdown()
