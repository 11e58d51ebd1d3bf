"""What one `generate` invocation did (the --json summary and the progress bar), and a dry run's estimate."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from generator.generation.writer import CallOutcome


@dataclass
class RunStats:
    """What one invocation did (and the run it belongs to); the --json summary and the progress bar read it."""

    run_id: str
    total_requests: int
    answered_before: int = 0
    requests_sent: int = 0
    cache_hits: int = 0
    recovered: int = 0  # answers an interrupted invocation had received, stored now without paying again
    outcomes: Counter[str] = field(default_factory=Counter)  # calls by status: ok, invalid, truncated, refused, failed
    retries: int = 0  # counted as each retry begins (the progress shows them live)
    # Live: calls handed to the provider in this invocation, and those of them in flight that needed a retry.
    dispatched: int = 0
    retrying: int = 0
    last_error: str | None = None  # the kind of the latest failed attempt, e.g. "connection refused"
    failure_causes: Counter[str] = field(default_factory=Counter)  # calls without an answer, by the kind of their last failure
    retry_causes: Counter[str] = field(default_factory=Counter)  # retries by what caused them: "429", "500", "a timeout"
    stop_fix: str | None = None  # what to do about the stop_reason, when the cause says more than "run it again"
    candidates: int = 0
    filtered: int = 0
    variant_candidates: int = 0  # stored by `--variants` after the run (not in `candidates`: the shortfall counts examples)
    # Where asked-for examples went missing (this invocation): asked by the run's planned requests
    # (re-asks only make up for cut answers), not written by the model, written but unusable, in
    # answers that could not be used at all, in calls without an answer, still cut off after re-asks.
    examples_asked: int = 0
    examples_short: int = 0
    short_answers: int = 0
    examples_unusable: int = 0
    examples_in_bad_answers: int = 0
    examples_unanswered: int = 0
    examples_given_up: int = 0
    salvaged: int = 0  # complete examples kept from answers cut off at max_tokens (counted in candidates too)
    reasked: int = 0  # re-ask requests planned by this invocation for the examples cut answers lacked
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    run_cost_usd: float = 0.0
    unpriced_model: str | None = None  # the model has no price: costs are unknown, not 0
    status: str = "running"
    stop_reason: str | None = None
    resumed: bool = False
    already_complete: bool = False
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def failed_calls(self) -> int:
        """Calls that gave no usable answer: failed after retries, invalid, truncated or refused."""
        return sum(n for status, n in self.outcomes.items() if status != "ok")

    @property
    def answered(self) -> int:
        """Answers (usable or not) this invocation stored: sent, cached or recovered."""
        return sum(self.outcomes.values()) - self.outcomes["failed"]

    @property
    def done(self) -> int:
        return self.answered_before + self.requests_sent + self.cache_hits + self.recovered - self.outcomes["failed"]

    def record(self, outcome: CallOutcome, *, reask: bool = False) -> None:
        """Count a stored call's outcome; `reask`: the call asked again for examples a cut answer lacked."""
        if outcome.status == "duplicate":
            return
        if not reask:
            self.examples_asked += outcome.asked
        self.examples_short += outcome.short
        self.short_answers += outcome.short > 0
        self.examples_unusable += outcome.unusable
        if outcome.status in ("invalid", "refused"):
            self.examples_in_bad_answers += outcome.asked
        elif outcome.status == "failed":
            self.examples_unanswered += outcome.asked
        if outcome.from_cache:
            self.cache_hits += 1
        elif outcome.recovered:
            self.recovered += 1
        else:
            self.requests_sent += 1
            self.input_tokens += outcome.input_tokens
            self.output_tokens += outcome.output_tokens
            self.cost_usd += outcome.cost_usd
        self.outcomes[outcome.status] += 1
        if outcome.status == "truncated":
            self.salvaged += outcome.candidates
        self.candidates += outcome.candidates
        self.filtered += outcome.filtered

    def failure_words(self) -> str:
        """The causes of failures and retries, e.g. "3 timed out, 2 connection refused, 17 retries after 429" ("" if none)."""
        parts = [f"{n} {cause}" for cause, n in self.failure_causes.most_common()]
        parts += [f"{n} {'retry' if n == 1 else 'retries'} after {cause}" for cause, n in self.retry_causes.most_common()]
        return ", ".join(parts)

    def as_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "stop_reason": self.stop_reason,
            "resumed": self.resumed,
            "requests_total": self.total_requests,
            "requests_answered_before": self.answered_before,
            "requests_sent": self.requests_sent,
            "cache_hits": self.cache_hits,
            "answers_recovered": self.recovered,
            "failed_calls": self.failed_calls,
            "failures": {status: self.outcomes[status] for status in ("failed", "invalid", "truncated", "refused")},
            "retries": self.retries,
            "failure_causes": dict(self.failure_causes),
            "retry_causes": dict(self.retry_causes),
            "candidates": self.candidates,
            "candidates_filtered": self.filtered,
            "variant_candidates": self.variant_candidates,
            "shortfall": {
                "examples_asked": self.examples_asked,
                "candidates": self.candidates,
                "not_written": self.examples_short,
                "short_answers": self.short_answers,
                "unusable": self.examples_unusable,
                "in_unusable_answers": self.examples_in_bad_answers,
                "without_an_answer": self.examples_unanswered,
                "cut_off_given_up": self.examples_given_up,
            },
            "examples_salvaged": self.salvaged,
            "requests_reasked": self.reasked,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": None if self.unpriced_model else round(self.cost_usd, 6),
            "run_cost_usd": None if self.unpriced_model else round(self.run_cost_usd, 6),
            "seconds": round(self.seconds, 3),
            "notes": self.notes,
        }


@dataclass(frozen=True)
class DryRun:
    run_id: str
    requests: int
    candidates: int
    prompt: list[dict[str, str]]
    input_tokens: int
    output_tokens: int
    worst_case_output_tokens: int
    cost_usd: float | None
    worst_case_cost_usd: float | None
    model: str
    max_tokens: str  # what max_tokens is and where it came from
    worst_case_reasks: int  # re-ask requests if every answer (and every re-ask) were cut

    def as_json(self) -> dict[str, Any]:
        return {
            "dry_run": True,
            "run_id": self.run_id,
            "model": self.model,
            "requests": self.requests,
            "candidates_asked": self.candidates,
            "estimated_input_tokens": self.input_tokens,
            "estimated_output_tokens": self.output_tokens,
            "estimated_cost_usd": None if self.cost_usd is None else round(self.cost_usd, 6),
            "worst_case_cost_usd": None if self.worst_case_cost_usd is None else round(self.worst_case_cost_usd, 6),
            "worst_case_reasks": self.worst_case_reasks,
            "max_tokens": self.max_tokens,
            "prompt": self.prompt,
            "requests_sent": 0,
        }
