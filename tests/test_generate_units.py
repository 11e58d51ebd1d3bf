"""Generation building blocks: templates, few-shot sampling, request identity, parsing, pricing, limits, secrets."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

from generator.config import GenerateSection, PriceSection
from generator.errors import UserError
from generator.generation.limits import (
    RETRY_AFTER_CAP,
    Budget,
    CallFailed,
    FatalProviderError,
    RateLimitGate,
    RetryPolicy,
    send_with_retries,
)
from generator.generation.parsing import ANSWER_SCHEMA, json_from_text, parse_answer
from generator.generation.planning import DRY_RUN_SAMPLE, RequestPlanner
from generator.generation.pricing import PriceTable, estimate_tokens
from generator.generation.providers.base import ProviderError, retry_after_seconds
from generator.generation.sampling import FewShotSampler
from generator.generation.secrets import scrub_secrets
from generator.generation.templates import PromptTemplate
from generator.seed_facts import SeedFacts
from generator.seeds import load_seeds
from tests.conftest import run_cli

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TEMPLATE = REPO / "generator" / "scaffold" / "prompts" / "generate.jinja"
CONVERSATION = [
    {"role": "user", "content": "How do I void an invoice?"},
    {"role": "assistant", "content": "Open it and choose More → Void."},
]


@pytest.fixture(scope="module")
def seeds():
    return load_seeds([REPO / "seeds" / "support.jsonl"]).seeds


# --- templates -------------------------------------------------------------------------------


def _template(tmp_path: Path, text: str) -> PromptTemplate:
    path = tmp_path / "t.jinja"
    path.write_text(text, encoding="utf-8")
    return PromptTemplate.load(path)


def test_default_template_renders_seeds_in_their_own_line_format(seeds) -> None:
    template = PromptTemplate.load(DEFAULT_TEMPLATE)
    messages = template.render(
        {
            "examples": [s.example for s in seeds[:2]],
            "count": 3,
            "tags": [],
            "focus": "edge:frustrated",
            "rejection_reasons": [("factually wrong", 4)],
            "context": [],
            "description": "",
            "facts": SeedFacts.of([s.example for s in seeds]),
        }
    )
    assert [m["role"] for m in messages] == ["system", "user"]
    user = messages[1]["content"]
    shown = [json.loads(line) for line in user.splitlines() if line.startswith('{"messages"')]
    assert shown == [{"messages": s.example.messages_as_dicts(), "tags": list(s.example.tags)} for s in seeds[:2]]
    assert "Write 3 new conversations" in user
    assert "`edge:frustrated`" in user
    assert "factually wrong (4x)" in user


def test_template_context_files_reach_the_system_message(seeds) -> None:
    from generator.generation.planning import ContextFile

    messages = PromptTemplate.load(DEFAULT_TEMPLATE).render(
        {
            "examples": [],
            "count": 1,
            "tags": ["billing"],
            "focus": None,
            "rejection_reasons": [],
            "context": [ContextFile("facts.md", "Plans cost $15.")],
            "description": "",
            "facts": SeedFacts.of([]),
        }
    )
    assert "Plans cost $15." in messages[0]["content"]
    assert "must be tagged `billing`" in messages[1]["content"]


def test_template_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(UserError) as error:
        _template(tmp_path, "{% block user %}\nline two\n{% for x in %}\n{% endblock %}")
    assert error.value.line == 3
    assert error.value.file == str(tmp_path / "t.jinja")
    assert error.value.exit_code == 2


def test_template_undefined_variable_names_its_line(tmp_path: Path) -> None:
    template = _template(tmp_path, "{% block system %}ok{% endblock %}\n{% block user %}\nfine\n{{ cuont }}\n{% endblock %}")
    with pytest.raises(UserError, match="'cuont' is undefined") as error:
        template.render({"count": 1})
    assert error.value.line == 4


def test_template_sandbox_refuses_python_internals(tmp_path: Path) -> None:
    template = _template(tmp_path, "{% block user %}{{ count.__class__.__mro__ }}{% endblock %}")
    with pytest.raises(UserError, match="unsafe"):
        template.render({"count": 1})


def test_template_without_user_block_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=re.escape("no {% block user %}")):
        _template(tmp_path, "{% block system %}only a system message{% endblock %}")


def test_template_output_is_plain_text_not_html_escaped(tmp_path: Path) -> None:
    template = _template(tmp_path, "{% block user %}{{ count }} <b> & {{ 'x' | as_json }}{% endblock %}")
    assert template.render({"count": "<3"}) == [{"role": "user", "content": '<3 <b> & "x"'}]


def test_a_template_path_that_is_a_folder_or_a_pipe_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.jinja")
    for path in (tmp_path, tmp_path / "pipe.jinja"):  # a pipe would be waited on forever
        with pytest.raises(UserError, match="not a regular file") as error:
            PromptTemplate.load(path)
        assert error.value.file == str(path)


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("{% block user %}{{ '\\ud800' }}{% endblock %}", "lone surrogate"),
        ("{% block user %}{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}{% endblock %}", "nested too deeply"),
        ("{% block user %}" + "{% if 1 %}" * 200 + "x" + "{% endif %}" * 200 + "{% endblock %}", "nested too deeply"),
        ("{% block user %}{{ 'x' * 10000000000 }}{% endblock %}", "more than 10,000,000"),
        ("{% block user %}{{ [1] * 10000000000 }}{% endblock %}", "more than 10,000,000"),
        ("{% block user %}{{ 7 ** 10000000 }}{% endblock %}", "exponent too large"),
    ],
)
def test_templates_that_cannot_make_a_prompt_are_user_errors(tmp_path: Path, source: str, problem: str) -> None:
    with pytest.raises(UserError, match=problem):
        _template(tmp_path, source).render({"count": 1})


def test_template_arithmetic_still_works(tmp_path: Path) -> None:
    template = _template(tmp_path, "{% block user %}{{ count * 2 }} {{ 2 ** 10 }} {{ '-' * 3 }}{% endblock %}")
    assert template.render({"count": 4}) == [{"role": "user", "content": "8 1024 ---"}]


# --- few-shot sampling -----------------------------------------------------------------------


def test_sampling_is_a_function_of_seed_and_index(seeds) -> None:
    first = FewShotSampler(seeds, k=4, sampling_seed=7)
    again = FewShotSampler(list(reversed(seeds)), k=4, sampling_seed=7)  # file order does not matter
    other = FewShotSampler(seeds, k=4, sampling_seed=8)
    picks = [[s.id for s in first.sample(i).seeds] for i in range(20)]
    assert picks == [[s.id for s in again.sample(i).seeds] for i in range(20)]
    assert picks != [[s.id for s in other.sample(i).seeds] for i in range(20)]
    assert all(len(set(p)) == 4 for p in picks)


def test_sampling_covers_every_tag_and_favours_rare_ones(seeds) -> None:
    sampler = FewShotSampler(seeds, k=4, sampling_seed=0)
    tags = sorted({t for s in seeds for t in s.example.tags})
    focuses = [sampler.sample(i).focus for i in range(len(tags))]
    assert Counter(focuses) == Counter(tags)  # every tag, edge cases included, gets its turn
    shown: Counter[str] = Counter()
    for i in range(200):
        fs = sampler.sample(i)
        assert fs.focus in {t for s in fs.seeds for t in s.example.tags}
        shown.update(t for s in fs.seeds for t in s.example.tags)
    in_seeds = Counter(t for s in seeds for t in s.example.tags)
    # edge:frustrated has 4 seeds, invoices 10: shown at least as often despite being rarer.
    assert in_seeds["edge:frustrated"] < in_seeds["invoices"]
    assert shown["edge:frustrated"] >= shown["invoices"]


def test_sampling_aimed_at_a_tag(seeds) -> None:
    sampler = FewShotSampler(seeds, k=4, sampling_seed=0, target_tag="taxes")
    for i in range(10):
        assert all("taxes" in s.example.tags for s in sampler.sample(i).seeds)
    with pytest.raises(UserError, match="matches no seed"):
        FewShotSampler(seeds, k=4, sampling_seed=0, target_tag="nope")


# --- request identity ------------------------------------------------------------------------


def test_identical_prompts_get_distinct_request_hashes_and_a_rerun_the_same_ones(seeds) -> None:
    settings = GenerateSection(few_shot=0, count=9, per_request=3, tag="billing")  # every prompt is the same
    planner = RequestPlanner(
        settings=settings, template=PromptTemplate.load(DEFAULT_TEMPLATE), seeds=seeds, context=[], rejection_reasons=[]
    )
    rows = list(planner.journal_rows(run_id="r", skip=set()))
    assert len({json.dumps(r["request"]["messages"]) for r in rows}) == 1
    assert len({r["request_hash"] for r in rows}) == 3
    again = list(planner.journal_rows(run_id="r", skip={0}))
    assert [r["request_hash"] for r in again] == [r["request_hash"] for r in rows[1:]]
    other_model = RequestPlanner(
        settings=settings.model_copy(update={"model": "gpt-4o"}), template=planner.template, seeds=seeds, context=[], rejection_reasons=[]
    )
    assert not {r["request_hash"] for r in rows} & {r["request_hash"] for r in other_model.journal_rows(run_id="r", skip=set())}


def test_the_last_request_asks_only_for_what_is_missing(seeds) -> None:
    planner = RequestPlanner(
        settings=GenerateSection(count=7, per_request=5),
        template=PromptTemplate.load(DEFAULT_TEMPLATE),
        seeds=seeds,
        context=[],
        rejection_reasons=[],
    )
    assert planner.total == 2
    assert [planner.asked(i) for i in range(2)] == [5, 2]


# --- dry run ---------------------------------------------------------------------------------


def test_a_small_run_is_estimated_over_every_prompt(seeds) -> None:
    planner = RequestPlanner(
        settings=GenerateSection(count=50, per_request=5),
        template=PromptTemplate.load(DEFAULT_TEMPLATE),
        seeds=seeds,
        context=[],
        rejection_reasons=[],
    )
    every = sum(estimate_tokens("".join(m["content"] for m in planner.build(i).messages)) for i in range(planner.total))
    assert planner.estimated_input_tokens() == every


def test_a_large_run_is_estimated_from_a_sample_close_to_the_whole(seeds, monkeypatch: pytest.MonkeyPatch) -> None:
    planner = RequestPlanner(
        settings=GenerateSection(count=5000, per_request=5),
        template=PromptTemplate.load(DEFAULT_TEMPLATE),
        seeds=seeds,
        context=[],
        rejection_reasons=[],
    )
    every = sum(estimate_tokens("".join(m["content"] for m in planner.build(i).messages)) for i in range(planner.total))
    rendered = Counter[str]()
    build = planner.build
    monkeypatch.setattr(planner, "build", lambda index: rendered.update(["prompt"]) or build(index))
    estimate = planner.estimated_input_tokens()
    assert rendered["prompt"] == DRY_RUN_SAMPLE
    assert abs(estimate - every) / every < 0.03


def test_dry_run_of_a_hundred_million_candidates_estimates_without_building_every_prompt(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from generator.cli.app import main

    renders = Counter[str]()
    render = PromptTemplate.render

    def counted(self: PromptTemplate, variables: dict) -> list[dict[str, str]]:
        renders["prompt"] += 1
        if renders["prompt"] > 10 * DRY_RUN_SAMPLE:  # the old dry run built all 2 * 10^7 prompts: stop it early
            raise AssertionError("the dry run renders every prompt")
        return render(self, variables)

    monkeypatch.setattr(PromptTemplate, "render", counted)
    monkeypatch.setattr(sys, "argv", ["synthgate", "--project", str(project_dir), "generate", "--dry-run", "--count", "100000000"])
    with pytest.raises(SystemExit) as exit_:
        main()
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    assert "20000000 request(s) to gpt-4o-mini for 100000000 candidate(s)." in out
    assert "Estimated tokens: ≈ " in out and "Estimated cost: ≈ $" in out
    assert renders["prompt"] <= DRY_RUN_SAMPLE + 1


def test_a_context_file_that_is_a_named_pipe_does_not_hang_the_dry_run(project_dir: Path) -> None:
    os.mkfifo(project_dir / "facts.pipe")
    config = project_dir / "synthgate.toml"
    config.write_text(config.read_text().replace("[generate]\n", '[generate]\ncontext_files = ["facts.pipe"]\n', 1))
    result = run_cli("generate", "--dry-run", cwd=project_dir, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    line = config.read_text().splitlines().index('context_files = ["facts.pipe"]') + 1
    assert result.stderr.startswith(f"error: {config}:{line}: cannot read context file 'facts.pipe': not a regular file")


# --- parsing ---------------------------------------------------------------------------------


def _openai(content: str | None, finish: str = "stop", refusal: str | None = None) -> str:
    return json.dumps(
        {
            "object": "chat.completion",
            "choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": content, "refusal": refusal}}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7},
        }
    )


def _anthropic(content: list, stop: str = "tool_use") -> str:
    return json.dumps(
        {"type": "message", "role": "assistant", "content": content, "stop_reason": stop, "usage": {"input_tokens": 5, "output_tokens": 3}}
    )


def test_parse_openai_structured_answer() -> None:
    answer = parse_answer(_openai(json.dumps({"examples": [{"messages": CONVERSATION, "tags": ["Invoices"]}]})), asked=5)
    assert answer.status == "ok"
    assert answer.examples[0].messages_as_dicts() == CONVERSATION
    assert answer.examples[0].tags == ["invoices"]
    assert (answer.input_tokens, answer.output_tokens, answer.error) == (11, 7, None)


def test_parse_plain_json_in_a_fence_and_caps_at_asked() -> None:
    text = "Sure! Here they are:\n```json\n" + json.dumps({"examples": [{"messages": CONVERSATION, "tags": []}] * 3}) + "\n```"
    answer = parse_answer(_openai(text), asked=2)
    assert answer.status == "ok" and len(answer.examples) == 2


def test_parse_anthropic_tool_answer() -> None:
    answer = parse_answer(
        _anthropic([{"type": "tool_use", "name": "submit_examples", "input": {"examples": [{"messages": CONVERSATION, "tags": []}]}}]),
        asked=1,
    )
    assert answer.status == "ok" and answer.input_tokens == 5


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (_openai('{"examples": [{"messages": '), "invalid", "invalid JSON"),
        (
            _openai(json.dumps({"examples": [{"messages": [{"role": "user"}], "tags": []}]})),
            "invalid",
            "messages.0.content: Field required",
        ),
        (_openai(json.dumps({"conversations": []})), "invalid", "schema mismatch"),
        (_openai('{"examples": [', finish="length"), "truncated", "max_tokens"),
        (_openai(None, refusal="I can't help with that."), "refused", "can't help"),
        (_anthropic([{"type": "tool_use", "name": "submit_examples", "input": {}}], stop="max_tokens"), "truncated", "max_tokens"),
        (_anthropic([{"type": "text", "text": "No."}], stop="refusal"), "refused", "No."),
        ("<html>502 Bad Gateway</html>", "invalid", "unreadable response body"),
        (json.dumps({"hello": 1}), "invalid", "neither an OpenAI"),
    ],
)
def test_unusable_answers_are_classified(body: str, status: str, error: str) -> None:
    answer = parse_answer(body, asked=5)
    assert answer.status == status
    assert answer.examples == []
    assert error in (answer.error or "")


def test_partly_valid_answer_keeps_the_good_examples_and_says_why_others_were_dropped() -> None:
    items = [{"messages": CONVERSATION, "tags": []}, {"messages": [{"role": "bot", "content": "x"}], "tags": []}]
    answer = parse_answer(_openai(json.dumps({"examples": items})), asked=5)
    assert answer.status == "ok" and len(answer.examples) == 1
    assert answer.error and answer.error.startswith("1 of 2 examples unusable")


def test_well_formed_but_untrainable_conversations_are_kept_for_the_checks_to_filter() -> None:
    """An empty answer or a missing assistant turn is a structural defect: stored as filtered with its
    reason (visible in stats), not dropped on the call."""
    items = [
        {"messages": [{"role": "user", "content": "hi"}], "tags": ["Billing", "not a tag!"]},
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}], "tags": []},
    ]
    answer = parse_answer(_openai(json.dumps({"examples": items})), asked=5)
    assert answer.status == "ok" and answer.error is None
    assert [len(c.messages) for c in answer.examples] == [1, 2]
    assert answer.examples[0].tags == ["billing"]  # spelling forgiven, a non-tag dropped


def test_json_from_text_reports_the_problem() -> None:
    with pytest.raises(ValueError, match="line 1"):
        json_from_text('{"a": }')


def test_answer_schema_is_strict_mode_compatible() -> None:
    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "object":
                assert node["additionalProperties"] is False
                assert set(node["required"]) == set(node["properties"])
            for value in node.values():
                walk(value)

    walk(ANSWER_SCHEMA)


# --- pricing ---------------------------------------------------------------------------------


def test_prices_match_dated_model_names_and_config_overrides() -> None:
    table = PriceTable(
        {"my-local": PriceSection(input_per_mtok=1, output_per_mtok=2), "gpt-4o-mini": PriceSection(input_per_mtok=0, output_per_mtok=0)}
    )
    assert table.price("claude-sonnet-4-5-20250929") == (3.0, 15.0)
    assert table.price("gpt-4o-2024-11-20") == (2.5, 10.0)
    assert table.price("gpt-4o-mini-2024-07-18") == (0, 0)  # overridden, and the longest prefix wins
    assert table.cost("my-local", 1_000_000, 500_000) == pytest.approx(2.0)
    assert table.price("llama3") is None and table.cost("llama3", 10, 10) == 0.0


# --- limits ----------------------------------------------------------------------------------


def test_retry_delay_honours_retry_after_with_a_cap_and_backs_off_exponentially() -> None:
    policy, rng = RetryPolicy(max_retries=5, deadline=600), random.Random(1)
    assert 3.0 <= policy.delay(1, 3.0, rng) <= 3.3
    assert RETRY_AFTER_CAP <= policy.delay(1, 200.0, rng) <= RETRY_AFTER_CAP + 1  # anthropic once said 200 s
    for attempt in range(1, 6):
        ceiling = 2 ** (attempt - 1)
        assert ceiling / 2 <= policy.delay(attempt, None, rng) <= ceiling


def test_retry_after_header_forms() -> None:
    assert retry_after_seconds({"retry-after-ms": "1500"}) == 1.5
    assert retry_after_seconds({"retry-after": "7"}) == 7.0
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # a date in the past
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None


def test_gate_pauses_everyone_only_when_429s_cluster() -> None:
    now = [100.0]
    gate = RateLimitGate(clock=lambda: now[0])
    for _ in range(8):  # 20% 429s: isolated, each retried on its own
        gate.record(rate_limited=False)
        gate.record(rate_limited=False)
        gate.record(rate_limited=False)
        gate.record(rate_limited=False)
        gate.record(rate_limited=True, retry_after=2.0)
    assert gate.paused_until == 0.0
    for _ in range(7):  # now most answers are 429s: the provider's limit is hit
        gate.record(rate_limited=True, retry_after=2.0)
    assert gate.paused_until == pytest.approx(102.0)
    assert gate.pauses == 1


async def test_send_with_retries_retries_retryable_errors_and_stops_at_fatal_ones() -> None:
    errors = [ProviderError("server", "boom", status=500), ProviderError("rate_limit", "slow down", retry_after=0.0, status=429)]

    async def flaky() -> str:
        if errors:
            raise errors.pop(0)
        return "body"

    policy = RetryPolicy(max_retries=3, deadline=30)
    assert await send_with_retries(flaky, policy=policy, gate=RateLimitGate(), rng=random.Random(0)) == ("body", 3)

    async def unauthorised() -> str:
        raise ProviderError("auth", "bad key sk-abcdef123456", status=401)

    with pytest.raises(FatalProviderError) as fatal:
        await send_with_retries(unauthorised, policy=policy, gate=RateLimitGate(), rng=random.Random(0))
    assert fatal.value.attempts == 1 and "sk-abcdef" not in str(fatal.value)

    async def always_down() -> str:
        raise ProviderError("rate_limit", "slow down", retry_after=0.0, status=429)

    with pytest.raises(CallFailed, match="after 3 attempts"):
        await send_with_retries(always_down, policy=RetryPolicy(max_retries=2, deadline=30), gate=RateLimitGate(), rng=random.Random(0))


async def test_send_with_retries_gives_up_when_waiting_would_pass_the_deadline() -> None:
    async def slow_down() -> str:
        raise ProviderError("rate_limit", "slow down", retry_after=3600.0, status=429)

    with pytest.raises(CallFailed, match="deadline") as failed:
        await send_with_retries(slow_down, policy=RetryPolicy(max_retries=5, deadline=5), gate=RateLimitGate(), rng=random.Random(0))
    assert failed.value.attempts == 1


async def test_budget_waits_for_in_flight_spend_and_refuses_what_can_never_fit() -> None:
    budget = Budget(limit=1.0, spent=0.2)
    assert await budget.reserve(0.5)
    waiting = asyncio.ensure_future(budget.reserve(0.5))  # 0.2 + 0.5 + 0.5 > 1: must wait
    await asyncio.sleep(0)
    assert not waiting.done()
    budget.settle(0.5, 0.1)  # the first request cost less than its worst case
    assert await waiting
    assert budget.spent == pytest.approx(0.3)
    budget.settle(0.5, 0.5)
    assert not await budget.reserve(0.3)  # 0.8 spent, nothing in flight: 0.3 can never fit
    assert await Budget(limit=None, spent=99).reserve(1e9)


# --- secrets ---------------------------------------------------------------------------------


def test_scrub_removes_configured_keys_and_key_like_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "local-key-0123456789")
    text = scrub_secrets("key local-key-0123456789; Incorrect API key provided: sk-proj-ab***yz. Authorization: Bearer abc123")
    assert "local-key-0123456789" not in text and "sk-proj" not in text and "abc123" not in text
    assert text.count("[redacted]") == 3


async def test_a_refused_connection_gets_two_quick_retries_not_the_backoff_of_a_429() -> None:
    attempts = 0
    heard: list[str] = []

    async def nobody_home() -> str:
        nonlocal attempts
        attempts += 1
        raise ProviderError("refused", "nothing accepts connections there")

    with pytest.raises(CallFailed) as failed:
        await send_with_retries(
            nobody_home,
            policy=RetryPolicy(max_retries=5, deadline=30),
            gate=RateLimitGate(),
            rng=random.Random(0),
            on_retry=lambda error: heard.append(error.cause),
        )
    assert attempts == failed.value.attempts == 3 and failed.value.kind == "refused"
    assert heard == ["connection refused", "connection refused"]
    assert [RetryPolicy(max_retries=5, deadline=30).delay(n, None, random.Random(0), refused=True) for n in (1, 2)] == [0.2, 0.5]


def test_a_404_from_an_openai_compatible_server_without_v1_suggests_it() -> None:
    from generator.config import GenerateSection
    from generator.generation.dispatch import _refusal_fix

    not_found = ProviderError("not_found", "404 page not found", status=404)
    ollama = GenerateSection(base_url="http://localhost:11434", model="llama3.2")
    assert "usually ends in /v1 (e.g. http://localhost:11434/v1)" in _refusal_fix(not_found, ollama)
    assert "/v1 (e.g." not in _refusal_fix(not_found, GenerateSection(base_url="http://localhost:11434/v1", model="llama3.2"))
    replay = GenerateSection(provider="replay", replay_file="r.jsonl")
    assert "--max-tokens" not in _refusal_fix(ProviderError("bad_request", "no response"), replay)
