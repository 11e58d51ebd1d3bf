"""A real loopback HTTP server speaking the OpenAI chat-completions and Anthropic messages wire formats.

It answers generation requests with realistic Ledgerly support conversations and can be told to
misbehave: latency, 429 with Retry-After, 500, a hung connection, malformed or wrong-shape JSON,
truncated answers (or answers cut after `cut_after` complete examples), refusals, a rejected key,
or a server without JSON-schema support.

Use it in-process (`with FakeLLMServer(...) as server:` binds 127.0.0.1 on port 0) or as its own
process: `python -m tests.fake_llm_server --port 0 --latency 0.2 --rate-limit 0.2`; it prints
`listening on http://127.0.0.1:PORT` and serves until killed. `GET /_stats` returns its counters.
Base URLs for the SDKs: `http://HOST:PORT/v1` (OpenAI) and `http://HOST:PORT` (Anthropic).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import random
import re
import socket
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BEHAVIOURS = ("ok", "429", "500", "hang", "malformed", "schema", "truncated", "refusal", "401", "cut")
CUT = ("truncated", "cut")  # answered as stopped at max_tokens

DEFAULT_SYSTEM = (
    "You are Ledgerly's support assistant. Answer questions about Ledgerly accurately and concisely, using only "
    "Ledgerly's documented features and policies. If a request is ambiguous, ask one clarifying question. If it is "
    "outside Ledgerly support, say so politely and point to the right resource."
)


@dataclass(frozen=True)
class Fact:
    tag: str
    questions: tuple[str, ...]
    answer: str
    edge: str | None = None


# Question/answer material taken from seeds/PRODUCT.md, so answers agree with the fact sheet.
# A table, one fact a row: the formatter would spread each over five lines.
# fmt: off
FACTS: tuple[Fact, ...] = (
    Fact("billing", ("how much is the Team plan per year?", "what does Team cost if I pay yearly?"),
         "Team is $372/year (or $39/month) and includes 3 users; each extra user is $84/year or $8/month."),
    Fact("billing", ("can I get a refund on my annual plan? I paid 10 days ago", "I renewed annually last week by mistake, refund?"),
         "Yes. Annual plans are fully refunded if you ask within 14 days of the annual charge. Email support@ledgerly.app from the Owner's email address; the refund reaches your original card in 5-10 business days and the account moves to Free."),
    Fact("billing", ("if I downgrade from Team to Solo do I get money back for the rest of the month?",),
         "No. Downgrades take effect at your next renewal date, with no partial credits or refunds. You keep Team features until then; make sure users and connected bank accounts fit Solo's limits before scheduling it."),
    Fact("billing", ("my card payment for the subscription failed, what happens now?",),
         "Ledgerly retries a failed subscription payment 3 times over 7 days and emails you each time. Update your card at Settings → Billing → Payment method and the outstanding charge is retried immediately; after the final failed retry the account moves to Free."),
    Fact("billing", ("where do I download receipts for my subscription?", "need our VAT number on the Ledgerly receipts"),
         "Receipts are at Settings → Billing → Billing history as PDFs. Company name, address and VAT/tax ID set at Settings → Billing → Billing details appear on every receipt you download afterwards, including past ones."),
    Fact("invoices", ("how do I change my invoice numbers to start at 2000?", "can I change the INV prefix on invoices?"),
         "Go to Settings → Invoices → Numbering and set the prefix and next number. The next number must be higher than the highest one already used; numbers are never reused."),
    Fact("invoices", ("I sent an invoice with the wrong amount, can I delete it?", "how do I delete a sent invoice"),
         "Sent invoices can't be deleted; only drafts can. Open it and choose More → Void: it keeps its number, shows Void and drops out of revenue reports. Then use More → Duplicate to send a corrected one. If it has payments recorded, issue a credit note instead."),
    Fact("invoices", ("how do I set up an invoice that goes out every month automatically?",),
         "On Solo or Team, go to Invoices → Recurring → New recurring invoice. Choose the frequency (weekly, every 2 weeks, monthly, quarterly or yearly), whether each one is sent automatically or saved as a draft, and when it ends."),
    Fact("invoices", ("can I change the default payment terms from net 30 to net 14?",),
         "Yes. Set the default at Settings → Invoices → Defaults; each invoice can still override it."),
    Fact("invoices", ("how do reminders work for unpaid invoices?", "can ledgerly chase late payers for me"),
         "On Solo and Team, Settings → Invoices → Reminders sends up to 3 automatic reminders per invoice, by default 3 days before, on, and 7 days after the due date. They stop once the invoice is paid or void. On any plan you can also use Send reminder on the invoice."),
    Fact("invoices", ("how do I add a late fee to overdue invoices?",),
         "On Solo or Team, turn it on at Settings → Invoices → Late fees: a fixed amount or a percentage, applied once after a grace period of 0-30 days as a separate \"Late fee\" line. It applies only to invoices sent after you enable it."),
    Fact("payments", ("how do my clients pay by card?", "can clients pay invoices with apple pay?"),
         "Connect Stripe at Settings → Payments → Stripe → Connect. Clients then pay on the invoice link by card, Apple Pay or Google Pay, and the invoice is marked Paid automatically."),
    Fact("payments", ("does ledgerly take a cut of card payments?",),
         "Stripe charges its own processing fees. Ledgerly adds a 1% platform fee only on the Free plan; Solo and Team pay no Ledgerly fee."),
    Fact("payments", ("a client paid me by bank transfer, how do I mark the invoice paid?",),
         "Open the invoice and use Record payment with method Bank transfer (partial amounts are fine), or match the deposit in Banking → Transactions → Match."),
    Fact("payments", ("how do I refund a client who paid by card?",),
         "Open the invoice → Payments → Refund, for the full amount or part of it. It goes through Stripe, which does not return its original processing fee."),
    Fact("payments", ("do you support paypal?",),
         "No, Ledgerly has no PayPal integration. Clients can pay by card through Stripe, or you can show bank transfer details at Settings → Payments → Bank transfer."),
    Fact("bank-sync", ("my bank says reconnect required, what do I do?",),
         "Go to Banking → Accounts → Reconnect. UK and EEA connections need renewed consent every 90 days, and any connection needs reconnecting after your bank login changes. Don't add the bank as a new connection; that creates duplicates."),
    Fact("bank-sync", ("how far back does bank sync import transactions?",),
         "The first sync imports up to 90 days of history. After that Ledgerly syncs once a day, and Banking → Accounts → Sync now runs a manual sync."),
    Fact("bank-sync", ("I'm seeing the same transactions twice after importing a CSV",),
         "That usually comes from a CSV import overlapping synced dates. Go to Banking → Transactions, filter Possible duplicates, and choose Merge or Keep both for each."),
    Fact("bank-sync", ("my bank is in Australia, can I connect it?",),
         "Bank sync covers banks in the US, Canada, UK and EEA. For other banks, import CSV or OFX statements at Banking → Import statement, available on every plan."),
    Fact("expenses", ("how do I forward receipts by email?",),
         "Use the address at Expenses → Receipts → Email forwarding. Send from the email address of a user on the account; PDF, JPG, PNG or HEIC attachments up to 10 MB each become draft expenses in Expenses → Receipts → Inbox."),
    Fact("expenses", ("how do I bill an expense back to a client?",),
         "Mark the expense billable to that client, then on the client's invoice use Add billable expenses."),
    Fact("expenses", ("can I add my own expense categories?",),
         "Yes, at Settings → Expenses → Categories you can add and rename categories, delete unused ones and archive ones in use."),
    Fact("taxes", ("how do I add VAT to my invoices?",),
         "Add a rate at Settings → Taxes → Tax rates → Add tax rate with its name, percentage and, optionally, your registration number printed on invoices. Each invoice line can carry up to 2 taxes."),
    Fact("taxes", ("where can I see how much sales tax I collected this quarter?",),
         "Reports → Tax summary shows tax collected on invoices and paid on expenses by period and rate, and you can export it to CSV."),
    Fact("account", ("how do I turn on two factor?", "I lost my phone with the authenticator app"),
         "Two-factor authentication uses an authenticator app at Settings → Security → Two-factor authentication, with 10 single-use backup codes. If you've lost both the device and the codes, email support@ledgerly.app from the account email; verification takes up to 2 business days."),
    Fact("account", ("how do I export all my data?",),
         "The Owner or an Admin can go to Settings → Data → Export data. You'll get an emailed link, valid for 7 days, to a ZIP of CSV files plus receipt images."),
    Fact("account", ("I deleted my account by accident yesterday!!",),
         "You have a 30-day grace period: sign in as the Owner and click Restore account. After 30 days the deletion is permanent."),
    Fact("integrations", ("what can I do with zapier?",),
         "On Solo and Team, connect Zapier at Settings → Integrations → Zapier. Triggers: invoice sent, paid or overdue, new client, new expense. Actions: create client, create draft invoice."),
    Fact("integrations", ("can I sync ledgerly with quickbooks?",),
         "There's no direct QuickBooks integration and no public API. You can export your data as CSV from Settings → Data → Export data and import it there."),
    Fact("taxes", ("should I charge VAT to a client in Germany?",),
         "I can't give tax advice, so please check with an accountant or your tax authority. Once you know the rate, add it at Settings → Taxes → Tax rates and it can be applied to invoice lines.",
         edge="edge:out-of-scope"),
    Fact("account", ("can you recommend a good CRM?", "what's the best laptop for bookkeeping"),
         "That's outside what I can help with here: I can only answer questions about Ledgerly. For Ledgerly itself, the help center at help.ledgerly.app covers every feature.",
         edge="edge:out-of-scope"),
    Fact("invoices", ("it won't let me change it", "the number is wrong"),
         "Happy to help. Which invoice setting are you trying to change: the invoice numbering, or the details of one particular invoice?",
         edge="edge:ambiguous"),
    Fact("billing", ("THIRD time asking: why was I charged again??", "this is ridiculous, you charged me twice"),
         "I'm sorry for the trouble. Your billing history at Settings → Billing → Billing history lists every charge with its reason. If it's an annual renewal from the last 14 days, email support@ledgerly.app from the Owner's address and it will be fully refunded.",
         edge="edge:frustrated"),
)
# fmt: on

OPENERS = (
    "",
    "hi, ",
    "Hello! ",
    "quick question: ",
    "hey team, ",
    "Hi there. ",
    "Good morning. ",
    "sorry if this is obvious but ",
    "I run a small bakery. ",
    "I'm a freelance photographer. ",
    "We're a 3-person agency. ",
    "new to ledgerly here - ",
    "I do bookkeeping for a dental practice. ",
    "Asking for my accountant: ",
    "I'm on the Solo plan. ",
    "we just moved to Team, ",
)
ASIDES = ("", "", " Thanks!", " Thanks in advance.", " Cheers.", " Appreciate it.", " (on mobile, sorry for typos)", " This is urgent.")
FOLLOW_UPS = (
    "ok and does that work on the free plan too?",
    "got it. where is that setting exactly?",
    "thanks, last thing: is there a limit?",
)
FOLLOW_UP_ANSWERS = (
    "Check the plan list: Free has no recurring invoices, automatic reminders, late fees, bank sync or Zapier, so those need Solo or Team.",
    "It's in Settings; the exact path is the one above, and only the Owner or an Admin can change Settings.",
    "The limits depend on your plan: Free allows 3 clients and 5 invoices a month, while Solo and Team are unlimited.",
)


def conversations_for(prompt: str, *, count: int, rng: random.Random) -> list[dict[str, Any]]:
    """`count` Ledgerly conversations in the house style of the few-shot examples found in `prompt`."""
    examples = _examples_in(prompt)
    system = next((m["content"] for e in examples for m in e.get("messages", []) if m.get("role") == "system"), DEFAULT_SYSTEM)
    wanted = set(re.findall(r"tagged `([a-z0-9][a-z0-9_.:/-]*)`", prompt))
    pool = [f for f in FACTS if f.tag in wanted or f.edge in wanted] or list(FACTS)
    out = []
    for _ in range(count):
        fact = rng.choice(pool)
        question = rng.choice(OPENERS) + rng.choice(fact.questions) + rng.choice(ASIDES)
        messages = [
            {"role": "system", "content": system},
            {"role": "user", "content": question},
            {"role": "assistant", "content": fact.answer},
        ]
        tags = [fact.tag] + ([fact.edge] if fact.edge else [])
        if rng.random() < 0.3:
            follow = rng.randrange(len(FOLLOW_UPS))
            messages += [{"role": "user", "content": FOLLOW_UPS[follow]}, {"role": "assistant", "content": FOLLOW_UP_ANSWERS[follow]}]
            tags.append("edge:multi-turn")
        out.append({"messages": messages, "tags": tags})
    return out


CHAT_OPENINGS = ("Sure. ", "Happy to help! ", "Good question. ", "Thanks for asking. ", "Here's how it works: ")


def chat_answer(messages: list[dict[str, Any]], *, sample: int) -> str:
    """A support answer to the conversation's last user turn: the fact it asks about, opened differently per sample."""
    question = _text_of(messages[-1].get("content")) if messages else ""
    answers = [f.answer for f in FACTS if any(q in question for q in f.questions)]
    answers += [a for q, a in zip(FOLLOW_UPS, FOLLOW_UP_ANSWERS, strict=True) if q in question]
    answer = answers[0] if answers else "Could you tell me a little more about what you are trying to do in Ledgerly?"
    return CHAT_OPENINGS[sample % len(CHAT_OPENINGS)] + answer


def _examples_in(prompt: str) -> list[dict[str, Any]]:
    found = []
    for line in prompt.splitlines():
        line = line.strip()
        if line.startswith('{"messages"'):
            with contextlib.suppress(json.JSONDecodeError):
                found.append(json.loads(line))
    return found


@dataclass
class FaultPlan:
    """Which behaviour each request gets: a script first (in arrival order), then ratios drawn at random."""

    latency: float = 0.0
    ratios: dict[str, float] = field(default_factory=dict)
    script: list[str] = field(default_factory=list)
    retry_after: float = 1.0
    json_schema_supported: bool = True
    hang_seconds: float = 600.0
    cut_after: int = 1  # "cut": complete examples before the one the answer stops in (fewer if fewer were asked)
    writes_at_most: int | None = None  # a model that writes at most this many examples per answer, whatever it is asked

    def __post_init__(self) -> None:
        for name in [*self.ratios, *self.script]:
            if name not in BEHAVIOURS:
                raise ValueError(f"unknown behaviour {name!r}; known: {', '.join(BEHAVIOURS)}")


class FakeLLMServer:
    """The server, its counters and its fault plan. A context manager that serves in a thread."""

    def __init__(self, plan: FaultPlan | None = None, *, host: str = "127.0.0.1", port: int = 0, seed: int = 0) -> None:
        self.plan = plan or FaultPlan()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.seen_bodies: Counter[str] = Counter()  # body digest -> requests answered ok (a request paid again counts 2)
        self.requests = 0
        self.behaviours: Counter[str] = Counter()
        self.paths: Counter[str] = Counter()
        self.seen_keys: set[str] = set()
        self.log: deque[dict[str, Any]] = deque(maxlen=200)  # the latest requests: path, JSON body, behaviour, arrival time
        self.in_flight = 0
        self.answered_at: dict[str, float] = {}  # body digest -> when its first good answer was sent (monotonic)
        self.stopping = threading.Event()
        self.httpd = _Server((host, port), _Handler)
        self.httpd.fake = self
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        assert isinstance(host, str)  # an IP socket's address (bytes only for AF_UNIX)
        return f"http://{host}:{port}"

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    def start(self) -> FakeLLMServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()  # releases hung handlers
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"requests": self.requests, "behaviours": dict(self.behaviours), "paths": dict(self.paths), "in_flight": self.in_flight}

    def _next_behaviour(self, path: str, auth: str | None, body: bytes) -> str:
        arrived = time.monotonic()
        with self._lock:
            self.requests += 1
            self.in_flight += 1
            self.paths[path] += 1
            if auth:
                self.seen_keys.add(auth)
            if self.plan.script:
                behaviour = self.plan.script.pop(0)
            else:
                behaviour, roll = "ok", self._rng.random()
                for name, ratio in self.plan.ratios.items():
                    if roll < ratio:
                        behaviour = name
                        break
                    roll -= ratio
            self.behaviours[behaviour] += 1
            self.log.append({"path": path, "body": json.loads(body or b"{}"), "behaviour": behaviour, "at": arrived})
            return behaviour

    def _answer_seed(self, body: bytes) -> int:
        # Identical prompts get different samples (like a model at temperature > 0), but the
        # same server replays the same sequence, so runs are reproducible.
        digest = hashlib.sha256(body).hexdigest()
        with self._lock:
            self.seen_bodies[digest] += 1
            return int(digest[:12], 16) + self.seen_bodies[digest]

    def _done(self, answered: str | None) -> None:
        with self._lock:
            self.in_flight -= 1
            if answered is not None:
                self.answered_at.setdefault(answered, time.monotonic())


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the default listen backlog of 5 resets connections under concurrency
    fake: FakeLLMServer  # the fake whose plan the handlers follow, set right after the server is made

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client killed mid-request (the kill tests do it on purpose) is not a server fault.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeLLM/1.0"
    wbufsize = 1 << 16  # headers and body leave in one segment (flushed after each request)
    status = 0  # the status of the answer being sent (0 until one is)

    def setup(self) -> None:
        super().setup()
        # Without this, Nagle's algorithm and the client's delayed ACK add up to 200 ms per answer.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence per-request logging
        pass

    @property
    def fake(self) -> FakeLLMServer:
        assert isinstance(self.server, _Server)
        return self.server.fake

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/_stats":
            self._send(200, self.fake.stats())
        else:
            self._send(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if len(body) < length:  # the client died mid-request (a kill test): nothing to answer
            self.close_connection = True
            return
        if self.path.endswith("/chat/completions"):
            wire = "openai"
        elif self.path.endswith("/messages"):
            wire = "anthropic"
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        auth = self.headers.get("Authorization") or self.headers.get("x-api-key")
        behaviour = self.fake._next_behaviour(self.path, auth, body)
        self.status = 0
        try:
            self._serve(wire, behaviour, body)
        finally:
            self.fake._done(hashlib.sha256(body).hexdigest() if self.status == 200 else None)

    def _serve(self, wire: str, behaviour: str, body: bytes) -> None:
        plan = self.fake.plan
        if behaviour == "hang":
            self.fake.stopping.wait(plan.hang_seconds)
            self.close_connection = True
            return
        if plan.latency:
            time.sleep(plan.latency)
        request = json.loads(body)
        if behaviour in ("429", "500", "401"):
            self._send_error(wire, int(behaviour))
            return
        if wire == "openai" and not plan.json_schema_supported and (request.get("response_format") or {}).get("type") == "json_schema":
            self._send(
                400,
                {
                    "error": {
                        "message": "response_format type json_schema is not supported by this server",
                        "type": "invalid_request_error",
                        "param": "response_format",
                    }
                },
            )
            return
        prompt = "\n".join(_text_of(m.get("content")) for m in request.get("messages", []))
        prompt += "\n" + _text_of(request.get("system"))
        match = re.search(r"(\d+) new conversations?", prompt)
        if match is None and not request.get("response_format") and not request.get("tools"):
            # A plain chat request (generate --variants): the assistant's next turn, as text.
            text = chat_answer(request.get("messages", []), sample=self.fake._answer_seed(body))
            if wire == "openai":
                self._send(200, _openai_body(request, text, behaviour, prompt, schema_ok=True, plain=True))
            else:
                self._send(200, _anthropic_body(request, text, None, behaviour, prompt))
            return
        count = int(match.group(1)) if match else 3
        if plan.writes_at_most is not None:
            count = min(count, plan.writes_at_most)
        payload: Any = {"examples": conversations_for(prompt, count=count, rng=random.Random(self.fake._answer_seed(body)))}
        if behaviour == "schema":
            # Not the asked-for shape at all: an unknown role and a missing content field.
            payload = {"examples": [{"messages": [{"role": "customer", "text": "hello?"}], "tags": ["billing"]}]}
        text = json.dumps(payload, ensure_ascii=False)
        if behaviour == "malformed":
            text = text[: len(text) // 2] + ' "oops'
        if behaviour == "truncated":
            text = text[: max(10, len(text) // 3)]
        if behaviour == "cut":
            payload, text = _cut(payload["examples"], keep=min(plan.cut_after, count - 1))
        if wire == "openai":
            self._send(200, _openai_body(request, text, behaviour, prompt, plan.json_schema_supported))
        else:
            self._send(200, _anthropic_body(request, text, payload, behaviour, prompt))

    def _send_error(self, wire: str, status: int) -> None:
        kinds = {
            429: ("rate_limit_error", "Rate limit reached, please retry later"),
            500: ("api_error", "Internal server error"),
            401: ("authentication_error", "Incorrect API key provided: sk-fake...leak"),
        }
        kind, message = kinds[status]
        headers = {"Retry-After": _retry_after_value(self.fake.plan.retry_after)} if status == 429 else {}
        body = (
            {"type": "error", "error": {"type": kind, "message": message}}
            if wire == "anthropic"
            else {"error": {"message": message, "type": kind, "code": kind}}
        )
        self._send(status, body, headers)

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.status = status
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()  # sent now, so answered_at is when the client could have it


def _cut(examples: list[dict[str, Any]], *, keep: int) -> tuple[dict[str, Any], str]:
    """An answer stopped inside example keep+1: as a tool's partial input, and as JSON text."""
    cut = examples[keep]
    text = json.dumps({"examples": examples[:keep]}, ensure_ascii=False)[:-2] + (", " if keep else "")
    whole = json.dumps(cut, ensure_ascii=False)
    return {"examples": [*examples[:keep], {"messages": cut["messages"][:1]}]}, text + whole[: len(whole) // 2]


def _retry_after_value(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:.3f}"


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def _usage(prompt: str, text: str) -> tuple[int, int]:
    return max(1, len(prompt) // 4), max(1, len(text) // 4)


def _openai_body(
    request: dict[str, Any], text: str, behaviour: str, prompt: str, schema_ok: bool, *, plain: bool = False
) -> dict[str, Any]:
    fmt = (request.get("response_format") or {}).get("type")
    if not plain and (fmt is None or (fmt == "json_schema" and not schema_ok)):
        fence = "" if behaviour in CUT else "\n```"  # a cut answer never got to close its fence
        text = f"Here are the conversations:\n```json\n{text}{fence}"  # what a local model without JSON mode tends to write
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    finish = "stop"
    if behaviour in CUT:
        finish = "length"
    if behaviour == "refusal":
        message = {"role": "assistant", "content": None, "refusal": "I'm sorry, but I can't help with that request."}
    prompt_tokens, completion_tokens = _usage(prompt, text)
    return {
        "id": f"chatcmpl-{hashlib.sha1(text.encode()).hexdigest()[:20]}",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": request.get("model", "fake"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _anthropic_body(request: dict[str, Any], text: str, payload: Any, behaviour: str, prompt: str) -> dict[str, Any]:
    tool = next(iter(request.get("tools") or []), None)
    stop = "end_turn"
    if tool and behaviour not in ("malformed", "refusal"):
        content = [{"type": "tool_use", "id": "toolu_fake", "name": tool["name"], "input": payload if behaviour != "truncated" else {}}]
        stop = "tool_use"
    else:
        content = [{"type": "text", "text": text}]
    if behaviour in CUT:
        stop = "max_tokens"
    if behaviour == "refusal":
        content, stop = [{"type": "text", "text": "I can't help with that."}], "refusal"
    input_tokens, output_tokens = _usage(prompt, text)
    return {
        "id": f"msg_{hashlib.sha1(text.encode()).hexdigest()[:20]}",
        "type": "message",
        "role": "assistant",
        "model": request.get("model", "fake"),
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake OpenAI/Anthropic server for synthgate tests and benchmarks.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on start)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--retry-after", type=float, default=1.0, help="Retry-After seconds sent with each 429")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--script", default="", help="comma-separated behaviours for the first requests, e.g. 429,ok,500")
    parser.add_argument("--no-json-schema", action="store_true", help="answer 400 to response_format json_schema")
    for name, flag in (
        ("429", "rate-limit"),
        ("500", "server-error"),
        ("hang", "hang"),
        ("malformed", "malformed"),
        ("schema", "wrong-schema"),
        ("truncated", "truncated"),
        ("refusal", "refusal"),
    ):
        parser.add_argument(f"--{flag}", type=float, default=0.0, dest=f"ratio_{name}", help=f"share of requests answered '{name}'")
    args = parser.parse_args(argv)
    ratios = {key.removeprefix("ratio_"): value for key, value in vars(args).items() if key.startswith("ratio_") and value}
    plan = FaultPlan(
        latency=args.latency,
        ratios=ratios,
        script=[s for s in args.script.split(",") if s],
        retry_after=args.retry_after,
        json_schema_supported=not args.no_json_schema,
    )
    server = FakeLLMServer(plan, host=args.host, port=args.port, seed=args.seed)
    print(f"listening on {server.url}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.httpd.serve_forever(poll_interval=0.05)


if __name__ == "__main__":
    main()
