"""The dataset card (`README.md`) an export writes beside its files: Hugging Face front matter and a summary, all from the manifest."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

# The card's own mark: a file without it was not written by synthgate, and is never replaced.
CARD_MARK = "<!-- synthgate dataset card: written by `synthgate export` from the manifest; it is replaced on the next export -->"
CARD_NAME = "README.md"

# Hugging Face's size_categories buckets (upper bounds, exclusive).
_SIZE_BUCKETS = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"))
_PREFERENCE = {"openai-dpo": "dpo", "trl-dpo": "dpo", "trl-kto": "kto"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~])")


def is_synthgate_card(path: Path) -> bool:
    """Whether the file at `path` is a card synthgate wrote (safe to replace)."""
    try:
        with path.open("rb") as handle:
            return CARD_MARK.encode() in handle.read(64 * 1024)
    except OSError:
        return False


def size_category(lines: int) -> str:
    for bound, name in _SIZE_BUCKETS:
        if lines < bound:
            return name
    return "n>10M"


def _text(value: Any) -> str:
    """Untrusted text (reviewer names, models, tags) in Markdown: control characters dropped, markup escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", _CONTROL.sub("", str(value)))


def _yaml(value: Any) -> str:
    # A JSON string is a valid YAML flow scalar: quoting and escaping without a YAML library.
    return json.dumps(value, ensure_ascii=False)


def render_card(header: dict[str, Any], *, manifest_sha256: str, manifest: Path, card: Path) -> str:
    """The card's text: front matter (configs, task, size, tags) and what a reader needs to trust and use the set."""
    files = header["files"]
    counts = header["counts"]
    fmt = header["format"]
    tags = ["synthetic", "human-reviewed", "synthgate", *([_PREFERENCE[fmt]] if fmt in _PREFERENCE else [])]
    front = [
        "---",
        # license: omitted, synthgate cannot know it (add one before publishing)
        "task_categories:",
        "- text-generation",
        "size_categories:",
        f"- {size_category(counts['lines'])}",
        "tags:",
        *(f"- {_yaml(t)}" for t in tags),
        "configs:",
        "- config_name: default",
        "  data_files:",
    ]
    for described in files:
        located = (manifest.parent / described["path"]).resolve()
        front += [f"  - split: {described['split']}", f"    path: {_yaml(os.path.relpath(located, card.resolve().parent))}"]
    front.append("---")
    body = [
        CARD_MARK,
        "",
        f"# {_text(header.get('project', {}).get('name') or 'synthgate export')}",
        "",
        f"{counts['lines']} line(s) in the `{_text(fmt)}` format. Every line is an example that a named reviewer accepted "
        "(or, in a labelled format, a decision a reviewer made); nothing reached this file without a human decision.",
        "",
        "## Files",
        "",
        "| split | file | lines | sha256 |",
        "|---|---|---|---|",
        *(f"| {d['split']} | {_text(d['path'])} | {d['lines']} | `{d['sha256']}` |" for d in files),
        "",
        "## Counts",
        "",
        "| kind | lines |",
        "|---|---|",
        *(f"| {_text(kind)} | {n} |" for kind, n in counts.items()),
        "",
        "| tag | lines |",
        "|---|---|",
        *(f"| {_text(tag)} | {n} |" for tag, n in sorted(header.get("tag_counts", {}).items())),
        "",
        "## How it was made",
        "",
        f"- Seeds: {counts.get('seeds', 0)} verified seed line(s) included; generation grew from the project's verified seeds.",
        *(
            f"- Run {_text(r['id'])}: {_text(r['provider'])} / {_text(r['model'])}, template {_text(r['template'])} "
            f"(sha256 {_text(r['template_hash'])})"
            for r in header.get("runs", [])
        ),
        "- Checks before review: exact and near duplicates (against seeds, queue and holdout) and lints"
        + (f"; settings: {_text(', '.join(f'{k}={v}' for k, v in header['checks'].items()))}" if header.get("checks") else ""),
        "",
        "## Who reviewed",
        "",
        "| reviewer | lines |",
        "|---|---|",
        *(f"| {_text(name)} | {n} |" for name, n in sorted(header.get("reviewers", {}).items())),
        "",
        "## Provenance",
        "",
        f"- Manifest: {_text(manifest.name)} (sha256 `{manifest_sha256}`); exported {_text(header.get('exported_at'))} "
        f"by synthgate {_text(header.get('synthgate_version'))}.",
        f"- Review store {_text(header.get('store_id'))}; prove every line with `synthgate verify {_text(files[0]['path'])}`.",
        "",
    ]
    return "\n".join(front + body)
