"""`synthgate generate`, start to finish: check the input, journal the run, send what is missing, store what arrives."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import math
import os
import time
from collections.abc import Callable
from dataclasses import replace
from itertools import islice, takewhile
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from generator.checks.reference import load_holdout
from generator.config import GenerateSection, locate_key
from generator.errors import UserError, WorkFailed
from generator.generation import journal
from generator.generation.answer_log import Arrival, answer_log_path, read_answer_log
from generator.generation.dispatch import Dispatcher
from generator.generation.feedback import rejection_reasons
from generator.generation.max_tokens import derived_max_tokens, model_limit, reask_max_tokens
from generator.generation.planning import MAX_REASK_ROUNDS, ContextFile, RequestPlanner, run_id_for, run_identity, seed_set_hash
from generator.generation.pricing import PriceTable, estimate_tokens
from generator.generation.providers import import_provider, make_provider
from generator.generation.providers.base import Provider, check_base_url
from generator.generation.report import DryRun, RunStats
from generator.generation.rerun import RunChange, compare_with_latest
from generator.generation.run_lease import run_lease
from generator.generation.secrets import api_key
from generator.generation.templates import PromptTemplate
from generator.generation.writer import JournalWriter, Provenance
from generator.project import Project
from generator.seed_lint import raise_on_seed_errors
from generator.seeds import Seed, load_project_seeds
from generator.store.db import FileIdentity, check_store_file, read_session, sqlite_path, store_fault, write_session
from generator.store.intake import sync_seeds
from generator.store.models import Run


class Generation:
    """One `generate` invocation. Everything that can be wrong with the input is found in __init__ (exit 2)."""

    def __init__(self, project: Project, settings: GenerateSection, *, no_cache: bool = False, dry_run: bool = False) -> None:
        self.project = project
        self.settings = settings
        self.no_cache = no_cache
        self.template = PromptTemplate.load(project.path(settings.template))
        self.context = [self._context_file(name) for name in settings.context_files]
        self.seeds = self._load_seeds()
        # Unset: derived from the seeds (part of the run's identity, like the seeds themselves). The
        # writer process receives the settings resolved, so it derives nothing and agrees.
        self.max_tokens_derived = settings.max_tokens is None
        if settings.max_tokens is None:
            derived = derived_max_tokens(self.seeds, per_request=settings.per_request, model=settings.model)
            self.settings = settings = settings.model_copy(update={"max_tokens": derived})
        self.holdout = load_holdout(project)  # a missing or broken holdout file stops us here, before anything is written
        self.prices = PriceTable(project.config.pricing)
        self.replay_file = self._replay_file()
        self.priced = settings.provider != "replay"
        check_base_url(settings.provider, settings.base_url)
        if not dry_run and settings.provider in ("openai", "anthropic"):
            api_key(settings.provider, base_url=settings.base_url)  # a missing key stops us before anything is written
        if settings.max_cost is not None and self.priced and self.prices.price(settings.model) is None:
            raise UserError(
                f"--max-cost needs a price for model {settings.model!r}, and the built-in table has none",
                file=project.config_path,
                fix=f'add [pricing."{settings.model}"] with input_per_mtok and output_per_mtok to synthgate.toml',
            )
        replay_hash = hashlib.sha256(self.replay_file.read_bytes()).hexdigest() if self.replay_file else None
        self.identity = run_identity(
            settings,
            template_hash=self.template.hash,
            seeds_hash=seed_set_hash(self.seeds),
            context=self.context,
            replay_hash=replay_hash,
            description=project.config.project.description,
        )
        self.run_id = run_id_for(self.identity)

    def _context_file(self, name: str) -> ContextFile:
        path = self.project.path(name)
        if path.exists() and not path.is_file():  # a folder cannot be read; a named pipe or a device would be waited on forever
            problem = "not a regular file"
        else:
            try:
                return ContextFile(name=name, text=path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError) as exc:
                problem = getattr(exc, "strerror", None) or str(exc)
        config_text = self.project.config_path.read_text(encoding="utf-8")
        raise UserError(
            f"cannot read context file {name!r}: {problem}",
            file=self.project.config_path,
            line=locate_key(config_text, ["generate", "context_files"]),
            fix="correct [generate] context_files, or create the file (UTF-8 text)",
        )

    def _load_seeds(self) -> list[Seed]:
        seed_set = load_project_seeds(self.project)
        raise_on_seed_errors(seed_set, self.project.root)  # e.g. an exact duplicate: `seeds check` fails, so generate does not run
        if not seed_set.seeds and self.settings.few_shot > 0:
            raise UserError(
                "no verified seeds to show the model",
                file=self.project.config_path,
                fix="add examples to the files in [seeds] paths (see `synthgate seeds check`), or set few_shot = 0",
            )
        return seed_set.seeds

    def _replay_file(self) -> Path | None:
        if self.settings.provider != "replay":
            return None
        if not self.settings.replay_file:
            raise UserError("--provider replay needs a recording", fix="pass --replay-file FILE (write one with --record FILE)")
        path = self.project.path(self.settings.replay_file)
        if not path.is_file():
            raise UserError("replay file not found", file=path, fix="pass --replay-file FILE (write one with --record FILE)")
        return path

    def planner(self, reasons: list[tuple[str, int]]) -> RequestPlanner:
        return RequestPlanner(
            settings=self.settings,
            template=self.template,
            seeds=self.seeds,
            context=self.context,
            rejection_reasons=reasons,
            description=self.project.config.project.description,
        )

    @property
    def planner_total(self) -> int:
        """Requests the run plans (re-asks come after them, from this index on)."""
        return math.ceil(self.settings.count / self.settings.per_request)

    def planner_for(self, run: Run) -> RequestPlanner:
        """The planner of a stored run: a resumed run keeps the feedback it started with, so its remaining prompts are the planned ones."""
        return self.planner([tuple(pair) for pair in run.config.get("rejection_reasons", [])])

    def dry_run(self, engine: Engine) -> DryRun:
        """Render the first prompt and a sample of the rest, estimate tokens and cost for the whole run; send and write nothing."""
        with read_session(engine) as session:
            planner = self.planner(rejection_reasons(session, template_hash=self.template.hash))
        first = planner.build(0)
        input_tokens = planner.estimated_input_tokens()
        # Expect answers about as long as the seeds (plus JSON punctuation); the worst case is max_tokens each.
        per_example = sum(estimate_tokens(s.example.model_dump_json()) for s in self.seeds) / max(1, len(self.seeds)) or 200
        output_tokens = int(self.settings.count * per_example * 1.1)
        # The worst case: every answer cut, and every re-ask cut again, each using all its max_tokens.
        rounds = self.reask_room()
        worst = planner.total * sum(rounds)
        input_tokens_worst = input_tokens * len(rounds)
        price = self.prices.price(self.settings.model) if self.priced else (0.0, 0.0)

        def cost(out: int, inputs: int = input_tokens) -> float | None:
            return None if price is None else (inputs * price[0] + out * price[1]) / 1_000_000

        return DryRun(
            self.run_id,
            planner.total,
            self.settings.count,
            first.messages,
            input_tokens,
            output_tokens,
            worst,
            cost(output_tokens),
            cost(worst, input_tokens_worst),
            self.settings.model,
            self.max_tokens_note(),
            planner.total * (len(rounds) - 1),
        )

    def change_since_latest_run(self, engine: Engine) -> RunChange | None:
        """What makes this a new run (None: it resumes, is complete, or is the store's first)."""
        with read_session(engine) as session:
            return compare_with_latest(
                session,
                run_id=self.run_id,
                identity=self.identity,
                template=str(Path(self.settings.template)),
                seed_count=len(self.seeds),
                requests=self.planner_total,
            )

    def reask_room(self) -> list[int]:
        """max_tokens of a request, then of its re-ask, and so on (a cut answer's re-ask gets more room)."""
        limit = model_limit(self.settings.model, configured=self.settings.max_tokens)
        rounds = [self.settings.max_tokens or 0]
        for _ in range(MAX_REASK_ROUNDS):
            rounds.append(reask_max_tokens(rounds[-1], limit=limit))
        return rounds

    def max_tokens_note(self) -> str:
        how = "derived from the seeds' answer lengths" if self.max_tokens_derived else "as configured"
        return f"max_tokens {self.settings.max_tokens} per request ({how}; re-asks of cut answers up to {self.reask_room()[-1]})"

    def run(
        self, engine: Engine, *, on_progress: Callable[[RunStats], None] = lambda stats: None, writer: JournalWriter | None = None
    ) -> RunStats:
        """Lease and journal the run (or find it), store what an interrupted invocation left, send what it still lacks.

        `writer`: one created earlier (its process starts up while the caller gets ready); closed here.
        """
        provenance = Provenance(run_id=self.run_id, template_hash=self.template.hash, model=self.settings.model, priced=self.priced)
        log_path = answer_log_path(self.project.state_dir, db_url=engine.url.render_as_string(hide_password=True), run_id=self.run_id)
        store_file = FileIdentity.of(sqlite_path(engine))  # the store exists: the CLI opened (and migrated) it
        writer = writer or JournalWriter()
        try:
            writer.start(
                project=self.project,
                settings=self.settings,
                db_url=engine.url.render_as_string(hide_password=False),
                run_id=self.run_id,
                provenance=provenance,
                log_path=log_path,
                store_file=store_file,
            )
            # The SDK import (~0.7 s for openai) is process start-up, not work on the run: it stays
            # out of the run's wall time.
            import_provider(self.settings.provider)
            started = time.perf_counter()
            with run_lease(engine, self.run_id, pids=[os.getpid(), writer.pid]) as lease:
                with write_session(engine) as session:
                    sync_seeds(session, self.seeds, root=self.project.root)
                logged = read_answer_log(log_path)
                stats = self._journal(engine, logged_indices=[a.request_index for a in logged])
                if stats.status == "complete":
                    log_path.unlink(missing_ok=True)  # left by a run that stored everything but was stopped before it removed it
                    return stats
                writer.begin()
                # What exists now (modules, config, seeds, planner) lives as long as the run: taken out
                # of the collector's sight, no full collection stalls the event loop (~0.1 s per pass
                # at this heap size).
                gc.freeze()
                try:
                    provider = self._provider()
                    on_progress(stats)
                    dispatcher = Dispatcher(self, engine, provider, writer, stats, on_progress, lease=lease)
                    asyncio.run(dispatcher.run(recovered=self._recoverable(engine, logged)))
                finally:
                    # Even on Ctrl-C: every answer received is committed, or stays in the log. Removed
                    # only here, under the lease: another process may be running (and logging) this run.
                    if writer.close():
                        log_path.unlink(missing_ok=True)
                    gc.unfreeze()  # the run is over: a caller that goes on (tests, a notebook) collects as usual
                    self._finish(engine, stats, writer, store_file)
                    stats.seconds = time.perf_counter() - started
                return stats
        finally:
            writer.close()  # whatever stopped the run before it began

    def _provider(self) -> Provider:
        settings = self.settings
        return make_provider(
            settings.provider,
            model=settings.model,
            base_url=settings.base_url,
            structured_output=settings.structured_output,
            timeout=settings.timeout,
            concurrency=settings.concurrency,
            replay_file=self.replay_file,
        )

    def _journal(self, engine: Engine, *, logged_indices: list[int]) -> RunStats:
        """Create (or find) the run and journal its first requests (and all those logged answers belong to); returns the run's stats.

        Only a head start (enough to fill the workers and their queue) is journaled here, so sending
        starts at once; the writer process journals the rest ahead of the dispatcher.
        """
        with write_session(engine) as session:
            template_path = str(Path(self.settings.template))
            reasons = rejection_reasons(session, template_hash=self.template.hash)
            run, resumed = journal.open_run(
                session,
                run=Run(
                    id=self.run_id,
                    provider=self.settings.provider,
                    model=self.settings.model,
                    base_url=self.settings.base_url,
                    template=template_path,
                    template_hash=self.template.hash,
                    sampling_seed=self.settings.seed,
                    target_count=self.settings.count,
                    # seed_count: not part of the identity; lets a later run say "65 -> 70 verified examples".
                    config={**self.identity, "template": template_path, "rejection_reasons": reasons, "seed_count": len(self.seeds)},
                ),
            )
            planner = self.planner_for(run)
            # Re-asks (indices from planner.total on) were journaled before they were sent: only planned requests count here.
            through_index = max((i for i in logged_indices if i < planner.total), default=-1)
            backlog = planner.journal_rows(run_id=run.id, skip=journal.planned_indices(session, run_id=run.id))
            head_start = list(islice(backlog, 2 * self.settings.concurrency))
            # The calls that logged answers belong to are journaled before those answers are stored.
            head_start += takewhile(lambda row: row["request_index"] <= through_index, backlog)
            journal.journal_calls(session, rows=head_start)
            # Cut answers an earlier invocation stored without re-asking them (it was stopped): re-asked now.
            reasks = self._reask_rows(session, planner)
            journal.journal_calls(session, rows=reasks)
            totals = journal.run_totals(session, run_id=run.id)
            stats = RunStats(
                run_id=run.id,
                total_requests=planner.total + len(journal.planned_from(session, run_id=run.id, first=planner.total)),
                answered_before=totals.answered,
                resumed=resumed,
                run_cost_usd=totals.cost_usd,
                reasked=len(reasks),
                unpriced_model=self.settings.model if self.priced and self.prices.price(self.settings.model) is None else None,
            )
            if self.settings.provider != "replay":  # replayed answers were cut (or not) when they were recorded
                stats.notes.append(self.max_tokens_note())
            if journal.unanswered(session, run_id=run.id, total=planner.total) == 0:
                journal.finish_run(session, run_id=run.id, status="complete", stop_reason=None)
                stats.status, stats.already_complete = "complete", resumed
        return stats

    def _reask_rows(self, session: Session, planner: RequestPlanner) -> list[dict[str, Any]]:
        cut = journal.cut_calls(session, run_id=self.run_id)
        if not cut:
            return []
        return planner.reask_rows(
            run_id=self.run_id, cut=cut, planned=journal.planned_from(session, run_id=self.run_id, first=planner.total)
        )

    def _given_up(self, session: Session, planner: RequestPlanner) -> int:
        """Examples missing from cut answers that are re-asks of the last round (not asked again)."""
        last = [call for call in journal.cut_calls(session, run_id=self.run_id) if call.index // planner.total >= MAX_REASK_ROUNDS]
        return sum(planner.missing(call) for call in last)

    def journal_reasks(self, engine: Engine) -> int:
        """Journal the re-asks of the answers cut since the last look; returns how many (sent next, in this invocation)."""
        with write_session(engine) as session:
            run = session.get(Run, self.run_id)
            assert run is not None, "journaled before it was sent"
            rows = self._reask_rows(session, self.planner_for(run))
            journal.journal_calls(session, rows=rows)
        return len(rows)

    def _recoverable(self, engine: Engine, logged: list[Arrival]) -> list[Arrival]:
        """The logged answers this store still lacks, each pointed at its call here (the log may come from a store since replaced)."""
        if not logged:
            return []
        with read_session(engine) as session:
            calls = journal.calls_by_index(session, run_id=self.run_id, indices=[a.request_index for a in logged])
        return [
            replace(arrival, call_id=calls[arrival.request_index][0])
            for arrival in logged
            if arrival.request_index in calls and calls[arrival.request_index][1] == arrival.request_hash
        ]

    def _finish(self, engine: Engine, stats: RunStats, writer: JournalWriter, store_file: FileIdentity) -> None:
        if stats.recovered:
            stats.notes.append(f"stored {stats.recovered} answer(s) an interrupted run had received (not paid again)")
        try:
            check_store_file(store_file)
            with write_session(engine) as session:
                totals = journal.run_totals(session, run_id=self.run_id)
                run = session.get(Run, self.run_id)
                assert run is not None
                planner = self.planner_for(run)
                # Journaled or not (a stopped run may not have journaled them all), re-asks not planned yet included.
                unanswered = journal.unanswered(session, run_id=self.run_id, total=planner.total) + len(self._reask_rows(session, planner))
                stats.status = "complete" if unanswered == 0 else "stopped"
                if given_up := self._given_up(session, planner):
                    stats.examples_given_up = given_up
                    # A replayed answer is what was recorded: no --max-tokens changes it.
                    what = (
                        "record the run again from the live provider (--record FILE)"
                        if self.settings.provider == "replay"
                        else "raise --max-tokens or lower --per-request"
                    )
                    stats.notes.append(f"{given_up} example(s) still cut off after {MAX_REASK_ROUNDS} re-asks with more room: {what}")
                if stats.status == "stopped" and stats.stop_reason is None:
                    causes = ", ".join(f"{n} {cause}" for cause, n in stats.failure_causes.most_common())
                    stats.stop_reason = f"{unanswered} request(s) without an answer" + (f" ({causes})" if causes else "")
                journal.finish_run(session, run_id=self.run_id, status=stats.status, stop_reason=stats.stop_reason)
                stats.run_cost_usd = totals.cost_usd
        except (DBAPIError, OSError, WorkFailed) as error:  # the store failed under the run: the answer log keeps what it could not take
            why = error.message if isinstance(error, WorkFailed) else f"the review store failed: {store_fault(error)}"
            stats.status = "stopped"
            stats.stop_reason = stats.stop_reason or f"{why} (every answer received is kept in {writer.log_path})"
