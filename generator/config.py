"""`synthgate.toml`: the project's settings, validated with pydantic, with errors that name file, line and fix."""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.fields import FieldInfo

from generator.errors import UserError

CONFIG_FILE = "synthgate.toml"


class Section(BaseModel):
    # Unknown keys are errors: a typo in a threshold must not silently fall back to a default.
    # TOML and float flags accept inf and nan; no setting means anything by them.
    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)


# Upper bounds refuse what can only be a mistake (2**63-1 tokens, a lease of centuries), with room
# far beyond any real use. A run stores its sampling seed as a 64-bit integer.
MAX_COUNT = 1_000_000_000
MAX_TOKENS = 1_000_000
MAX_TIMEOUT_SECONDS = 3600.0
MAX_COST_USD = 1_000_000.0
MAX_LEASE_SECONDS = 3600
INT64 = 2**63


class ProjectSection(Section):
    name: str = "synthgate-project"
    description: str = Field(
        "",
        max_length=2000,
        description="Who the assistant is and whom it serves, in a sentence or two; the prompt template shows it to the model.",
    )


class SeedsSection(Section):
    paths: list[str] = Field(default_factory=lambda: ["seeds/*.jsonl"], description="Globs of seed files, relative to the project.")
    verified_by: str = Field("", description="Who verified seed lines that carry no verified_by of their own.")
    min_per_tag: int = Field(3, ge=1, description="Warn when a tag has fewer seed examples than this.")
    near_duplicate_threshold: float = Field(
        0.8, gt=0, le=1, description="Jaccard similarity at or above which two seeds are near-duplicates."
    )
    length_outlier_factor: float = Field(
        3.0, gt=1, description="Warn about seeds longer than factor x median or shorter than median / factor."
    )


class GenerateSection(Section):
    provider: Literal["openai", "anthropic", "replay"] = Field(
        "openai", description="openai (also any OpenAI-compatible server via base_url), anthropic, or replay (recorded responses)."
    )
    model: str = Field("gpt-4o-mini", description="Model name; its price comes from the built-in table or [pricing].")
    base_url: str | None = Field(None, description="Any OpenAI-compatible server (vLLM, Ollama, llama.cpp); passed to the SDK unchanged.")
    template: str = Field("prompts/generate.jinja", description="Prompt template, relative to the project.")
    context_files: list[str] = Field(
        default_factory=list,
        description="Files the template receives as `context` (e.g. a product fact sheet the answers must agree with), relative to the project.",
    )
    replay_file: str | None = Field(None, description="JSONL of recorded responses, for --provider replay.")
    count: int = Field(50, ge=1, le=MAX_COUNT, description="Candidates wanted per run.")
    few_shot: int = Field(4, ge=0, le=100, description="Seeds shown as examples in each request.")
    per_request: int = Field(5, ge=1, le=100, description="Examples asked of the model per request.")
    tag: str | None = Field(
        None,
        description="Aim every request at this tag (e.g. a topic tag of your seeds, or edge:ambiguous); unset: cover all tags, rare ones included.",
    )
    temperature: float = Field(0.9, ge=0, le=2, description="Sampling temperature sent to the model.")
    max_tokens: int | None = Field(
        None,
        ge=1,
        le=MAX_TOKENS,
        description="Most output tokens per request; unset: derived from the seeds' answer lengths x per_request, with a margin, "
        "within the model's limit. A cut answer keeps its complete examples and the rest are asked again.",
    )
    concurrency: int = Field(8, ge=1, le=1000, description="Most requests in flight at once.")
    rpm: int | None = Field(None, ge=1, le=1_000_000, description="Requests per minute limit.")
    tpm: int | None = Field(None, ge=1, le=10_000_000_000, description="Tokens per minute limit.")
    max_cost: float | None = Field(
        None, ge=0, le=MAX_COST_USD, description="Budget in USD for the whole run: no request is sent whose worst case could pass it."
    )
    seed: int = Field(0, ge=-INT64, lt=INT64, description="Sampling seed: the same seed and config resume the same run.")
    timeout: float = Field(120.0, gt=0, le=MAX_TIMEOUT_SECONDS, description="Deadline per call in seconds, retries included.")
    max_retries: int = Field(
        5,
        ge=0,
        le=100,
        description="Retries per request after a 429, 5xx, timeout or dropped connection (with backoff, honouring Retry-After).",
    )
    structured_output: Literal["auto", "json_schema", "json"] = Field(
        "auto", description="auto: JSON schema, falling back to plain JSON where the server lacks it."
    )


class PriceSection(Section):
    input_per_mtok: float = Field(ge=0, description="USD per million input tokens.")
    output_per_mtok: float = Field(ge=0, description="USD per million output tokens.")


class ChecksSection(Section):
    near_duplicate_threshold: float = Field(
        0.7,
        gt=0,
        le=1,
        description="Jaccard similarity of word shingles (user and assistant turns) at or above which a candidate is a near-duplicate of a seed, a holdout example or an earlier candidate.",
    )
    holdout: list[str] = Field(
        default_factory=list,
        description="Evaluation-set files (JSONL, any seed format), relative to the project, that must never leak into training data.",
    )
    num_perm: int = Field(
        128,
        ge=16,
        le=1024,
        description="MinHash permutations for the candidate-to-candidate LSH index (more: fewer missed near-duplicates, slower).",
    )
    shingle_words: int = Field(3, ge=1, le=10, description="Words per shingle when measuring similarity.")
    length_factor: float = Field(
        3.0, gt=1, description="Flag candidates longer than factor x the longest seed or shorter than the shortest / factor."
    )

    @field_validator("holdout")
    @classmethod
    def _holdout_paths_not_blank(cls, paths: list[str]) -> list[str]:
        if any(not path.strip() for path in paths):
            raise ValueError("holdout paths must not be blank")
        return paths


# The review app's remappable keys: binding id -> default key (Textual key names; "a,y" binds both).
REVIEW_KEY_DEFAULTS: dict[str, str] = {
    "accept": "a",
    "reject": "r",
    "edit": "e",
    "skip": "s",
    "undo": "u",
    "filter": "f",
    "help": "question_mark",
    "quit": "q",
}
# Taken by the reject panel (a digit picks a reason, n writes a note, escape closes it).
REVIEW_RESERVED_KEYS = frozenset({*"123456789", "n", "escape"})


class ReviewSection(Section):
    reviewer: str | None = Field(None, description="Default reviewer name (else git user.name, else the login name).")
    reject_reasons: list[str] = Field(
        default_factory=lambda: [
            "factually wrong",
            "off-policy",
            "unhelpful",
            "wrong tone",
            "format drift",
            "duplicate",
            "unrealistic question",
            "unsafe",
            "other",
        ],
        min_length=1,
        max_length=9,
        description="Reasons offered when rejecting (key r), each picked with its digit 1-9.",
    )
    lease_seconds: int = Field(
        60,
        ge=10,
        le=MAX_LEASE_SECONDS,
        description="How long a claimed candidate stays reserved for its reviewer; the open review app renews it every third of this, so a closed or killed one frees its candidates within this time.",
    )
    overlap: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Share of candidates (chosen by their content hash, so the same ones on every machine) that overlap_reviewers review blind; disagreements go to adjudication.",
    )
    overlap_reviewers: int = Field(2, ge=2, le=5, description="How many reviewers an overlapped candidate needs.")
    min_dwell_ms: int = Field(
        500,
        ge=0,
        le=60_000,
        description="`stats` marks a decision made faster than this plus the time to skim the candidate (60 characters a second).",
    )
    canary_rate: float = Field(
        0.0,
        ge=0.0,
        le=0.5,
        description="Share of claims that show a candidate the checks filtered as if it were pending (a canary); rejecting it is catching it. Never exported.",
    )
    keys: dict[str, str] = Field(
        default_factory=dict,
        description='Remap review keys, e.g. accept = "y" (actions: ' + ", ".join(REVIEW_KEY_DEFAULTS) + ").",
    )

    @field_validator("reviewer")
    @classmethod
    def _reviewer_not_blank(cls, reviewer: str | None) -> str | None:
        if reviewer is not None and not reviewer.strip():
            raise ValueError("reviewer must not be blank (leave it out to use git's user.name or the login name)")
        return reviewer.strip() if reviewer else reviewer

    @field_validator("reject_reasons")
    @classmethod
    def _reasons_not_blank(cls, reasons: list[str]) -> list[str]:
        if any(not reason.strip() for reason in reasons):
            raise ValueError("reject reasons must not be blank")
        return [reason.strip() for reason in reasons]

    @field_validator("keys")
    @classmethod
    def _known_actions_distinct_keys(cls, keys: dict[str, str]) -> dict[str, str]:
        for action, key in keys.items():
            if action not in REVIEW_KEY_DEFAULTS:
                raise ValueError(f"unknown review action {action!r}; remappable actions: {', '.join(REVIEW_KEY_DEFAULTS)}")
            if not [part for part in key.split(",") if part.strip()]:
                raise ValueError(f"the key for {action!r} is empty")
        owner: dict[str, str] = {}
        for action, key in {**REVIEW_KEY_DEFAULTS, **keys}.items():
            for part in (p.strip() for p in key.split(",") if p.strip()):
                if part in REVIEW_RESERVED_KEYS:
                    raise ValueError(f"key {part!r} belongs to the reject panel (1-9, n, escape); choose another for {action!r}")
                if part in owner:
                    raise ValueError(f"key {part!r} is bound to both {owner[part]!r} and {action!r}; give each action its own key")
                owner[part] = action
        return keys


class ExportSection(Section):
    format: Literal["openai", "sharegpt", "alpaca", "trl", "openai-dpo", "trl-dpo", "trl-kto"] = Field(
        "openai", description="Default export format (openai, sharegpt, alpaca, trl, openai-dpo, trl-dpo, trl-kto)."
    )
    include_seeds: bool = Field(False, description="Also export the verified seeds (marked as seeds in the manifest).")
    val_fraction: float = Field(0.0, ge=0, lt=1, description="Share of each category tag written to a validation file (0: no split).")
    split_seed: int = Field(0, description="Seed of the train/validation split: the same seed and store give the same split.")
    promote_to: str = Field(
        "seeds/promoted.jsonl", description="Seed file `synthgate promote` appends accepted examples to, relative to the project."
    )


class CoverageSection(Section):
    target: int = Field(
        500, ge=1, le=100_000_000, description="Accepted examples wanted in all; each tag's target is its share of the seeds times this."
    )
    tags: dict[str, int] = Field(
        default_factory=dict, description='Accepted examples wanted per tag (e.g. {"edge:ambiguous" = 50}), instead of the seeds\' share.'
    )


class StoreSection(Section):
    url: str | None = Field(None, description="SQLAlchemy URL of the review store; default sqlite:///<project>/.synthgate/queue.db.")


class Config(Section):
    project: ProjectSection = Field(default_factory=ProjectSection)
    seeds: SeedsSection = Field(default_factory=SeedsSection)
    generate: GenerateSection = Field(default_factory=GenerateSection)
    pricing: dict[str, PriceSection] = Field(default_factory=dict, description="Per-model price overrides.")
    checks: ChecksSection = Field(default_factory=ChecksSection)
    review: ReviewSection = Field(default_factory=ReviewSection)
    export: ExportSection = Field(default_factory=ExportSection)
    coverage: CoverageSection = Field(default_factory=CoverageSection)
    store: StoreSection = Field(default_factory=StoreSection)

    @field_validator("pricing")
    @classmethod
    def _model_names(cls, pricing: dict[str, PriceSection]) -> dict[str, PriceSection]:
        for model in pricing:
            if not model.strip():
                raise ValueError("model names in [pricing] must not be blank")
        return pricing


def load_config(path: Path) -> Config:
    """Read and validate a config file; every problem is a UserError naming file, line and fix."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(
            "config file not found", file=path, fix="run `synthgate init DIR` to create a project, or pass --project DIR"
        ) from None
    except UnicodeDecodeError:
        raise UserError("config file is not UTF-8 text", file=path, fix="save it as UTF-8") from None
    except OSError as exc:
        raise UserError(f"cannot read config file: {exc.strerror or exc}", file=path, fix="make it a readable file") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = _toml_error_line(str(exc))
        raise UserError(f"not valid TOML: {exc}", file=path, line=line, fix="correct the TOML syntax on that line") from None
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise UserError(
            "not valid TOML here: arrays or inline tables nested too deeply",
            file=path,
            line=_deep_nesting_line(text),
            fix="no setting nests more than a few levels; remove the nesting",
        ) from None
    return parse_config(data, text=text, path=path)


def parse_config(data: dict[str, Any], *, text: str = "", path: Path = Path(CONFIG_FILE)) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        # A typo'd key explains a "missing" one beside it: report unknown keys first.
        error = min(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        raise _config_error(error, text=text, path=path, count=exc.error_count()) from None


def _config_error(error: Mapping[str, Any], *, text: str, path: Path, count: int) -> UserError:
    loc = [str(part) for part in error["loc"]]
    key = ".".join(loc)
    line = locate_key(text, loc)
    more = f" (and {count - 1} more problem{'s' if count > 2 else ''})" if count > 1 else ""
    if error["type"] == "extra_forbidden":
        known = _known_keys(loc[:-1])
        close = difflib.get_close_matches(loc[-1], known, n=1)
        fix = f"did you mean '{close[0]}'?" if close else f"remove it; known keys here: {', '.join(sorted(known))}"
        return UserError(f"unknown key '{key}'{more}", file=path, line=line, fix=fix)
    message = error["msg"].removeprefix("Value error, ")
    got = error.get("input")
    shown = f" (got {got!r})" if got is not None and not isinstance(got, dict | list) else ""
    return UserError(f"'{key}': {message}{shown}{more}", file=path, line=line, fix=describe_field(loc))


def _model_at(loc: list[str]) -> type[BaseModel] | None:
    """The config model that holds the keys found at this path (None: not a table)."""
    model: type[BaseModel] = Config
    index = 0
    while index < len(loc):
        field = model.model_fields.get(loc[index])
        if field is None:
            return None
        if model is Config and loc[index] == "pricing":
            if index + 1 == len(loc):
                return None  # [pricing] itself holds model names, not fields
            model, index = PriceSection, index + 2
            continue
        annotation = field.annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model, index = annotation, index + 1
    return model


def _known_keys(loc: list[str]) -> list[str]:
    model = _model_at(loc)
    return list(model.model_fields) if model else []


def describe_field(loc: list[str]) -> str:
    model = _model_at(loc[:-1])
    field = model.model_fields.get(loc[-1]) if model else None
    if field is None:
        return "see the config reference in the README"
    kind = getattr(field.annotation, "__name__", None) or str(field.annotation).replace("typing.", "")
    hint = f"expected {kind}"
    bounds = allowed_range(field)
    if bounds:
        hint += f" {bounds}"
    if field.description:
        hint += f" — {field.description}"
    return hint


def allowed_range(field: FieldInfo) -> str | None:
    """A field's numeric bounds in words (e.g. "from 10 to 3600"), for error messages; None when unbounded."""
    bounds = {kind: _number(getattr(bound, kind)) for bound in field.metadata for kind in ("ge", "gt", "le", "lt") if hasattr(bound, kind)}
    if "ge" in bounds and "le" in bounds:
        return f"from {bounds['ge']} to {bounds['le']}"
    words = {"ge": "at least", "gt": "more than", "le": "at most", "lt": "less than"}
    parts = [f"{words[kind]} {value}" for kind, value in bounds.items()]
    return " and ".join(parts) or None


def _number(value: int | float) -> str:
    return str(int(value)) if isinstance(value, int) or value.is_integer() else str(value)


def locate_key(text: str, loc: list[str]) -> int | None:
    """Best-effort line number of a dotted key in TOML text (tomllib does not report positions)."""
    if not text or not loc:
        return None
    lines = text.splitlines()
    # Find the deepest [table] header matching a prefix of the path, then the key under it.
    for split in range(len(loc) - 1, -1, -1):
        table, rest = loc[:split], loc[split:]
        start = 0
        if table:
            header = re.compile(r"^\s*\[\s*" + r"\s*\.\s*".join(_toml_key_pattern(p) for p in table) + r"\s*\]\s*(#.*)?$")
            start = next((i + 1 for i, line in enumerate(lines) if header.match(line)), -1)
            if start < 0:
                continue
        if not rest:
            return start
        key = re.compile(r"^\s*" + _toml_key_pattern(rest[0]) + r"\s*[=.]")
        # The key may also be a table of its own: [table.key] or [table.key.sub].
        subtable = re.compile(r"^\s*\[+\s*" + r"\s*\.\s*".join(_toml_key_pattern(p) for p in [*table, rest[0]]) + r"\s*[\].]")
        found = next((i + 1 for i, line in enumerate(lines) if subtable.match(line)), None)
        if found:
            return found
        for i in range(start, len(lines)):
            if i > start and re.match(r"^\s*\[", lines[i]) and table:
                break
            if key.match(lines[i]):
                return i + 1
        if table:
            return start
    return None


def _toml_key_pattern(key: str) -> str:
    escaped = re.escape(key)
    return rf"(?:{escaped}|\"{escaped}\"|'{escaped}')"


def _deep_nesting_line(text: str, depth: int = 100) -> int | None:
    """The first line where brackets nest `depth` deep (strings and comments are not skipped: a hint, not a parse)."""
    level = 0
    for number, line in enumerate(text.splitlines(), start=1):
        for char in line:
            level += 1 if char in "[{" else -1 if char in "]}" else 0
            if level >= depth:
                return number
    return None


def _toml_error_line(message: str) -> int | None:
    match = re.search(r"line (\d+)", message)
    return int(match.group(1)) if match else None
