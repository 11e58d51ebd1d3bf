"""The review store's tables: seeds, runs, LLM calls (the request journal), candidates, decisions, the store's identity."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import JSON, CheckConstraint, Column, Index, Integer, String, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

CANDIDATE_STATUSES: tuple[str, ...] = ("pending", "accepted", "rejected", "filtered")
ACCEPTING_ACTIONS: tuple[str, ...] = ("accept", "edit")


def utcnow() -> datetime:
    """Timezone-aware UTC, as SQLModel stores and returns it (so decision hashes recompute exactly)."""
    return datetime.now(UTC)


class Flag(BaseModel):
    """A reason for the reviewer to look closely (a check found something, but not proof of a defect)."""

    kind: str
    detail: str


class SeedRecord(SQLModel, table=True):
    """A verified seed example as last synced from the seed files."""

    __tablename__ = "seed"

    id: str = Field(primary_key=True)
    content_hash: str = Field(index=True)
    messages: list[dict[str, Any]] = Field(sa_type=JSON)
    tags: list[str] = Field(default_factory=list, sa_type=JSON)
    source: str  # seed file, relative to the project
    line: int
    verified_by: str = ""
    synced_at: datetime = Field(default_factory=utcnow)


class Run(SQLModel, table=True):
    """One generation job, identified by its configuration and sampling seed (so reruns resume it)."""

    __tablename__ = "run"

    id: str = Field(primary_key=True)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    provider: str
    model: str
    base_url: str | None = None
    template: str
    template_hash: str
    sampling_seed: int = 0
    target_count: int = 0
    config: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    status: str = "running"  # running | complete | stopped
    stop_reason: str | None = None


class RunLease(SQLModel, table=True):
    """Who is generating a run right now: held while the run lives, renewed, and taken over once it runs out.

    It lives in the store, not in a local lock file, so two machines sharing a store cannot both
    send (and pay) for one run.
    """

    __tablename__ = "run_lease"

    run_id: str = Field(primary_key=True)  # no foreign key: the lease is taken before the run is journaled
    holder: str  # "<host> <pid> [<pid>...]": the processes that must all be gone before the lease is taken over early
    expires_at: datetime


class LLMCall(SQLModel, table=True):
    """The request journal: written before a request is sent, completed the moment its answer arrives."""

    __tablename__ = "llm_call"
    __table_args__ = (UniqueConstraint("run_id", "request_index"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="run.id", index=True)
    request_index: int
    request_hash: str = Field(index=True)
    status: str = Field(default="pending", index=True)
    request: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)  # messages + parameters, never keys
    seed_ids: list[str] = Field(default_factory=list, sa_type=JSON)
    response_text: str | None = Field(default=None, sa_column=Column(Text))
    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    latency_ms: float | None = None
    attempts: int = 0
    from_cache: bool = False
    error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow)
    completed_at: datetime | None = None


class Candidate(SQLModel, table=True):
    """A model-made example waiting for (or past) human review."""

    __tablename__ = "candidate"
    __table_args__ = (
        # "next pending candidate" and status counts walk this index, never the table.
        Index("ix_candidate_queue", "status", "review_order", "id"),
        # A reviewer's held candidates (claim, resume after a restart) without walking the queue.
        # It carries the queue's sort order so SQLite's planner (no statistics) prefers it, and it
        # is partial because almost every row holds no lease.
        Index(
            "ix_candidate_lease",
            "lease_owner",
            "status",
            "review_order",
            "id",
            sqlite_where=text("lease_owner IS NOT NULL"),
            postgresql_where=text("lease_owner IS NOT NULL"),
        ),
        # Overlapped candidates only (a few percent): the adjudication queue and overlap marking.
        Index("ix_candidate_overlap", "status", "id", sqlite_where=text("reviews_needed > 1"), postgresql_where=text("reviews_needed > 1")),
        CheckConstraint("status IN ('pending','accepted','rejected','filtered')", name="ck_candidate_status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # Idempotency key chosen by the producer (e.g. "<call id>:<position>"): storing the same
    # parsed answer twice (a resumed run) inserts nothing.
    source_key: str = Field(unique=True)
    content_hash: str = Field(index=True)
    messages: list[dict[str, Any]] = Field(sa_type=JSON)
    tags: list[str] = Field(default_factory=list, sa_type=JSON)
    run_id: str | None = Field(default=None, foreign_key="run.id", index=True)
    call_id: int | None = Field(default=None, foreign_key="llm_call.id")
    seed_ids: list[str] = Field(default_factory=list, sa_type=JSON)
    template_hash: str | None = None
    model: str | None = None
    status: str = Field(default="pending")
    filter_reason: str | None = None
    filter_match: str | None = None  # the record that proves the filter, e.g. "seed:billing-001"
    flags: list[dict[str, str]] = Field(default_factory=list, sa_type=JSON)
    nearest_seed_id: str | None = None
    nearest_seed_similarity: float | None = None
    review_order: int = 0  # skipping moves a candidate behind the others
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    # 1, or [review] overlap_reviewers for the share chosen to overlap (generator.store.overlap):
    # it then stays pending until that many reviewers decided it, and their disagreement goes to adjudication.
    # No Python-side default on the column, so bulk inserts written for older schemas still insert.
    reviews_needed: int = Field(default=1, sa_column=Column(Integer, nullable=False, server_default="1"))
    # generate --variants K: the K answers to one question share a group id (the first answer's
    # source key) and carry their place in it (0..K-1); export pairs accepted with rejected members.
    variant_group: str | None = Field(default=None, index=True)
    variant_index: int | None = None
    created_at: datetime = Field(default_factory=utcnow)


class Decision(SQLModel, table=True):
    """A reviewer's verdict. Append-only (database triggers refuse UPDATE, DELETE and REPLACE), hash-chained, signed."""

    __tablename__ = "decision"
    __table_args__ = (
        CheckConstraint("action IN ('accept','reject','edit','undo')", name="ck_decision_action"),
        CheckConstraint("length(trim(reviewer)) > 0", name="ck_decision_reviewer"),
    )

    id: int = Field(primary_key=True)  # the chain's sequence number, assigned under the chain lock
    candidate_id: int = Field(foreign_key="candidate.id", index=True)
    reviewer: str = Field(index=True)
    action: str
    reasons: list[str] = Field(default_factory=list, sa_type=JSON)
    note: str | None = Field(default=None, sa_column=Column(Text))
    edited_messages: list[dict[str, Any]] | None = Field(default=None, sa_type=JSON)
    content_hash: str  # hash of the content this decision is about (the edited version for an edit)
    undoes_id: int | None = Field(default=None, foreign_key="decision.id", index=True)
    seconds: float | None = None
    # Where the decision was made: "terminal" (synthgate review) or "browser" (synthgate serve).
    # Not hashed (decisions made before the column existed keep their hashes); the append-only
    # triggers keep it from changing after the fact.
    client: str | None = None
    # "review"; "adjudication" (final word on an overlapped candidate its reviewers disagree on); or
    # "canary" (on a filtered candidate shown as if pending: never changes a candidate, never exported).
    # Not hashed, like `client`; the append-only triggers keep it from changing.
    kind: str = Field(default="review", sa_column=Column(String, nullable=False, server_default="review"))
    session_id: str | None = None  # one review app run: tells a reviewer's sittings apart in `stats`
    created_at: datetime = Field(default_factory=utcnow)
    prev_hash: str
    hash: str = Field(unique=True)
    # HMAC of `hash` under the store's key, which lives outside the store (generator.store.signing):
    # what tells a decision made by synthgate's review path from one written with raw SQL.
    # Not part of `hash` (it is computed from it). NULL only for legacy decisions made before signing.
    proof: str | None = None


class DecisionChain(SQLModel, table=True):
    """One row: the chain's head. Updating it first serialises decision writers on every database."""

    __tablename__ = "decision_chain"

    id: int = Field(default=1, primary_key=True)
    seq: int = 0
    head_hash: str = ""


class StoreMeta(SQLModel, table=True):
    """One row, fixed when the store is created: its id (which names its signing key) and where signing began."""

    __tablename__ = "store_meta"
    __table_args__ = (CheckConstraint("id = 1", name="ck_store_meta_one_row"),)

    id: int = Field(default=1, primary_key=True)
    store_id: str  # a random UUID
    # Decisions with a lower id were made before decisions were signed (a store older than signing).
    signed_from_decision: int


class WebSession(SQLModel, table=True):
    """A browser sign-in: a one-time invite link, or the session it was spent for. Only the token's hash is stored."""

    __tablename__ = "web_session"
    __table_args__ = (CheckConstraint("kind IN ('invite','session')", name="ck_web_session_kind"),)

    token_hash: str = Field(primary_key=True)  # sha256 of the random token the link or cookie carries
    reviewer: str = Field(index=True)
    kind: str  # invite | session
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    spent_at: datetime | None = None  # an invite, once used to sign in
    revoked_at: datetime | None = None  # `team revoke`: ends every invite and session of the reviewer
