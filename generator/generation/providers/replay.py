"""Replay: serve recorded response bodies from a JSONL file (offline demos, reproducible reruns), and record them.

Line format (one JSON object per line), either
  {"key": "<prompt key>", "response": <body>}   as `synthgate generate --record FILE` writes it, or
  <body>                                         a bare OpenAI chat completion or Anthropic message.
A request gets the line recorded for its prompt key when there is one, else line number i+1 for
request i (so a hand-made file is served in order).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from generator.errors import UserError
from generator.generation.journal import ANSWERED
from generator.generation.providers.base import ProviderError, ProviderRequest
from generator.store.models import LLMCall

REPLAY_FIX = 'each line: {"key": ..., "response": {...}} as written by --record, or one raw OpenAI/Anthropic response object'


class ReplayProvider:
    name = "replay"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.notes: list[str] = []
        self.by_key: dict[str, str] = {}
        self.in_order: list[str] = []
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise UserError("replay file not found", file=path, fix="pass --replay-file FILE (record one with --record FILE)") from None
        except UnicodeDecodeError:
            raise UserError("replay file is not UTF-8 text", file=path, fix=REPLAY_FIX) from None
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"invalid JSON: {exc.msg}", file=path, line=number, fix=REPLAY_FIX) from None
            if not isinstance(record, dict):
                raise UserError("expected a JSON object", file=path, line=number, fix=REPLAY_FIX)
            body = record.get("response", record)
            if not isinstance(body, dict):
                raise UserError("'response' must be a JSON object", file=path, line=number, fix=REPLAY_FIX)
            text = json.dumps(body, ensure_ascii=False)
            self.in_order.append(text)
            if isinstance(record.get("key"), str):
                self.by_key.setdefault(record["key"], text)
        if not self.in_order:
            raise UserError("replay file has no responses", file=path, fix=REPLAY_FIX)

    async def send(self, request: ProviderRequest) -> str:
        body = self.by_key.get(request.prompt_key)
        if body is not None:
            return body
        if request.request_index < len(self.in_order):
            return self.in_order[request.request_index]
        raise ProviderError(
            "bad_request",
            f"{self.path} has no response for request {request.request_index} "
            f"({len(self.in_order)} line(s), none recorded for this prompt)",
        )

    async def close(self) -> None:
        pass


def write_recording(session: Session, *, run_id: str, path: Path) -> int:
    """Write every answered call of the run as a replay line, in request order. Returns the number of lines."""
    rows = session.exec(
        select(LLMCall.request, LLMCall.response_text)
        .where(LLMCall.run_id == run_id, col(LLMCall.status).in_(ANSWERED))
        .order_by(col(LLMCall.request_index))
    ).all()
    lines = [line for request, body in rows if (line := _recording_line(request, body))]
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text("".join(lines), encoding="utf-8")
    temporary.replace(path)  # never a half-written recording
    return len(lines)


def _recording_line(request: Mapping[str, Any], body: str | None) -> str | None:
    try:
        response = json.loads(body or "")
    except json.JSONDecodeError:
        return None  # an unreadable body cannot be replayed
    return json.dumps({"key": request["prompt_key"], "response": response}, ensure_ascii=False) + "\n"
