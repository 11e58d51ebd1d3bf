"""Loading verified seed examples from JSONL files, with a file:line message for every bad line."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import orjson

from generator.errors import UserError
from generator.examples import Example, FormatError, example_from_record
from generator.project import Project, display_path


@dataclass(frozen=True)
class Seed:
    """A verified example and where it came from."""

    example: Example
    file: Path
    line: int
    verified_by: str

    @cached_property  # read for every request of a run (seed ids, the run's identity): hash once
    def content_hash(self) -> str:
        return self.example.content_hash()

    @property
    def id(self) -> str:
        # An explicit id is kept; otherwise the content hash names the seed, so provenance
        # survives reordering the file.
        return self.example.id or f"seed-{self.content_hash[:12]}"


@dataclass(frozen=True)
class LineProblem:
    file: Path
    line: int
    message: str
    severity: str = "error"  # or "warning"

    def render(self, root: Path | None = None) -> str:
        return f"{display_path(self.file, root)}:{self.line}: {self.message}"


@dataclass
class SeedSet:
    seeds: list[Seed] = field(default_factory=list)
    problems: list[LineProblem] = field(default_factory=list)

    @property
    def errors(self) -> list[LineProblem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[LineProblem]:
        return [p for p in self.problems if p.severity == "warning"]

    def raise_on_errors(self, root: Path | None = None) -> None:
        """Stop with exit 2 if any line is broken: generation must not start from a bad baseline."""
        if not self.errors:
            return
        first = self.errors[0]
        more = f" ({len(self.errors) - 1} more broken line(s); run `synthgate seeds check`)" if len(self.errors) > 1 else ""
        raise UserError(first.message + more, file=display_path(first.file, root), line=first.line, fix=SEED_FIX)


SEED_FIX = (
    'each line must be one JSON object: {"messages": [{"role": "user", "content": "..."}, '
    '{"role": "assistant", "content": "..."}], "tags": ["category"]} '
    "(ShareGPT 'conversations' and Alpaca 'instruction'/'output' are also accepted)"
)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while building many objects that form no cycles.

    Loading and linting seeds allocate tens of objects per line; with the collector on, its full
    passes walk every seed loaded so far, again and again: 50,000 lines took 7.7x the time of
    10,000 to load and 11x to lint (measured), 4.4x and 4.6x with it paused.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_seed_file(path: Path, *, default_verified_by: str = "", on_seed: Callable[[Seed], None] | None = None) -> SeedSet:
    """`on_seed`: called with each valid seed as it is read (seeds check starts signing them meanwhile)."""
    result = SeedSet()
    if path.exists() and not path.is_file():  # reading a named pipe or a device would wait forever
        result.problems.append(LineProblem(path, 0, "not a regular file"))
        return result
    try:
        raw = path.read_bytes()
    except OSError as exc:
        result.problems.append(LineProblem(path, 0, f"cannot read file: {exc.strerror or exc}"))
        return result
    with collector_paused():
        _parse_lines(raw, path, default_verified_by, result, on_seed)
    return result


def _parse_lines(raw: bytes, path: Path, default_verified_by: str, result: SeedSet, on_seed: Callable[[Seed], None] | None) -> None:
    for number, line_bytes in enumerate(raw.splitlines(), start=1):
        try:
            line = line_bytes.decode("utf-8")
        except UnicodeDecodeError:
            result.problems.append(LineProblem(path, number, "line is not valid UTF-8"))
            continue
        if not line.strip():
            continue
        try:
            # orjson: 3-5x the stdlib's speed on seed lines, and it refuses what is not text
            # (a lone surrogate such as "\ud800" cannot be written to any UTF-8 file or store)
            # and nesting past 1024 levels, with a message and a column.
            record = orjson.loads(line_bytes)
        except orjson.JSONDecodeError as exc:
            what = "a lone surrogate escape (\\ud800-\\udfff) is not text" if "surrogate" in exc.msg else exc.msg
            result.problems.append(LineProblem(path, number, f"invalid JSON: {what} (column {exc.colno})"))
            continue
        try:
            example, ignored = example_from_record(record)
        except FormatError as exc:
            result.problems.append(LineProblem(path, number, str(exc)))
            continue
        except RecursionError:
            result.problems.append(LineProblem(path, number, "record nested too deeply"))
            continue
        for key in ignored:
            result.problems.append(LineProblem(path, number, f"unknown key {key!r} ignored", "warning"))
        verified_by = record.get("verified_by", default_verified_by)
        if not isinstance(verified_by, str):
            result.problems.append(LineProblem(path, number, "'verified_by' must be a string (the verifier's name)"))
            continue
        result.seeds.append(Seed(example=example, file=path, line=number, verified_by=verified_by))
        if on_seed is not None:
            on_seed(result.seeds[-1])


def load_project_seeds(project: Project, *, also: Iterable[Path] = ()) -> SeedSet:
    """The project's seed files (and `also`), with its default verifier; a broken line stops here (exit 2)."""
    files = sorted({*project.seed_files(), *also})
    seed_set = load_seeds(files, default_verified_by=project.config.seeds.verified_by)
    seed_set.raise_on_errors(project.root)
    return seed_set


def load_seeds(files: list[Path], *, default_verified_by: str = "", on_seed: Callable[[Seed], None] | None = None) -> SeedSet:
    """Load every file; duplicate explicit ids across the set are errors (provenance must be unambiguous).

    `on_seed`: called with each valid seed as it is read, in the order of `SeedSet.seeds`.
    """
    combined = SeedSet()
    for path in files:
        part = load_seed_file(path, default_verified_by=default_verified_by, on_seed=on_seed)
        combined.seeds += part.seeds
        combined.problems += part.problems
    first_seen: dict[str, Seed] = {}
    # A seed without an id is named after its content hash: those names matter only when an explicit
    # id could equal one, and hashing every seed took two fifths of the loading time (measured).
    hash_named = any(seed.example.id and seed.example.id.startswith("seed-") for seed in combined.seeds)
    for seed in combined.seeds if hash_named else [s for s in combined.seeds if s.example.id is not None]:
        other = first_seen.setdefault(seed.id, seed)
        if other is not seed and seed.example.id is not None:
            combined.problems.append(LineProblem(seed.file, seed.line, f"id {seed.id!r} is already used at {other.file.name}:{other.line}"))
    return combined
