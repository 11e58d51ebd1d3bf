"""Machine checks that run before review: filter what is provably bad, flag what deserves a closer look.

Checks never accept anything; they only set a candidate to `filtered` (with the reason and the
matching record) or attach flags for the reviewer.
"""

from generator.checks.result import CheckResult
from generator.checks.runner import CandidateChecker

__all__ = ["CandidateChecker", "CheckResult"]
