"""LLM providers behind one small interface: OpenAI (and compatible servers), Anthropic, and replay."""

from __future__ import annotations

import importlib
from pathlib import Path

from generator.generation.providers.base import Provider, tls_context

_MODULES = {
    "openai": "generator.generation.providers.openai_provider",
    "anthropic": "generator.generation.providers.anthropic_provider",
    "replay": "generator.generation.providers.replay",
}


def import_provider(name: str) -> None:
    """Import a provider's SDK and load the CA bundle ahead of time: fixed start-up costs, like the interpreter's own."""
    importlib.import_module(_MODULES[name])
    if name != "replay":
        tls_context()


def make_provider(
    name: str,
    *,
    model: str,
    base_url: str | None,
    structured_output: str,
    timeout: float,
    concurrency: int,
    replay_file: Path | None = None,
) -> Provider:
    """The provider for `name`. SDKs are imported lazily (see import_provider): anthropic alone takes seconds to import."""
    if name == "openai":
        from generator.generation.providers.openai_provider import OpenAIProvider

        return OpenAIProvider(model=model, base_url=base_url, structured_output=structured_output, timeout=timeout, concurrency=concurrency)
    if name == "anthropic":
        from generator.generation.providers.anthropic_provider import AnthropicProvider

        return AnthropicProvider(
            model=model, base_url=base_url, structured_output=structured_output, timeout=timeout, concurrency=concurrency
        )
    from generator.generation.providers.replay import ReplayProvider

    assert replay_file is not None
    return ReplayProvider(replay_file)
