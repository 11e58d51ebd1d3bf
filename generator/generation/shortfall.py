"""Why a run brought fewer candidates than it asked for, in counts, and the command that makes up for it."""

from __future__ import annotations

import math
from dataclasses import dataclass

from generator.config import GenerateSection
from generator.generation.report import RunStats


@dataclass(frozen=True)
class Shortfall:
    text: str  # "Asked for 100 example(s), got 47: ..."
    next_command: str | None  # flags to run again with, e.g. "--seed 1 -n 113"


def explain_shortfall(stats: RunStats, settings: GenerateSection) -> Shortfall | None:
    """None when the invocation got every example it asked for (or asked for none)."""
    asked, got = stats.examples_asked, stats.candidates
    if asked == 0 or got >= asked:
        return None
    causes = []
    if stats.examples_short:
        causes.append(
            f"the model wrote {stats.examples_short} fewer than asked"
            f" ({stats.short_answers} answer(s) held fewer than the {settings.per_request} asked per request)"
        )
    if stats.examples_unusable:
        causes.append(f"{stats.examples_unusable} written example(s) were unusable (not a conversation of the asked shape)")
    if stats.examples_in_bad_answers:
        causes.append(f"{stats.examples_in_bad_answers} were asked in answers that could not be used (invalid or refused)")
    if stats.examples_unanswered:
        causes.append(f"{stats.examples_unanswered} were asked in requests without an answer")
    if stats.examples_given_up:
        causes.append(f"{stats.examples_given_up} were still cut off at max_tokens after the re-asks")
    filtered = f" ({stats.filtered} of them filtered by checks)" if stats.filtered else ""
    text = f"Asked for {asked} example(s), got {got}{filtered}: " + ("; ".join(causes) or "some were lost") + "."
    missing = asked - got
    if stats.examples_unanswered:
        # Requests without an answer are the run's own unfinished work: the same command resumes them (paid
        # answers are kept), and only what is still missing after that needs another run.
        return Shortfall(text + " Run the same command again to retry the requests without an answer.", None)
    next_command = None
    if stats.examples_short * 2 >= missing and stats.short_answers:
        # Mostly short answers: the model writes about this many per request, whatever it is asked.
        answers = stats.outcomes["ok"] + stats.outcomes["truncated"]
        written = max(1, math.floor((got + stats.examples_unusable) / max(answers, 1)))
        if written < settings.per_request:
            text += f" The model wrote about {written} per request."
            next_command = f"--seed {settings.seed + 1} -n {missing} --per-request {written}"
    if next_command is None:
        # At the rate this invocation had, a fresh sample (another --seed) of this size brings the missing ones.
        next_command = f"--seed {settings.seed + 1} -n {math.ceil(missing * asked / max(got, 1))}"
    text += f" For the {missing} missing: run again with {next_command}."
    return Shortfall(text, next_command)
