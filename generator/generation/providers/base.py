"""The provider interface: send one request, get the raw response body back, or a classified ProviderError."""

from __future__ import annotations

import email.utils
import functools
import time
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from generator.errors import UserError
from generator.generation.secrets import api_key, scrub_secrets

ErrorKind = Literal["rate_limit", "server", "timeout", "refused", "connection", "auth", "bad_request", "not_found", "unsupported_schema"]
# Workers per SDK client: each client has its own connection pool, and httpcore scans every pooled
# connection on every request, so one pool per 16 in-flight requests keeps that scan short.
WORKERS_PER_CLIENT = 16
RETRYABLE: frozenset[str] = frozenset({"rate_limit", "server", "timeout", "refused", "connection"})
_LABELS = {
    "rate_limit": "rate limited",
    "server": "server error",
    "timeout": "timed out",
    "refused": "connection refused",
    "connection": "connection failed",
    "auth": "authentication failed",
    "bad_request": "bad request",
    "not_found": "not found",
    "unsupported_schema": "JSON schema output not supported",
}
_CAUSES = {"timeout": "a timeout", "connection": "a dropped connection"}
# Where a provider sends its requests when no --base-url is given (for messages: the SDKs' defaults).
DEFAULT_URLS = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com"}


@dataclass(frozen=True)
class ProviderRequest:
    messages: list[dict[str, str]]
    temperature: float
    max_tokens: int
    schema: dict[str, Any] | None  # JSON schema of the answer; None: a plain chat answer (generate --variants)
    request_index: int
    lane: int  # which of the run's workers sends it: a worker always uses the same SDK client (see client_for)
    prompt_key: str  # provider-independent identity of the prompt (matches replay recordings)


class ProviderError(Exception):
    """A failed request, classified so the caller knows whether to retry, wait or stop the run."""

    def __init__(self, kind: ErrorKind, message: str, *, retry_after: float | None = None, status: int | None = None) -> None:
        self.kind = kind
        self.message = scrub_secrets(message)
        self.retry_after = retry_after
        self.status = status
        super().__init__(self.message)

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE

    @property
    def label(self) -> str:
        """The kind in words, e.g. "connection refused"."""
        return _LABELS[self.kind]

    @property
    def cause(self) -> str:
        """What a retry came after, in words: "429", "500", "a timeout", "a dropped connection"."""
        return str(self.status) if self.status else _CAUSES.get(self.kind, self.label)

    def describe(self) -> str:
        status = f"HTTP {self.status} " if self.status else ""
        return f"{status}{_LABELS[self.kind]}: {self.message}"


def check_base_url(provider: str, base_url: str | None) -> None:
    """Refuse a base URL that cannot work, before anything is sent (exit 2).

    The Anthropic SDK appends /v1/messages itself, so a base URL ending in /v1 asks for
    /v1/v1/messages and gets a 404. It is refused rather than stripped: --base-url reaches the SDK
    unchanged (a contract), and the user's config should say what is really used.
    """
    if provider == "anthropic" and base_url and urlsplit(base_url).path.rstrip("/").endswith("/v1"):
        fixed = base_url.rstrip("/").removesuffix("/v1")
        raise UserError(
            f"--base-url {base_url}: the Anthropic base URL must not end in /v1 (the SDK adds /v1/messages itself)",
            fix=f"use --base-url {fixed} (or base_url in [generate] of synthgate.toml)",
        )


def kind_label(kind: str) -> str:
    """An ErrorKind in words, e.g. "timed out"."""
    return _LABELS.get(kind, kind)


class Provider(Protocol):
    name: str
    notes: list[str]  # things worth telling the user once (e.g. a fallback that happened)

    async def send(self, request: ProviderRequest) -> str:
        """The raw response body (JSON text) exactly as received; raises ProviderError."""
        ...

    async def close(self) -> None: ...


def client_count(concurrency: int) -> int:
    return max(1, -(-concurrency // WORKERS_PER_CLIENT))


def client_for(clients: list[Any], request: ProviderRequest) -> Any:
    """The client of the request's worker. Fixed per worker, so no pool ever holds more than
    WORKERS_PER_CLIENT connections (spreading by request would grow every pool towards `concurrency`)."""
    return clients[request.lane % len(clients)]


def sdk_clients(sdk: Any, client_class: Any, *, provider: str, base_url: str | None, timeout: float, concurrency: int) -> list[Any]:
    """SDK clients, one per WORKERS_PER_CLIENT requests, each on the SDK's own default HTTP client, sharing one TLS context.

    max_retries=0: retries are ours (limits.py). They honour Retry-After with a cap and a per-call
    deadline, where the SDK would sleep whatever Retry-After says (200 s seen).
    """
    key = api_key(provider, base_url=base_url)
    return [
        client_class(
            api_key=key, base_url=base_url, max_retries=0, timeout=timeout, http_client=sdk.DefaultAsyncHttpxClient(verify=tls_context())
        )
        for _ in range(client_count(concurrency))
    ]


@functools.cache
def tls_context() -> Any:
    """One TLS context per process: loading the CA bundle costs ~25 ms each time."""
    import httpx2

    return httpx2.create_ssl_context()


def error_from_sdk(exc: Exception, sdk: Any) -> ProviderError:
    """Classify an openai/anthropic SDK exception (both SDKs share these class names)."""
    if isinstance(exc, sdk.APITimeoutError):
        return ProviderError("timeout", "the request timed out")
    if isinstance(exc, sdk.APIConnectionError):
        if _refused(exc):
            return ProviderError("refused", "nothing accepts connections there")
        cause = exc.__cause__ or exc
        return ProviderError("connection", f"{exc} ({type(cause).__name__}: {cause})" if cause is not exc else str(exc))
    if not isinstance(exc, sdk.APIStatusError):
        return ProviderError("bad_request", f"{type(exc).__name__}: {exc}")
    status = exc.status_code
    message = str(getattr(exc, "message", exc))
    if status == 429:
        return ProviderError("rate_limit", message, retry_after=retry_after_seconds(exc.response.headers), status=status)
    if status in (408, 409) or status >= 500:
        return ProviderError("server", message, retry_after=retry_after_seconds(exc.response.headers), status=status)
    if status in (401, 403):
        return ProviderError("auth", message, status=status)
    if status == 404:
        return ProviderError("not_found", message, status=status)
    return ProviderError("bad_request", message, status=status)


def _refused(exc: BaseException) -> bool:
    """Whether a connection error comes down to a refused connection: nothing listens there, and a
    few quick attempts are all it deserves (see limits.QUICK_DELAYS), not the backoff of a 429."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ConnectionRefusedError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds the server asks us to wait: `retry-after-ms`, `retry-after` in seconds, or an HTTP date."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
