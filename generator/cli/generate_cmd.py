"""`synthgate generate`: grow the review queue with LLM-generated candidates."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError

from generator.cli.app import app, console, err_console, state
from generator.config import GenerateSection, describe_field
from generator.errors import UserError, WorkFailed

if TYPE_CHECKING:
    from generator.generation.report import RunStats

# When --provider switches away from the configured provider without --model, this model is used
# (a config written for OpenAI names an OpenAI model).
DEFAULT_MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5"}


@app.command("generate")
def generate_command(
    ctx: typer.Context,
    count: Annotated[int | None, typer.Option("--count", "-n", help="Candidates wanted from this run.")] = None,
    provider: Annotated[str | None, typer.Option(help="openai (or any OpenAI-compatible server), anthropic, or replay.")] = None,
    model: Annotated[str | None, typer.Option(help="Model name, e.g. gpt-4o-mini or claude-haiku-4-5.")] = None,
    base_url: Annotated[
        str | None, typer.Option(help="Server URL handed to the SDK unchanged, e.g. http://localhost:11434/v1 (Ollama).")
    ] = None,
    template: Annotated[
        str | None, typer.Option(help="Prompt template (Jinja, with a system and a user block), relative to the project.")
    ] = None,
    few_shot: Annotated[int | None, typer.Option(help="Seeds shown as examples in each request.")] = None,
    per_request: Annotated[int | None, typer.Option(help="Examples asked of the model per request.")] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature.")] = None,
    max_tokens: Annotated[
        int | None,
        typer.Option(
            help="Most output tokens per request (default: derived from the seeds' answer lengths x --per-request, with a margin,"
            " within the model's limit). A cut answer keeps its complete examples; the rest are asked again with more room."
        ),
    ] = None,
    concurrency: Annotated[int | None, typer.Option(help="Most requests in flight at once.")] = None,
    rpm: Annotated[int | None, typer.Option(help="Requests-per-minute limit.")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens-per-minute limit (prompt estimate + max tokens per request).")] = None,
    max_cost: Annotated[float | None, typer.Option(help="Budget in USD for the whole run: no request is sent that could pass it.")] = None,
    seed: Annotated[
        int | None, typer.Option(help="Sampling seed. The same seed and settings resume the same run; another seed makes a new one.")
    ] = None,
    tag: Annotated[
        str | None, typer.Option(help="Aim every request at one tag of your seeds (e.g. a topic tag, or edge:ambiguous).")
    ] = None,
    fill_gaps: Annotated[
        bool,
        typer.Option(
            "--fill-gaps",
            help="Aim every request at the tag furthest below its \\[coverage] target (see `synthgate coverage`), as --tag would.",
        ),
    ] = False,
    variants: Annotated[
        int,
        typer.Option(
            help="Answers per question, 1-10: each generated example's last user turn is asked K-1 more times; the K answers are"
            " reviewed as a group and every accepted/rejected pair in it exports as a preference pair.",
        ),
    ] = 1,
    replay_file: Annotated[str | None, typer.Option(help="Recorded responses (JSONL) for --provider replay.")] = None,
    record: Annotated[
        Path | None, typer.Option(help="Write the run's responses to this JSONL file, replayable with --provider replay.", dir_okay=False)
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Render one full prompt and estimate tokens and cost for the whole run; send nothing.")
    ] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not reuse answers stored by other runs for identical requests.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (no progress bar) instead of tables.")] = False,
) -> None:
    """Generate candidates from the verified seeds with an LLM; they wait in the review queue for a human.

    Every request is journaled before it is sent and every answer is stored the moment it arrives, so an interrupted run resumes (the same command again) without paying twice.

    Exit codes: 0 done; 1 the work failed (provider down, budget reached); 2 bad input (seeds, template, flags, key).
    """
    from generator.generation.engine import Generation
    from generator.generation.progress import LiveProgress, dry_run_lines, summary_table
    from generator.generation.shortfall import explain_shortfall
    from generator.generation.writer import JournalWriter

    cli = state(ctx)
    project = cli.project
    if fill_gaps:
        tag = _gap_tag(cli, tag)
    flags = {
        "count": count, "provider": provider, "model": model, "base_url": base_url, "template": template, "few_shot": few_shot,
        "per_request": per_request, "temperature": temperature, "max_tokens": max_tokens, "concurrency": concurrency, "rpm": rpm,
        "tpm": tpm, "max_cost": max_cost, "seed": seed, "tag": tag, "replay_file": replay_file,
    }  # fmt: skip
    settings = resolve_settings(project.config.generate, {k: v for k, v in flags.items() if v is not None})
    _check_variants(variants)
    # Started first: the writer process imports what it needs (~1 s) while this one loads the project,
    # the store and the SDK. The run closes it; so does the `finally` if the run never starts.
    writer = None if dry_run else JournalWriter()
    try:
        generation = Generation(project, settings, no_cache=no_cache, dry_run=dry_run)

        # Said before anything is sent: a changed input (seeds, template, model, parameters) makes a new, paid run.
        change = generation.change_since_latest_run(cli.engine)
        change_lines = [] if change is None else change.lines(generation.run_id, cached=not no_cache)
        if dry_run:
            report = generation.dry_run(cli.engine)
            if as_json:
                payload = {**report.as_json(), "new_run": change and change.as_json(), "variant_requests": settings.count * (variants - 1)}
                console.print(json.dumps(payload, indent=2, ensure_ascii=False), soft_wrap=True)
            else:
                from generator.generation import variants as variant_phase

                extra = variant_phase.dry_run_lines(generation, variants=variants) if variants > 1 else []
                for line in [*dry_run_lines(report), *extra, *change_lines]:
                    console.print(line, soft_wrap=True)  # the prompt verbatim, not re-wrapped
            return

        show_progress = not as_json and sys.stderr.isatty()
        if not as_json:
            err_console.print(f"Run {generation.run_id}: {settings.count} candidates from {settings.provider} {settings.model}.")
            for line in change_lines:
                err_console.print(line, soft_wrap=True)
        try:
            if show_progress:
                with LiveProgress(err_console) as progress:
                    stats = generation.run(cli.engine, on_progress=progress.update, writer=writer)
            else:
                stats = generation.run(cli.engine, writer=writer)
            if variants > 1 and stats.status == "complete":
                from generator.generation.variants import generate_variants

                variant_stats = generate_variants(generation, cli.engine, variants=variants)
                stats.variant_candidates = variant_stats.stored
                stats.notes.append(variant_stats.note(variants))
        except KeyboardInterrupt:
            err_console.print("interrupted: every answer received is stored; run the same command again to resume the run.")
            raise typer.Exit(130) from None

    finally:
        if writer is not None:
            writer.close()
    _mark_overlap(cli)

    if record is not None:
        from generator.generation.providers.replay import write_recording
        from generator.store.db import read_session

        with read_session(cli.engine) as session:
            lines = write_recording(session, run_id=stats.run_id, path=record)
        stats.notes.append(f"recorded {lines} response(s) to {record}")

    message = _outcome_message(stats, settings)
    shortfall = explain_shortfall(stats, settings)
    if shortfall is not None:
        message += " " + shortfall.text
    if as_json:
        summary = stats.as_json() | {"new_run": change and change.as_json()}
        summary["shortfall"] |= {"explanation": shortfall and shortfall.text, "next_flags": shortfall and shortfall.next_command}
        console.print(json.dumps({**summary, "message": message}, indent=2, ensure_ascii=False), soft_wrap=True)
    else:
        if not stats.already_complete:
            console.print(summary_table(stats))
        for note in stats.notes:
            console.print(f"note: {note}")
        console.print(message)
    if stats.status != "complete":
        raise WorkFailed(f"run {stats.run_id} stopped: {stats.stop_reason}", fix=_resume_fix(stats))


def _mark_overlap(cli: Any) -> None:
    """[review] overlap is marked here, by the owner who queued the candidates (reviewers' roles may not)."""
    from generator.store.overlap import mark_overlap_as_owner

    review = cli.project.config.review
    mark_overlap_as_owner(cli.engine, share=review.overlap, reviewers=review.overlap_reviewers)


def resolve_settings(configured: GenerateSection, flags: dict[str, Any]) -> GenerateSection:
    """The [generate] section with the flags given on the command line applied; a bad flag value is an exit-2 error."""
    values = configured.model_dump()
    if "provider" in flags and flags["provider"] != configured.provider:
        # Another provider: the configured model and server belong to the configured one.
        values["model"] = DEFAULT_MODELS.get(flags["provider"], configured.model)
        values["base_url"] = None
    values.update(flags)
    try:
        return GenerateSection.model_validate(values)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else ""
        where = f"--{field.replace('_', '-')}" if field in flags else f"[generate] {field} in synthgate.toml"
        fix = describe_field(["generate", field]) if field in GenerateSection.model_fields else "see `synthgate generate --help`"
        raise UserError(f"{where}: {error['msg']} (got {error.get('input')!r})", fix=fix) from None


def _check_variants(variants: int) -> None:
    from generator.generation.variants import MAX_VARIANTS

    if not 1 <= variants <= MAX_VARIANTS:
        raise UserError(f"--variants {variants}: answers per question must be 1-{MAX_VARIANTS}", fix="pass e.g. --variants 3")


def _gap_tag(cli: Any, tag: str | None) -> str:
    """--fill-gaps: the least covered tag, handed to the --tag focus (the one seam into generation: nothing else changes)."""
    from generator.coverage import coverage, furthest_below_target
    from generator.store.db import read_session

    if tag is not None:
        raise UserError("--fill-gaps and --tag both choose the tag to aim at", fix="pass one of them")
    with read_session(cli.engine) as session:
        rows = coverage(session, cli.project.config.coverage)
    gap = furthest_below_target(rows)
    if gap is None:
        if not rows:
            raise UserError("--fill-gaps: no coverage targets yet", fix="run `synthgate seeds check` to record the seeds' tags first")
        err_console.print("Every tag the seeds carry has reached its [coverage] target: nothing to fill (see `synthgate coverage`).")
        raise typer.Exit(0)
    err_console.print(f"Filling the largest gap: tag {gap.tag} ({gap.accepted} accepted of a target of {gap.target}).")
    return gap.tag


def _outcome_message(stats: RunStats, settings: GenerateSection) -> str:
    next_seed = f"--seed {settings.seed + 1}"
    if stats.already_complete:
        return (
            f"Run {stats.run_id} is already complete ({stats.total_requests} requests answered); 0 requests sent. "
            f"For more candidates, run again with another sampling seed, e.g. {next_seed}."
        )
    cut = ""
    if stats.outcomes["truncated"] or stats.reasked:
        cut = (
            f" {stats.outcomes['truncated']} answer(s) cut off at max_tokens: {stats.salvaged} complete example(s) salvaged,"
            f" {stats.reasked} re-ask(s) for the rest."
        )
    if stats.status == "complete":
        filtered = f" ({stats.filtered} filtered by checks)" if stats.filtered else ""
        variants = f" and {stats.variant_candidates} variant answer(s) in their groups" if stats.variant_candidates else ""
        text = f"Done: {stats.candidates} new candidate(s){filtered}{variants} in the review queue. Next: `synthgate review`."
        return text + cut + f" More candidates: run again with {next_seed}."
    causes = f" Failures: {words}." if (words := stats.failure_words()) else ""
    return f"Stopped after {stats.done} of {stats.total_requests} requests: {stats.stop_reason}.{causes}{cut}"


def _resume_fix(stats: RunStats) -> str:
    if stats.stop_fix:
        return stats.stop_fix
    if stats.stop_reason and "max-cost" in stats.stop_reason:
        return "raise --max-cost and run the same command again: the run resumes where it stopped"
    return "run the same command again to retry the requests without an answer (answers already stored are kept)"
