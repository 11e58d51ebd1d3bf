"""CandidateChecker: holds the reference sets (seeds, holdout, earlier candidates) and checks new candidates."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping, Sequence

from sqlmodel import Session

from generator.checks.flags import FlagRules
from generator.checks.reference import Labelled, load_holdout, stored_candidates, stored_seeds, stored_variant_groups
from generator.checks.result import CheckResult
from generator.config import ChecksSection
from generator.examples import Message, structural_problems
from generator.project import Project
from generator.similarity import AllPairsJaccard, NearDuplicateIndex, ShingleSets, Signature, normalized_key, similarity_text
from generator.store.intake import SOURCE_MATCH_PREFIX

# Statuses of the stored candidates a new one is compared with. Filtered ones are left out: whatever
# matches them matches the record that filtered them, which is checked directly.
EARLIER_STATUSES = ("pending", "accepted", "rejected")


class CandidateChecker:
    """Build once per job (it indexes the reference sets), then call `check_new` for each batch of new candidates.

    Checking also remembers each kept candidate, so a later identical or near-identical candidate is a
    duplicate of it (the first is kept). Give `check_new` only candidates that are not stored yet.

    Similarity is the exact Jaccard index of word shingles of the user and assistant turns.
    Seeds and holdout are compared with every candidate (nearest seed for all, no misses);
    earlier candidates are found through MinHash LSH, then compared exactly.
    """

    def __init__(
        self,
        *,
        config: ChecksSection,
        seeds: Sequence[tuple[str, list[Message]]],
        holdout: Sequence[tuple[str, list[Message]]] = (),
        earlier: Iterable[tuple[int, list[Message]]] = (),
        groups: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        # name -> variant group: answers to one question are meant to be alike, so a sibling is never a near-duplicate's proof.
        self._group_of: dict[str, str] = dict(groups or {})
        self._flag_rules = FlagRules.from_seeds([messages for _, messages in seeds], length_factor=config.length_factor)
        self._seed_ids = [seed_id for seed_id, _ in seeds]
        self._seeds = AllPairsJaccard(self._shingle_sets(seeds))
        self._holdout_names = [name for name, _ in holdout]
        self._holdout = AllPairsJaccard(self._shingle_sets(holdout))
        # normalised-conversation digest -> the first record with that content
        self._exact: dict[bytes, str] = {}
        for seed_id, messages in seeds:
            self._exact.setdefault(_digest(messages), f"seed:{seed_id}")
        self._candidates = NearDuplicateIndex(
            threshold=config.near_duplicate_threshold, num_perm=config.num_perm, shingle_words=config.shingle_words
        )
        self._index_earlier(earlier)

    def _index_earlier(self, earlier: Iterable[tuple[int, list[Message]]]) -> None:
        # One streaming pass: stored conversations are read, fingerprinted and dropped, so a
        # queue of 100k candidates never sits in memory as Message objects.
        names: list[str] = []

        def texts() -> Iterable[str]:
            for candidate_id, messages in earlier:
                name = f"candidate:{candidate_id}"
                names.append(name)
                self._exact.setdefault(_digest(messages), name)
                yield similarity_text(messages)

        sets = ShingleSets.from_texts(texts(), size=self.config.shingle_words)
        self._candidates.add_many(zip(names, self._candidates.sign(sets), strict=True))

    @classmethod
    def from_store(
        cls,
        session: Session,
        *,
        project: Project,
        holdout: Sequence[Labelled] | None = None,
        earlier_statuses: tuple[str, ...] = EARLIER_STATUSES,
    ) -> CandidateChecker:
        """A checker over the project's synced seeds, its holdout set and the stored candidates.

        `holdout` is the project's holdout set when the caller has already loaded it; otherwise it is
        loaded here, raising UserError (exit 2) when a holdout file is missing or has a broken line.
        """
        return cls(
            config=project.config.checks,
            seeds=stored_seeds(session),
            holdout=load_holdout(project) if holdout is None else holdout,
            earlier=stored_candidates(session, statuses=earlier_statuses),
            groups=stored_variant_groups(session),
        )

    def add_groups(self, groups: Mapping[str, str]) -> None:
        """Name -> variant group for records grouped since the checker was built (e.g. "candidate:12" -> its group)."""
        self._group_of.update(groups)

    @property
    def reference_counts(self) -> dict[str, int]:
        """How many seeds, holdout examples and earlier candidates each candidate is compared with."""
        return {"seeds": len(self._seed_ids), "holdout": len(self._holdout_names), "candidates": len(self._candidates)}

    def check_new(self, items: Sequence[tuple[str, list[Message]]], *, groups: Mapping[str, str] | None = None) -> list[CheckResult]:
        """Check new candidates given as (source_key, messages), in order (later matches name one "source:<key>").

        `groups`: source key -> variant group, for answers of one group (siblings do not filter each other).
        One batch costs far less than one call per candidate.
        """
        self.add_groups({f"{SOURCE_MATCH_PREFIX}{key}": group for key, group in (groups or {}).items()})
        return self.check_many([(f"{SOURCE_MATCH_PREFIX}{key}", messages) for key, messages in items])

    def check_many(
        self,
        items: Sequence[tuple[str, list[Message]]],
        *,
        overruled: Mapping[str, Collection[str]] | None = None,
    ) -> list[CheckResult]:
        """Check candidates in order, each against the references and the kept ones before it.

        `items` are (name, messages); the name is what a later duplicate's filter_match shows
        (e.g. "candidate:42"). `overruled` maps a name to filter reasons a person has overruled
        for it (`synthgate check --restore`): those are not applied again.
        """
        sets = self._shingle_sets(items)
        nearest_seed, seed_similarity = self._seeds.nearest(sets)
        nearest_holdout, holdout_similarity = self._holdout.nearest(sets)
        signatures = self._candidates.sign(sets)
        results = []
        for position, (name, messages) in enumerate(items):
            digest = _digest(messages)
            seed = (int(nearest_seed[position]), float(seed_similarity[position]))
            proof = self._first_proof(
                name,
                messages,
                digest,
                signatures[position],
                holdout=(int(nearest_holdout[position]), float(holdout_similarity[position])),
                seed=seed,
                overruled=(overruled or {}).get(name, ()),
            )
            if proof is None:
                self._exact.setdefault(digest, name)
                self._candidates.add(name, signatures[position])
            results.append(
                CheckResult(
                    status="pending" if proof is None else "filtered",
                    filter_reason=proof[0] if proof else None,
                    filter_match=proof[1] if proof else None,
                    flags=self._flag_rules.flags(messages),
                    nearest_seed_id=self._seed_ids[seed[0]] if seed[0] >= 0 else None,
                    nearest_seed_similarity=round(seed[1], 4) if seed[0] >= 0 else None,
                )
            )
        return results

    def _first_proof(
        self,
        name: str,
        messages: list[Message],
        digest: bytes,
        signature: Signature,
        *,
        holdout: tuple[int, float],
        seed: tuple[int, float],
        overruled: Collection[str],
    ) -> tuple[str, str] | None:
        """The first filter reason that applies, with the record that proves it (None: keep the candidate).

        Reasons are tried from the most to the least serious, so restoring one reason never lets a
        worse one through: an eval-set leak is reported as such even when it also copies a seed.
        """
        threshold = self.config.near_duplicate_threshold
        if "structural defect" not in overruled and (problems := structural_problems(messages)):
            return "structural defect", "; ".join(problems)
        if "holdout leak" not in overruled and holdout[0] >= 0 and holdout[1] >= threshold:
            return "holdout leak", f"holdout:{self._holdout_names[holdout[0]]}"
        if "exact duplicate" not in overruled and digest in self._exact:
            return "exact duplicate", self._exact[digest]
        if "near-duplicate of seed" not in overruled and seed[0] >= 0 and seed[1] >= threshold:
            return "near-duplicate of seed", f"seed:{self._seed_ids[seed[0]]}"
        if "near-duplicate of candidate" not in overruled:
            group = self._group_of.get(name)
            matches = [match for match in self._candidates.query(signature) if group is None or self._group_of.get(match[0]) != group]
            if matches:
                return "near-duplicate of candidate", matches[0][0]
        return None

    def _shingle_sets(self, items: Iterable[tuple[object, list[Message]]]) -> ShingleSets:
        return ShingleSets.from_texts((similarity_text(messages) for _, messages in items), size=self.config.shingle_words)


def _digest(messages: Sequence[Message]) -> bytes:
    """A short fingerprint of the normalised conversation (exact duplicates share it)."""
    return hashlib.blake2b(normalized_key(messages).encode(), digest_size=16).digest()
