"""The two kinds of failure a user sees: bad input (exit 2) and work that failed (exit 1)."""

from __future__ import annotations

from pathlib import Path


class SynthgateError(Exception):
    """Base for errors that are reported to the user as a message, never as a traceback."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        fix: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.fix = fix

    def render(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        text = f"error: {where}{self.message}"
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return text


class UserError(SynthgateError):
    """The input is wrong (seeds, template, config, flags): the user can fix it. Exit 2."""

    exit_code = 2


class WorkFailed(SynthgateError):
    """The input was fine but the work could not be done (provider down, budget hit). Exit 1."""

    exit_code = 1
