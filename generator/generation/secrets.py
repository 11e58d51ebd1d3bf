"""API keys: read from the environment only, and scrubbed from every text we store or print."""

from __future__ import annotations

import os
import re

from generator.errors import UserError

KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
# A local OpenAI-compatible server (Ollama, vLLM, llama.cpp) usually wants no key, but the SDK
# insists on one.
NO_KEY_PLACEHOLDER = "not-needed"

# Anything shaped like a provider key or a bearer token. SDK error messages can echo part of a
# key ("Incorrect API key provided: sk-abc***xyz"); none of it may reach the database or a log.
# Masked echoes ("gsk_ab***yz") are redacted too.
_KEY_LIKE = re.compile(r"(sk-[A-Za-z0-9_\-*.]{3,}|(?i:bearer)\s+\S+|(?i:x-api-key):?\s*\S+|\S*\*{3,}\S*)")
REDACTED = "[redacted]"


def api_key(provider: str, *, base_url: str | None) -> str:
    """The provider's key from its environment variable; a missing key stops the run before any request (exit 2)."""
    variable = KEY_ENV[provider]
    key = os.environ.get(variable, "").strip()
    if key:
        return key
    if base_url:
        return NO_KEY_PLACEHOLDER
    fix = f"export {variable}=... (synthgate reads keys from the environment only and never stores them)"
    if provider == "openai":  # only the OpenAI wire format has keyless local servers (Ollama, vLLM, llama.cpp)
        fix += ", or pass --base-url for a local OpenAI-compatible server"
    raise UserError(f"{variable} is not set", fix=fix)


def scrub_secrets(text: str) -> str:
    """The text with every configured key and anything key-like replaced by [redacted]."""
    for variable in KEY_ENV.values():
        key = os.environ.get(variable, "").strip()
        if len(key) >= 8:
            text = text.replace(key, REDACTED)
    return _KEY_LIKE.sub(REDACTED, text)
