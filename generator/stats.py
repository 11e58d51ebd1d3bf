"""What the store holds, as one JSON-ready dict (the `synthgate stats` contract: keys are only ever added)."""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from dataclasses import asdict
from typing import Any

import orjson
from sqlalchemy import String, Text, cast, func
from sqlalchemy import select as sql_select
from sqlmodel import Session, col, select

from generator.agreement import agreement_report
from generator.attention import attention_by_reviewer
from generator.charts import Histogram, histogram
from generator.checks.report import filtered_by_reason, flags_by_kind
from generator.config import CoverageSection
from generator.coverage import coverage, coverage_json
from generator.generation.pricing import PriceTable
from generator.store.audit import live
from generator.store.models import Candidate, Decision, LLMCall, Run, SeedRecord
from generator.store.queue import queue_counts

TOP_REASONS = 10
# Values per series drawn (the newest): keeps `stats` quick on a store of millions, and the shape is the same.
CHART_SAMPLE = 20_000


def collect_stats(
    session: Session, coverage_settings: CoverageSection | None = None, *, min_dwell_ms: int = 500, prices: PriceTable | None = None
) -> dict[str, Any]:
    candidates = queue_counts(session)
    return {
        "agreement": agreement_report(session).to_dict(),
        "attention": attention_by_reviewer(session, min_dwell_ms=min_dwell_ms),
        "coverage": coverage_json(coverage(session, coverage_settings or CoverageSection())),
        "distributions": {name: asdict(chart) for name, chart in distributions(session).items()},
        "seeds": session.exec(select(func.count()).select_from(SeedRecord)).one(),
        "runs": session.exec(select(func.count()).select_from(Run)).one(),
        "decisions": session.exec(select(func.count()).select_from(Decision)).one(),
        "candidates": candidates,
        "filtered_by_reason": filtered_by_reason(session),
        "flags_by_kind": flags_by_kind(session),
        "acceptance": acceptance(session),
        "reject_reasons": reject_reasons(session),
        "reviewers": reviewer_throughput(session),
        "cost": api_cost(session, accepted=candidates["accepted"], prices=prices),
    }


def _rates(counts: dict[str, Counter[str]]) -> dict[str, dict[str, Any]]:
    """Per group: accepted, rejected, pending, and the acceptance rate among decided candidates."""
    table = {}
    for group, by_status in sorted(counts.items()):
        decided = by_status["accepted"] + by_status["rejected"]
        table[group] = {
            "accepted": by_status["accepted"],
            "rejected": by_status["rejected"],
            "pending": by_status["pending"],
            "acceptance_rate": round(by_status["accepted"] / decided, 4) if decided else None,
        }
    return table


def acceptance(session: Session) -> dict[str, dict[str, dict[str, Any]]]:
    """Acceptance rate by generation run, template, model and tag (filtered candidates left out: no human saw them)."""
    templates = {h: name for h, name in session.execute(select(col(Run.template_hash), col(Run.template)).distinct())}
    tables: dict[str, dict[str, Counter[str]]] = {key: defaultdict(Counter) for key in ("by_run", "by_template", "by_model", "by_tag")}
    by_run, by_template, by_model, by_tag = tables.values()
    # One scan of the candidates, grouped in SQL (the tag list by its text), so only the distinct
    # combinations of run, template, model and tags reach Python.
    groups = (
        col(Candidate.run_id),
        col(Candidate.template_hash),
        col(Candidate.model),
        cast(Candidate.tags, String),
        col(Candidate.status),
    )
    # SQLAlchemy's select(): sqlmodel's is typed for at most four columns.
    rows = session.execute(sql_select(*groups, func.count()).where(col(Candidate.status) != "filtered").group_by(*groups))
    for run_id, template_hash, model, tags_text, status, count in rows:
        by_run[run_id or "(none)"][status] += count
        by_template[f"{templates.get(template_hash, '?')} ({template_hash[:12]})" if template_hash else "(none)"][status] += count
        by_model[model or "(none)"][status] += count
        for tag in json.loads(tags_text) or ["(untagged)"]:
            by_tag[tag][status] += count
    return {key: _rates(counts) for key, counts in tables.items()}


def reject_reasons(session: Session) -> dict[str, int]:
    """The most frequent reasons of live (not undone) rejections, most frequent first."""
    decision = Decision.__table__  # type: ignore[attr-defined]  # set by SQLModel when the class is made
    counts: Counter[str] = Counter()
    rows = session.execute(
        select(decision.c.reasons).where(decision.c.action == "reject", live(decision)), execution_options={"yield_per": 5000}
    )
    for (reasons,) in rows:
        counts.update(reasons)
    return dict(counts.most_common(TOP_REASONS))


def reviewer_throughput(session: Session) -> dict[str, Any]:
    """Median seconds per decision, overall and per reviewer (timed accept, reject and edit decisions)."""
    seconds: dict[str, list[float]] = defaultdict(list)
    rows = session.execute(
        select(Decision.reviewer, Decision.seconds).where(Decision.action != "undo", col(Decision.seconds).is_not(None)),
        execution_options={"yield_per": 5000},
    )
    for reviewer, spent in rows:
        seconds[reviewer].append(spent)
    every = [s for spent in seconds.values() for s in spent]
    return {
        "median_seconds_per_decision": round(statistics.median(every), 2) if every else None,
        "by_reviewer": {
            name: {"decisions": len(spent), "median_seconds": round(statistics.median(spent), 2)} for name, spent in sorted(seconds.items())
        },
    }


def api_cost(session: Session, *, accepted: int, prices: PriceTable | None = None) -> dict[str, Any]:
    """What generation cost: USD in total and per accepted example, calls and tokens.

    `unpriced_models`: models of runs that paid a provider without a known price (a local server,
    a new model): their calls count $0 in the total, which is then a lower bound, and says so.
    """
    calls, total, tokens_in, tokens_out = session.execute(
        select(func.count(), func.sum(LLMCall.cost_usd), func.sum(LLMCall.input_tokens), func.sum(LLMCall.output_tokens))
    ).one()
    total = round(total or 0.0, 6)
    prices = prices or PriceTable()
    models = session.exec(select(Run.model).where(col(Run.provider) != "replay").distinct()).all()
    return {
        "calls": calls,
        "input_tokens": tokens_in or 0,
        "output_tokens": tokens_out or 0,
        "total_usd": total,
        "per_accepted_usd": round(total / accepted, 6) if accepted else None,
        "unpriced_models": sorted(model for model in models if prices.price(model) is None),
    }


def _answer_length(messages_json: str) -> int | None:
    """Characters of the last assistant turn (None when there is none)."""
    answers = [m.get("content") or "" for m in orjson.loads(messages_json) if m.get("role") == "assistant"]
    return len(answers[-1]) if answers else None


def distributions(session: Session) -> dict[str, Histogram]:
    """What `stats` draws: answer length (seeds, accepted, rejected), similarity to the nearest seed, seconds per decision per reviewer."""
    candidate = Candidate.__table__  # type: ignore[attr-defined]  # set by SQLModel when the class is made
    seed = SeedRecord.__table__  # type: ignore[attr-defined]
    lengths: dict[str, list[float]] = {}
    sources = {
        "seeds": sql_select(cast(seed.c.messages, Text)).limit(CHART_SAMPLE),
        "accepted": sql_select(cast(candidate.c.messages, Text))
        .where(candidate.c.status == "accepted")
        .order_by(candidate.c.id.desc())
        .limit(CHART_SAMPLE),
        "rejected": sql_select(cast(candidate.c.messages, Text))
        .where(candidate.c.status == "rejected")
        .order_by(candidate.c.id.desc())
        .limit(CHART_SAMPLE),
    }
    for name, statement in sources.items():
        lengths[name] = [n for (text,) in session.execute(statement) if (n := _answer_length(text)) is not None]
    similarity: dict[str, list[float]] = defaultdict(list)
    rows = session.execute(
        sql_select(candidate.c.status, candidate.c.nearest_seed_similarity)
        .where(candidate.c.nearest_seed_similarity.is_not(None))
        .order_by(candidate.c.id.desc())
        .limit(CHART_SAMPLE)
    )
    for status, value in rows:
        similarity[status].append(value)
    pace: dict[str, list[float]] = defaultdict(list)
    decisions = session.execute(
        sql_select(col(Decision.reviewer), col(Decision.seconds))
        .where(col(Decision.action) != "undo", col(Decision.seconds).is_not(None))
        .order_by(col(Decision.id).desc())
        .limit(CHART_SAMPLE)
    )
    for reviewer, seconds in decisions:
        pace[reviewer].append(seconds)
    return {
        "answer_length": histogram("Answer length (characters of the last assistant turn)", "chars", lengths),
        "nearest_seed_similarity": histogram(
            "Similarity to the nearest seed",
            "",
            {k: similarity[k] for k in ("accepted", "rejected", "pending", "filtered") if k in similarity},
        ),
        "seconds_per_decision": histogram("Seconds per decision, by reviewer", "s", dict(sorted(pace.items()))),
    }
