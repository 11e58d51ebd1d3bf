"""How far reviewers agree on the candidates they both reviewed: Cohen's kappa per pair, Krippendorff's alpha overall and per tag."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Any

import krippendorff
import numpy as np
from sqlmodel import Session

from generator.store.overlap import OverlappedCandidate, overlapped_verdicts

# Below this many shared candidates a coefficient is printed but marked "too few to judge". Why 40:
# kappa's standard error is about sqrt(po(1-po) / (n (1-pe)^2)); for a typical po = 0.9, pe = 0.5
# that is 0.095 at n = 40, so the 95% interval is +-0.19 — just under the 0.2 width of one band of
# the usual reading (0.41-0.60 moderate, 0.61-0.80 substantial). At n = 10 it is +-0.37: two bands.
MIN_ITEMS_TO_JUDGE = 40


def cohen_kappa(pairs: list[tuple[bool, bool]]) -> float | None:
    """Cohen's kappa of two raters' accept (True) / reject (False) on the same items; None when undefined.

    Undefined when there are no items, or when chance agreement is already perfect (both raters
    gave one and the same label to everything: there is no disagreement to have avoided).
    """
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(a == b for a, b in pairs) / n
    first_yes = sum(a for a, _ in pairs) / n
    second_yes = sum(b for _, b in pairs) / n
    chance = first_yes * second_yes + (1 - first_yes) * (1 - second_yes)
    if math.isclose(chance, 1.0):
        return None
    return (observed - chance) / (1 - chance)


def krippendorff_alpha(units: list[dict[str, bool]]) -> float | None:
    """Krippendorff's alpha (nominal) over units each rated by any reviewers; None when undefined.

    Unlike kappa it takes any number of reviewers and missing ratings, so it is the one overall
    figure for a team where each candidate was seen by a different pair.
    """
    rated = [unit for unit in units if len(unit) >= 2]  # a unit seen once holds no (dis)agreement
    reviewers = sorted({name for unit in rated for name in unit})
    if not rated or len({value for unit in rated for value in unit.values()}) < 2:
        return None  # no pairable ratings, or a single value everywhere: agreement is not measurable
    matrix = np.full((len(reviewers), len(rated)), np.nan)
    for column, unit in enumerate(rated):
        for name, accepted in unit.items():
            matrix[reviewers.index(name), column] = 1.0 if accepted else 0.0
    return float(krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal"))


@dataclass
class PairAgreement:
    """Two reviewers on the candidates both reviewed."""

    reviewers: tuple[str, str]
    n: int
    agreed: int
    kappa: float | None
    judged: bool  # n reaches MIN_ITEMS_TO_JUDGE
    # Reject reasons one of them gave and the other did not, on the candidates they both reviewed.
    reasons_disputed: dict[str, int] = field(default_factory=dict)


@dataclass
class Alpha:
    n: int  # candidates with at least two reviews
    alpha: float | None
    judged: bool


@dataclass
class AgreementReport:
    overlapped: int  # overlapped candidates with at least two reviews
    overall: Alpha
    pairs: list[PairAgreement]
    by_tag: dict[str, Alpha]
    min_items_to_judge: int = MIN_ITEMS_TO_JUDGE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _alpha(units: list[dict[str, bool]]) -> Alpha:
    n = sum(len(unit) >= 2 for unit in units)
    return Alpha(n=n, alpha=krippendorff_alpha(units), judged=n >= MIN_ITEMS_TO_JUDGE)


def compute_agreement(candidates: list[OverlappedCandidate]) -> AgreementReport:
    """Agreement on accept/reject (an edit is an acceptance of a corrected version) over overlapped candidates."""
    reviewed = [c for c in candidates if len(c.verdicts) >= 2]
    units = [{v.reviewer: v.accepted for v in c.verdicts} for c in reviewed]
    shared: dict[tuple[str, str], list[tuple[bool, bool]]] = {}
    disputed: dict[tuple[str, str], Counter[str]] = {}
    for candidate in reviewed:
        for first, second in combinations(sorted(candidate.verdicts, key=lambda v: v.reviewer), 2):
            key = (first.reviewer, second.reviewer)
            shared.setdefault(key, []).append((first.accepted, second.accepted))
            disputed.setdefault(key, Counter()).update(set(first.reasons) ^ set(second.reasons))
    pairs = [
        PairAgreement(
            reviewers=key,
            n=len(items),
            agreed=sum(a == b for a, b in items),
            kappa=cohen_kappa(items),
            judged=len(items) >= MIN_ITEMS_TO_JUDGE,
            reasons_disputed=dict(disputed[key].most_common()),
        )
        for key, items in sorted(shared.items())
    ]
    tags = sorted({tag for c in reviewed for tag in c.tags})
    by_tag = {tag: _alpha([unit for unit, c in zip(units, reviewed, strict=True) if tag in c.tags]) for tag in tags}
    return AgreementReport(overlapped=len(reviewed), overall=_alpha(units), pairs=pairs, by_tag=by_tag)


def agreement_report(session: Session) -> AgreementReport:
    """The agreement report for the store behind `session` (what `synthgate agreement` and `stats` show)."""
    return compute_agreement(overlapped_verdicts(session))
