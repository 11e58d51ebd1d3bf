"""A corpus with planted defects: every defect is caught with the right reason, clean examples pass.

The corpus mixes a few hundred genuinely different clean conversations (built from varied question
and answer parts) with exact duplicates, one-word-changed near-duplicates, copies of the repository's
seeds, holdout leaks, structural defects and flag-worthy answers, in shuffled order.
"""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from generator.checks import CandidateChecker
from generator.checks.result import CheckResult
from generator.config import ChecksSection
from generator.examples import Message
from generator.similarity import jaccard, shingles, similarity_text
from tests.conftest import REPO

CLEAN_COUNT = 400


def load_examples(path: Path) -> list[tuple[str, int, list[Message]]]:
    """(id, line, messages) of each line of a JSONL file in the repository's seed format."""
    examples = []
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        record = json.loads(line)
        examples.append((record["id"], line_number, [Message(**m) for m in record["messages"]]))
    return examples


SEEDS = load_examples(REPO / "seeds" / "support.jsonl")
HOLDOUT = load_examples(REPO / "eval" / "holdout.jsonl")
SYSTEM = SEEDS[0][2][0].content

_OPENERS = [
    "Hi,",
    "Hello!",
    "Quick question:",
    "Hey there,",
    "Good morning,",
    "Sorry to bother you,",
    "One more thing:",
    "Hi team,",
    "Hello again,",
    "Question about my account:",
    "Afternoon!",
    "Hope you can help:",
]
_ASKS = [
    "how do I",
    "is it possible to",
    "what is the fastest way to",
    "can you explain how to",
    "where do I go to",
    "is there a way to",
    "what happens when I try to",
    "could you walk me through how to",
    "why can't I",
]
_CONTEXTS = [
    " before the end of the month",
    " for a client in Germany",
    " from my phone",
    " without losing my history",
    " while I'm still on the trial",
    " for last quarter",
    " for my bookkeeper",
    " after switching plans",
    " in euros instead of dollars",
    " for a one-off project",
    " when a client pays late",
    " for my two co-founders",
]
# (what the user wants to do, the step that answers it)
_TASKS = [
    ("export all my invoices to a spreadsheet", "Open Settings → Data → Export data and pick the invoices file"),
    ("change the prefix on invoice numbers", "Go to Settings → Invoices → Numbering and type the new prefix"),
    ("connect my Stripe account", "Choose Settings → Payments → Stripe → Connect and sign in to Stripe"),
    ("add a late fee automatically", "Turn on Settings → Invoices → Late fees and set the amount and grace period"),
    ("send a reminder by hand", "Open the invoice and press Send reminder at the top"),
    ("void an invoice I sent by mistake", "Open the invoice and use More → Void"),
    ("issue a credit note", "Open the sent invoice and pick More → Create credit note"),
    ("set up a recurring invoice", "Go to Invoices → Recurring → New recurring invoice"),
    ("upload a receipt photo", "Use Expenses → Receipts → Upload and choose the photo"),
    ("invite my accountant", "Open Settings → Team → Invite member and enter their email"),
    ("turn on two-factor sign-in", "Visit Settings → Security and enable the authenticator app option"),
    ("download last year's billing receipts", "Go to Settings → Billing → Billing history and save each PDF"),
    ("change my base currency", "Write to support, because the base currency locks once the first invoice goes out"),
    ("disconnect a bank account", "Go to Banking → Accounts, open the account menu and pick Disconnect"),
    ("import an old bank statement", "Choose Banking → Import statement and upload the CSV or OFX file"),
    ("switch from monthly to annual billing", "Pick the annual option under Settings → Billing → Plan"),
    ("cancel my subscription", "Go to Settings → Billing → Plan → Cancel subscription"),
    ("edit an invoice that is already sent", "Open it and edit away, as long as no payment has been recorded"),
    ("duplicate an invoice for a new client", "Open the invoice and select More → Duplicate"),
    ("set default payment terms", "Change them under Settings → Invoices → Defaults"),
    ("add my logo to invoices", "Upload it at Settings → Branding, a feature of the paid plans"),
    ("merge two duplicate clients", "Open one client and choose Merge with another client"),
    ("categorise a bank transaction", "Open Banking → Transactions and pick a category from the list"),
    ("connect Zapier", "Search for Ledgerly in Zapier and sign in with your Ledgerly account"),
    ("post invoice updates to Slack", "Connect Slack at Settings → Integrations → Slack and choose a channel"),
    ("change who owns the account", "Ask the current Owner to pick a new one under Settings → Team"),
    ("delete a draft invoice", "Open the draft and press Delete, which is permanent"),
    ("record a partial payment", "Open the invoice, press Record payment and enter the amount received"),
    ("apply a tax rate to one line", "Edit the line and choose the rate in its Tax column"),
    ("see which invoices are overdue", "Filter Invoices by the Overdue status"),
]
_DETAILS = [
    "The change applies to new invoices from then on",
    "Your existing records stay exactly as they were",
    "Only the Owner and Admins can see that page",
    "It usually takes less than a minute to finish",
    "Clients never need a login for any of this",
    "The same option exists in the mobile app",
    "Anything already imported is kept",
    "You can undo it later from the same screen",
    "Reports pick up the change the next day",
    "Paid plans include this at no extra cost",
    "Your client receives an email with a secure link",
    "Nothing is charged until you confirm",
    "Drafts are not affected because they have no number yet",
    "The history tab records who made the change",
    "Free accounts have a monthly limit on this",
    "Team members with the Member role cannot do this step",
    "Bank sync refreshes a few times each day",
    "Currency conversion uses the rate for the invoice date",
    "A copy lands in your own inbox as well",
    "The setting can be overridden on a single invoice",
    "Support can help if the button is greyed out",
    "The file arrives as a download within a few seconds",
    "Stripe deducts its own processing fee separately",
    "Archived clients still appear in past reports",
    "The audit log keeps a note of the action",
]
_CLOSINGS = [
    "Let me know if anything looks off.",
    "Happy to help with the next step.",
    "That should sort it out.",
    "Shout if you get stuck.",
    "Hope that helps!",
    "Glad to walk through it again if needed.",
    "You're all set after that.",
    "Tell me if you'd like more detail.",
    "Have a good day!",
    "Feel free to reply with a screenshot if it differs.",
    "That's all there is to it.",
    "Write back any time.",
    "Good luck with the month-end close!",
    "It only needs doing once.",
    "The help centre has a short video on it too.",
]
_LEADS = [
    "Sure.",
    "Good question.",
    "Of course.",
    "Yes, you can.",
    "Happy to explain.",
    "Certainly.",
    "No problem.",
    "Here's how.",
    "Easy enough.",
    "Great question.",
]


def clean_conversation(index: int, rng: random.Random) -> list[Message]:
    """The index-th clean conversation: no two share both their task and their detail sentence."""
    task, step = _TASKS[index % len(_TASKS)]
    detail = _DETAILS[(index // len(_TASKS) + index) % len(_DETAILS)]
    question = f"{rng.choice(_OPENERS)} {rng.choice(_ASKS)} {task}{rng.choice(_CONTEXTS)}?"
    answer = f"{rng.choice(_LEADS)} {step}. {detail}. {rng.choice(_CLOSINGS)}"
    return [Message(role="system", content=SYSTEM), Message(role="user", content=question), Message(role="assistant", content=answer)]


def change_one_word(messages: list[Message], rng: random.Random) -> list[Message]:
    """The same conversation with one word of the last answer replaced."""
    *head, last = messages
    words = last.content.split(" ")
    position = rng.randrange(1, len(words) - 1)
    words[position] = "meanwhile" if words[position] != "meanwhile" else "perhaps"
    return [*head, Message(role="assistant", content=" ".join(words))]


def shout(messages: list[Message]) -> list[Message]:
    """Differs only in case and whitespace: an exact duplicate after normalisation."""
    return [Message(role=m.role, content="  " + m.content.upper().replace(" ", "   ") + "\n") for m in messages]


def with_answer(messages: list[Message], answer: str) -> list[Message]:
    return [*messages[:-1], Message(role="assistant", content=answer)]


@dataclass
class Planted:
    key: str
    messages: list[Message]
    kind: str  # "clean", a filter reason, or "flag:<kind>"
    match: str | None = None  # expected filter_match
    after: str | None = None  # must come after this key (the original it duplicates)


@dataclass
class Corpus:
    items: list[Planted] = field(default_factory=list)

    def add(self, messages: list[Message], kind: str, *, match: str | None = None, after: str | None = None) -> str:
        key = f"k{len(self.items)}"
        self.items.append(Planted(key, messages, kind, match, after))
        return key

    def shuffled(self, rng: random.Random) -> list[Planted]:
        """Random order, except that a duplicate always comes after its original."""
        rank = {item.key: rng.random() for item in self.items if item.after is None}
        for item in self.items:
            if item.after is not None:
                rank[item.key] = rank[item.after] + rng.random() * (1 - rank[item.after])
        return sorted(self.items, key=lambda item: rank[item.key])


def build_corpus(seed: int = 7) -> Corpus:
    rng = random.Random(seed)
    corpus = Corpus()
    fresh = (clean_conversation(i, rng) for i in itertools.count(CLEAN_COUNT))  # unused combinations
    clean = [corpus.add(clean_conversation(i, rng), "clean") for i in range(CLEAN_COUNT)]
    originals = {item.key: item.messages for item in corpus.items}
    for key in rng.sample(clean, 15):
        corpus.add(shout(originals[key]), "exact duplicate", match=f"source:{key}", after=key)
    for key in rng.sample(clean, 15):
        corpus.add(change_one_word(originals[key], rng), "near-duplicate of candidate", match=f"source:{key}", after=key)
    for seed_id, _, messages in rng.sample(SEEDS, 8):
        corpus.add(shout(messages), "exact duplicate", match=f"seed:{seed_id}")
    for seed_id, _, messages in rng.sample(SEEDS, 8):
        corpus.add(change_one_word(messages, rng), "near-duplicate of seed", match=f"seed:{seed_id}")
    for seed_id, _, messages in rng.sample(SEEDS, 3):  # the same exchange under another system prompt
        corpus.add(
            [Message(role="system", content="You are a helpful assistant."), *messages[1:]],
            "near-duplicate of seed",
            match=f"seed:{seed_id}",
        )
    for _, line, messages in HOLDOUT[:8]:
        corpus.add(messages, "holdout leak", match=f"holdout:eval/holdout.jsonl:{line}")
    for _, line, messages in HOLDOUT[8:]:
        corpus.add(change_one_word(messages, rng), "holdout leak", match=f"holdout:eval/holdout.jsonl:{line}")
    for _ in range(4):
        messages = next(fresh)
        corpus.add(with_answer(messages, ""), "structural defect")
        corpus.add(with_answer(messages, "   \n"), "structural defect")
        corpus.add(messages[:2], "structural defect")  # no assistant turn
        corpus.add([messages[0], messages[2], messages[1]], "structural defect")  # broken role order
    for _ in range(6):
        messages = next(fresh)
        answer = messages[-1].content
        corpus.add(with_answer(messages, answer[: answer.rindex(" ", 0, len(answer) - 12)]), "flag:truncation")
    refusals = [
        "As an AI language model, I can't see your account, but here is the general idea.",
        "I'm sorry, but I can't help with that.",
        "I am just an AI, so I cannot log in for you.",
    ]
    for refusal in refusals:
        messages = next(fresh)
        corpus.add(with_answer(messages, f"{refusal} {messages[-1].content}"), "flag:refusal")
    for placeholder in [
        "See [insert link here] for the details.",
        "Lorem ipsum dolor sit amet.",
        "TODO: add the menu path.",
        "Dear {{customer_name}}, thanks for asking.",
    ]:
        messages = next(fresh)
        corpus.add(with_answer(messages, f"{messages[-1].content} {placeholder}"), "flag:placeholder")
    for personal in [
        "Call me on +1 415 555 0134 if that fails.",
        "Or email jane.doe@example.com directly.",
        "Use the key sk-proj-abcdefghijklmnopqrstuvwxyz123456 for the API.",
    ]:
        messages = next(fresh)
        corpus.add(with_answer(messages, f"{messages[-1].content} {personal}"), "flag:pii")
    messages = next(fresh)
    corpus.add(with_answer(messages, "## Steps\n\n" + messages[-1].content), "flag:format drift")
    messages = next(fresh)
    corpus.add(with_answer(messages, " ".join([messages[-1].content] * 40)), "flag:length")
    return corpus


def run_corpus(corpus: Corpus, checker: CandidateChecker, rng: random.Random) -> dict[str, tuple[Planted, CheckResult]]:
    items = corpus.shuffled(rng)
    results = checker.check_new([(item.key, item.messages) for item in items])
    return {item.key: (item, result) for item, result in zip(items, results, strict=True)}


def make_checker(**config: object) -> CandidateChecker:
    return CandidateChecker(
        config=ChecksSection(**config),
        seeds=[(seed_id, messages) for seed_id, _, messages in SEEDS],
        holdout=[(f"eval/holdout.jsonl:{line}", messages) for _, line, messages in HOLDOUT],
    )


def test_the_clean_examples_are_genuinely_different() -> None:
    """Guards the corpus itself: no clean pair is near the threshold, so filtering one is a false positive."""
    corpus = build_corpus()
    texts = [shingles(similarity_text(item.messages)) for item in corpus.items if item.kind == "clean"]
    references = [shingles(similarity_text(messages)) for _, _, messages in SEEDS + HOLDOUT]
    assert len(texts) == CLEAN_COUNT
    closest = max(jaccard(a, b) for a, b in itertools.combinations(texts, 2))
    closest_reference = max(jaccard(a, b) for a in texts for b in references)
    assert closest < 0.6 and closest_reference < 0.6, (closest, closest_reference)


def test_every_planted_defect_is_caught_with_the_right_reason_and_clean_examples_pass() -> None:
    corpus = build_corpus()
    outcomes = run_corpus(corpus, make_checker(), random.Random(3))
    missed: list[tuple[object, ...]] = []
    for planted, result in outcomes.values():
        if planted.kind == "clean" or planted.kind.startswith("flag:"):
            continue
        if (result.status, result.filter_reason) != ("filtered", planted.kind):
            missed.append((planted.key, planted.kind, result.status, result.filter_reason, result.filter_match))
        elif planted.match is not None and result.filter_match != planted.match:
            missed.append((planted.key, planted.kind, "matched", result.filter_match, "expected", planted.match))
    assert missed == []
    for planted, result in outcomes.values():
        if planted.kind.startswith("flag:"):
            assert result.status == "pending", (planted.key, result)
            assert planted.kind.removeprefix("flag:") in {flag.kind for flag in result.flags}, (planted.key, result.flags)
    clean = [result for planted, result in outcomes.values() if planted.kind == "clean"]
    filtered = [result for result in clean if result.status == "filtered"]
    flagged = [result for result in clean if result.flags]
    assert len(filtered) <= 0.01 * len(clean), [(r.filter_reason, r.filter_match) for r in filtered]
    assert len(flagged) <= 0.01 * len(clean), [r.flags for r in flagged]
    reasons = {planted.kind for planted, _ in outcomes.values()}
    assert {"exact duplicate", "near-duplicate of candidate", "near-duplicate of seed", "holdout leak", "structural defect"} <= reasons


def test_every_candidate_gets_its_nearest_seed() -> None:
    corpus = build_corpus()
    outcomes = run_corpus(corpus, make_checker(), random.Random(4))
    seed_ids = {seed_id for seed_id, _, _ in SEEDS}
    for planted, result in outcomes.values():
        assert result.nearest_seed_id in seed_ids, planted.key
        assert result.nearest_seed_similarity is not None and 0.0 <= result.nearest_seed_similarity <= 1.0
        if planted.kind == "near-duplicate of seed" or (planted.kind == "exact duplicate" and (planted.match or "").startswith("seed:")):
            assert f"seed:{result.nearest_seed_id}" == planted.match
            assert result.nearest_seed_similarity >= 0.7
    # Far below the threshold, the reviewer still gets a side-by-side seed: the most similar one.
    clean = [result for planted, result in outcomes.values() if planted.kind == "clean"]
    assert all((result.nearest_seed_similarity or 0.0) < 0.7 for result in clean)
    assert len({result.nearest_seed_id for result in clean}) > 10


def test_the_threshold_comes_from_config() -> None:
    """A stricter threshold lets the one-word-changed copies of short conversations through, a looser one filters more."""
    corpus = build_corpus()
    strict = run_corpus(corpus, make_checker(near_duplicate_threshold=0.97), random.Random(3))
    near = [result for planted, result in strict.values() if planted.kind == "near-duplicate of candidate"]
    assert not any(result.filter_reason == "near-duplicate of candidate" for result in near)
    loose = run_corpus(corpus, make_checker(near_duplicate_threshold=0.2), random.Random(3))
    clean_filtered = sum(result.status == "filtered" for planted, result in loose.values() if planted.kind == "clean")
    assert clean_filtered > 0.05 * CLEAN_COUNT
