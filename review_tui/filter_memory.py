"""The reviewer's last review filters (tag, flagged only), kept in the user's config folder between sessions.

Why the config folder and not the store: a filter is one person's view, not a record of the
review; the store holds only what the gate and the audit need (and a reviewer's PostgreSQL role may
not write anything else). The file is keyed by the store's identity and the reviewer's name, so two
projects, or two people sharing a login, keep their own. A run filter is not kept: runs come and go.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from sqlalchemy import Engine

from generator.store.queue import QueueFilter

FILE_NAME = "review-filters.json"


def memory_file() -> Path:
    """$SYNTHGATE_HOME/review-filters.json, else the user's config folder (e.g. ~/.config/synthgate/review-filters.json)."""
    home = os.environ.get("SYNTHGATE_HOME")
    if home:
        return Path(home).expanduser() / FILE_NAME
    import platformdirs

    return Path(platformdirs.user_config_dir("synthgate")) / FILE_NAME


def store_key(engine: Engine) -> str:
    """The store's identity (its random id), so a copy of the project elsewhere keeps the same memory."""
    from generator.store.db import read_session
    from generator.store.models import StoreMeta

    with read_session(engine) as session:
        meta = session.get(StoreMeta, 1)
    return meta.store_id if meta is not None else str(engine.url.render_as_string(hide_password=True))


def _read() -> dict[str, dict[str, object]]:
    try:
        data = json.loads(memory_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # none yet, or unreadable: a convenience never stops a review
    return data if isinstance(data, dict) else {}


def recall(*, store: str, reviewer: str) -> QueueFilter | None:
    """The filters this reviewer last used on this store (None: none remembered)."""
    entry = _read().get(f"{store} {reviewer}")
    if not isinstance(entry, dict):
        return None
    tag = entry.get("tag")
    return QueueFilter(tag=tag if isinstance(tag, str) and tag else None, flagged_only=entry.get("flagged_only") is True)


def remember(*, store: str, reviewer: str, filters: QueueFilter) -> None:
    """Keep `filters` (tag and flagged only) for this reviewer's next session on this store."""
    data = _read()
    data[f"{store} {reviewer}"] = {"tag": filters.tag, "flagged_only": filters.flagged_only}
    path = memory_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".tmp")
        partial.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        partial.replace(path)  # whole or not at all: two sessions quitting together never leave half a file
    except OSError:
        return  # e.g. a read-only home: the next session starts without the memory
