"""Anthropic messages, with structured output through a forced tool whose input schema is the answer's."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2

from generator.generation.providers.base import ProviderRequest, client_for, error_from_sdk, sdk_clients

TOOL_NAME = "submit_examples"


class AnthropicProvider:
    name = "anthropic"

    def __init__(self, *, model: str, base_url: str | None, structured_output: str, timeout: float, concurrency: int) -> None:
        self.model = model
        # A forced tool works on every Claude model; "json" asks for plain JSON text instead.
        self.use_tool = structured_output != "json"
        self.notes: list[str] = []
        self.clients = sdk_clients(
            anthropic, anthropic.AsyncAnthropic, provider=self.name, base_url=base_url, timeout=timeout, concurrency=concurrency
        )

    async def send(self, request: ProviderRequest) -> str:
        system = "\n\n".join(m["content"] for m in request.messages if m["role"] == "system")
        # No temperature: the Messages API of anthropic SDK 2.x has no sampling parameters any more.
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "messages": [m for m in request.messages if m["role"] != "system"],
        }
        if system:
            body["system"] = system
        if self.use_tool and request.schema is not None:
            body["tools"] = [{"name": TOOL_NAME, "description": "Submit the conversations you wrote.", "input_schema": request.schema}]
            body["tool_choice"] = {"type": "tool", "name": TOOL_NAME}
        client = client_for(self.clients, request)
        try:
            # The client's raw POST: plain JSON in, the raw answer kept (see the OpenAI provider).
            response: httpx2.Response = await client.post("/v1/messages", cast_to=httpx2.Response, body=body)
        except anthropic.AnthropicError as exc:
            raise error_from_sdk(exc, anthropic) from None
        return response.text

    async def close(self) -> None:
        for client in self.clients:
            await client.close()
