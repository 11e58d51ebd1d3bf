"""Anthropic messages, with structured output through a forced tool whose input schema is the answer's."""

from __future__ import annotations

from typing import Any

import anthropic

from generator.generation.providers.base import ProviderRequest, error_from_sdk
from generator.generation.secrets import api_key

TOOL_NAME = "submit_examples"


class AnthropicProvider:
    name = "anthropic"

    def __init__(self, *, model: str, base_url: str | None, structured_output: str, timeout: float) -> None:
        self.model = model
        # A forced tool works on every Claude model; "json" asks for plain JSON text instead.
        self.use_tool = structured_output != "json"
        self.notes: list[str] = []
        # max_retries=0: the SDK would sleep whatever Retry-After says (200 s seen); our retries cap it.
        self.client = anthropic.AsyncAnthropic(
            api_key=api_key("anthropic", base_url=base_url), base_url=base_url, max_retries=0, timeout=timeout
        )

    async def send(self, request: ProviderRequest) -> str:
        system = "\n\n".join(m["content"] for m in request.messages if m["role"] == "system")
        # No temperature: the Messages API of anthropic SDK 2.x has no sampling parameters any more.
        arguments: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "messages": [m for m in request.messages if m["role"] != "system"],
        }
        if system:
            arguments["system"] = system
        if self.use_tool:
            arguments["tools"] = [
                {"name": TOOL_NAME, "description": "Submit the conversations you wrote.", "input_schema": request.schema}
            ]
            arguments["tool_choice"] = {"type": "tool", "name": TOOL_NAME}
        try:
            raw = await self.client.messages.with_raw_response.create(**arguments)
        except anthropic.AnthropicError as exc:
            raise error_from_sdk(exc, anthropic) from None
        return raw.http_response.text

    async def close(self) -> None:
        await self.client.close()
