"""Loading verified seed examples from JSONL files, with a file:line message for every bad line."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from generator.errors import UserError
from generator.examples import Example, FormatError, example_from_record


@dataclass(frozen=True)
class Seed:
    """A verified example and where it came from."""

    example: Example
    file: Path
    line: int
    verified_by: str

    @property
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
        return f"{_show(self.file, root)}:{self.line}: {self.message}"


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
        raise UserError(first.message + more, file=_show(first.file, root), line=first.line, fix=SEED_FIX)


SEED_FIX = (
    "each line must be one JSON object: {\"messages\": [{\"role\": \"user\", \"content\": \"...\"}, "
    "{\"role\": \"assistant\", \"content\": \"...\"}], \"tags\": [\"category\"]} "
    "(ShareGPT 'conversations' and Alpaca 'instruction'/'output' are also accepted)"
)


def load_seed_file(path: Path, *, default_verified_by: str = "") -> SeedSet:
    result = SeedSet()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        result.problems.append(LineProblem(path, 0, f"cannot read file: {exc.strerror or exc}"))
        return result
    for number, line_bytes in enumerate(raw.splitlines(), start=1):
        try:
            line = line_bytes.decode("utf-8")
        except UnicodeDecodeError:
            result.problems.append(LineProblem(path, number, "line is not valid UTF-8"))
            continue
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            result.problems.append(LineProblem(path, number, f"invalid JSON: {exc.msg} (column {exc.colno})"))
            continue
        except RecursionError:
            result.problems.append(LineProblem(path, number, "invalid JSON: nested too deeply"))
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
    return result


def load_seeds(files: list[Path], *, default_verified_by: str = "") -> SeedSet:
    """Load every file; duplicate explicit ids across the set are errors (provenance must be unambiguous)."""
    combined = SeedSet()
    for path in files:
        part = load_seed_file(path, default_verified_by=default_verified_by)
        combined.seeds += part.seeds
        combined.problems += part.problems
    first_seen: dict[str, Seed] = {}
    for seed in combined.seeds:
        other = first_seen.setdefault(seed.id, seed)
        if other is not seed and seed.example.id is not None:
            combined.problems.append(
                LineProblem(seed.file, seed.line, f"id {seed.id!r} is already used at {other.file.name}:{other.line}")
            )
    return combined


def _show(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return str(path.relative_to(root))
        except ValueError:
            pass
    return str(path)
