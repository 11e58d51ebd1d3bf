"""OpenAI chat completions (and any OpenAI-compatible server) with JSON-schema structured output."""

from __future__ import annotations

from typing import Any

import httpx2
import openai

from generator.generation.providers.base import ProviderError, ProviderRequest, client_for, error_from_sdk, sdk_clients

SCHEMA_NAME = "generated_examples"
# Words in a 400/422 that mean "this server does not do JSON schema", not "your request is wrong".
_SCHEMA_UNSUPPORTED_HINTS = ("response_format", "json_schema", "structured output", "not supported")


class OpenAIProvider:
    name = "openai"

    def __init__(self, *, model: str, base_url: str | None, structured_output: str, timeout: float, concurrency: int) -> None:
        self.model = model
        self.base_url = base_url
        self.mode = structured_output  # auto | json_schema | json
        self.notes: list[str] = []
        self.clients = sdk_clients(
            openai, openai.AsyncOpenAI, provider=self.name, base_url=base_url, timeout=timeout, concurrency=concurrency
        )

    async def send(self, request: ProviderRequest) -> str:
        try:
            return await self._create(request)
        except ProviderError as error:
            if error.kind != "unsupported_schema" or self.mode != "auto":
                raise
            # The server lacks JSON-schema output: fall back to plain JSON (the prompt asks for it) for the rest of the run.
            self.mode = "json"
            self.notes.append(f"the server rejected JSON-schema output ({error.message}); fell back to plain JSON")
            return await self._create(request)

    async def _create(self, request: ProviderRequest) -> str:
        body: dict[str, Any] = {"model": self.model, "messages": request.messages, "temperature": request.temperature}
        # OpenAI's own API wants max_completion_tokens (reasoning models reject max_tokens);
        # compatible servers (vLLM, Ollama, llama.cpp) know max_tokens.
        body["max_completion_tokens" if self.base_url is None else "max_tokens"] = request.max_tokens
        schema_mode = self.mode in ("auto", "json_schema") and request.schema is not None
        if schema_mode:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": SCHEMA_NAME, "schema": request.schema, "strict": True},
            }
        client = client_for(self.clients, request)
        try:
            # The client's raw POST: the body is already plain JSON and we keep the raw answer, so
            # the typed create() would only add ~0.5 ms of CPU per call re-validating both.
            response: httpx2.Response = await client.post("/chat/completions", cast_to=httpx2.Response, body=body)
        except openai.OpenAIError as exc:
            error = error_from_sdk(exc, openai)
            if schema_mode and error.status in (400, 422) and any(h in error.message.lower() for h in _SCHEMA_UNSUPPORTED_HINTS):
                raise ProviderError("unsupported_schema", error.message, status=error.status) from None
            raise error from None
        return response.text

    async def close(self) -> None:
        for client in self.clients:
            await client.close()
