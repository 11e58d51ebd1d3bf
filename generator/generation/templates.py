"""Prompt templates: one Jinja file with a `system` and a `user` block, rendered in a sandbox with strict variables.

Each block is rendered on its own and becomes one message. Variables: `examples` (few-shot seeds
as Examples), `count` (examples wanted), `tags` (target tags, may be empty), `focus` (the tag this
request is meant to cover, or None), `rejection_reasons` ((reason, times) pairs), `context` (files
with .name and .text), `description` ([project] description, may be empty), `facts` (SeedFacts: what
the seeds look like). The `as_json` filter writes an Example as one seed line.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sized
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel

from generator.errors import UserError
from generator.examples import Example

BLOCKS = ("system", "user")
TEMPLATE_FIX = (
    "a template holds {% block system %}...{% endblock %} and {% block user %}...{% endblock %}; "
    "variables: examples, count, tags, focus, rejection_reasons, context, description, facts"
)


@dataclass(frozen=True)
class PromptTemplate:
    path: Path
    source: str
    hash: str

    @classmethod
    def load(cls, path: Path) -> PromptTemplate:
        """Read and compile the template; a syntax error or a missing user block stops here (exit 2)."""
        fix = "point [generate] template / --template at a template file"
        if path.exists() and not path.is_file():  # a folder fails to open; a named pipe would wait forever
            raise UserError("template is not a regular file", file=path, fix=fix)
        try:
            source = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UserError(
                "template not found", file=path, fix="create it, or point [generate] template / --template at an existing file"
            ) from None
        except UnicodeDecodeError:
            raise UserError("template is not UTF-8 text", file=path, fix="save it as UTF-8") from None
        except OSError as exc:
            raise UserError(f"cannot read template: {exc.strerror or exc}", file=path, fix=fix) from None
        template = cls(path=path, source=source, hash=hashlib.sha256(source.encode()).hexdigest())
        if "user" not in template.compiled.blocks:
            raise UserError("template has no {% block user %}", file=path, line=1, fix=TEMPLATE_FIX)
        return template

    @cached_property
    def compiled(self) -> Template:
        # Sandboxed: a template is configuration, but it must not reach Python internals.
        # autoescape off: prompts are plain text, not HTML.
        env = _PromptEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
        env.filters["as_json"] = _MemoizedJson()
        try:
            return env.from_string(self.source)
        except TemplateSyntaxError as exc:
            raise UserError(f"template syntax error: {exc.message}", file=self.path, line=exc.lineno, fix=TEMPLATE_FIX) from None
        except (RecursionError, SyntaxError, MemoryError):  # Jinja compiles to Python: nesting past its limits
            raise UserError("template nested too deeply to compile", file=self.path, fix=TEMPLATE_FIX) from None

    def render(self, variables: dict[str, Any]) -> list[dict[str, str]]:
        """The request messages: a system message (when that block renders non-empty) and the user message."""
        compiled = self.compiled
        messages = []
        for name in BLOCKS:
            block = compiled.blocks.get(name)
            if block is None:
                continue
            try:
                text = "".join(block(compiled.new_context(variables))).strip()
            except Exception as exc:  # noqa: BLE001 - any error raised by template code is the template's
                raise UserError(
                    f"template error in block '{name}': {exc}", file=self.path, line=_template_line(compiled, self.source), fix=TEMPLATE_FIX
                ) from None
            problem = _unsendable(text)
            if problem:
                raise UserError(f"block '{name}' rendered {problem}", file=self.path, fix=TEMPLATE_FIX)
            if text:
                messages.append({"role": name, "content": text})
        if not any(m["role"] == "user" for m in messages):
            raise UserError("the user block rendered empty", file=self.path, fix=TEMPLATE_FIX)
        return messages


# No model reads a prompt of this size; past it a template is multiplying text, not writing a prompt.
MAX_PROMPT_CHARS = 10_000_000


class _PromptEnvironment(SandboxedEnvironment):
    """The sandbox, and no arithmetic that builds gigabytes (`"x" * 10**10`) or numbers of a million digits."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*" and isinstance(left, Sized | int) and isinstance(right, Sized | int):
            sizes = [len(value) if isinstance(value, Sized) else value for value in (left, right)]
            if any(isinstance(value, Sized) for value in (left, right)) and sizes[0] * sizes[1] > MAX_PROMPT_CHARS:
                raise SecurityError(f"the result would hold more than {MAX_PROMPT_CHARS:,} items")
        if operator == "**" and isinstance(right, int) and abs(right) > 1000:
            raise SecurityError("exponent too large")
        return super().call_binop(context, operator, left, right)


def _unsendable(text: str) -> str | None:
    """Why a rendered block cannot be sent as a prompt, or None."""
    if len(text) > MAX_PROMPT_CHARS:
        return f"{len(text):,} characters (more than {MAX_PROMPT_CHARS:,})"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # e.g. "\ud800" written in a string literal: no UTF-8 request can carry it
        return "a lone surrogate character, which is not text"
    return None


def as_json(value: Any) -> str:
    """One line of JSON; an Example is written as a seed line (messages and tags), without its id."""
    if isinstance(value, Example):
        value = {"messages": value.messages_as_dicts(), "tags": list(value.tags)}
    elif isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return json.dumps(value, ensure_ascii=False)


class _MemoizedJson:
    """`as_json` that writes each Example once: the same few-shot seeds recur in thousands of prompts."""

    def __init__(self) -> None:
        self._lines: dict[int, tuple[Example, str]] = {}  # id -> (the example, kept alive; its line)

    def __call__(self, value: Any) -> str:
        if not isinstance(value, Example):
            return as_json(value)
        hit = self._lines.get(id(value))
        if hit is None or hit[0] is not value:
            hit = self._lines[id(value)] = (value, as_json(value))
        return hit[1]


def _template_line(compiled: Template, source: str) -> int | None:
    """The template line of the error being handled: Jinja rewrites the traceback to point into the template."""
    try:
        compiled.environment.handle_exception(source)
    except Exception as rewritten:  # noqa: BLE001
        traceback, line = rewritten.__traceback__, None
        while traceback is not None:
            if traceback.tb_frame.f_code.co_filename == "<template>":
                line = traceback.tb_lineno
            traceback = traceback.tb_next
        return line
    return None
