"""A decision cannot be forged or replaced without `verify` noticing: the attacker has the store, not the key.

Every attack here is made the way someone with write access to the store file would make it: a raw
`sqlite3` connection, the published hash scheme, the chain head advanced by hand.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from generator.errors import UserError
from generator.export.manifest import manifest_path
from generator.export.selection import PROOFS_UNCHECKED
from generator.store.audit import decision_hash
from generator.store.db import MIGRATIONS_DIR, create_store_engine, open_store, read_session, write_session
from generator.store.models import Run
from generator.store.queue import record_decision
from generator.store.signing import key_path, store_identity
from tests.conftest import run_cli
from tests.test_export import _sync_project_seeds, add, chat, decide, entries, export
from tests.test_promote import promote
from tests.test_verify import problems, verify

pytestmark = pytest.mark.both_stores  # every store test runs on SQLite and on PostgreSQL

# --- what an attacker with the store (and not the key) can do -------------------------------------------


def write_unsigned_decision(
    database: str | Path, *, candidate_id: int, action: str = "accept", reviewer: str = "ann", reasons: list[str] | None = None
) -> int:
    """Append a decision with raw SQL, its hash recomputed with the published scheme and the chain head advanced.

    It is what synthgate's own review path did before decisions were signed, and what a forger
    does now; only the missing proof tells the two apart. Returns the decision's id.
    """
    raw = sqlite3.connect(database)
    seq, head = raw.execute("SELECT seq, head_hash FROM decision_chain WHERE id = 1").fetchone()
    (content_hash,) = raw.execute("SELECT content_hash FROM candidate WHERE id = ?", (candidate_id,)).fetchone()
    fields: dict[str, Any] = {
        "id": seq + 1,
        "candidate_id": candidate_id,
        "reviewer": reviewer,
        "action": action,
        "reasons": reasons or [],
        "note": None,
        "edited_messages": None,
        "content_hash": content_hash,
        "undoes_id": None,
        "seconds": 2.0,
        "created_at": datetime.now(UTC),
        "prev_hash": head,
    }
    digest = decision_hash(**fields)
    raw.execute(
        "INSERT INTO decision (id, candidate_id, reviewer, action, reasons, note, edited_messages, content_hash, undoes_id,"
        " seconds, created_at, prev_hash, hash) VALUES (?, ?, ?, ?, ?, NULL, 'null', ?, NULL, ?, ?, ?, ?)",
        (
            fields["id"],
            candidate_id,
            reviewer,
            action,
            json.dumps(fields["reasons"]),
            content_hash,
            fields["seconds"],
            fields["created_at"].strftime("%Y-%m-%d %H:%M:%S.%f"),
            head,
            digest,
        ),
    )
    raw.execute("UPDATE decision_chain SET seq = ?, head_hash = ? WHERE id = 1", (fields["id"], digest))
    status = "accepted" if action in ("accept", "edit") else "rejected"
    raw.execute("UPDATE candidate SET status = ? WHERE id = ?", (status, candidate_id))
    raw.commit()
    raw.close()
    return int(fields["id"])


def database_of(engine: Engine) -> str:
    """The SQLite file behind an engine."""
    assert engine.url.database is not None
    return engine.url.database


def store_at_revision(url: str, revision: str) -> Engine:
    """A store migrated only as far as `revision`, as an older synthgate left it."""
    engine = create_store_engine(url)
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    return engine


def the_key_file(engine: Engine) -> Path:
    with read_session(engine) as session:
        return key_path(store_identity(session).store_id)


def export_without_the_key(engine: Engine, out: Path, monkeypatch: pytest.MonkeyPatch, elsewhere: Path) -> None:
    """Export on a machine that does not hold the store's key: the gate cannot check proofs there, verify must."""
    with monkeypatch.context() as patch:
        patch.setenv("SYNTHGATE_HOME", str(elsewhere))
        report = export(engine, out)
    assert report.notes == [PROOFS_UNCHECKED]


def rewrite_manifest(out: Path, change: Callable[[dict[str, Any]], None]) -> None:
    manifest = json.loads(manifest_path(out).read_text())
    change(manifest)
    manifest_path(out).write_text(json.dumps(manifest))


# --- REPLACE and UPSERT are refused like UPDATE and DELETE ----------------------------------------------


_COLUMNS = (
    "id, candidate_id, reviewer, action, reasons, note, edited_messages, content_hash, undoes_id, seconds, created_at, prev_hash, hash"
)
_AS_ACCEPT = "candidate_id, reviewer, 'accept', '[]', note, edited_messages, content_hash, undoes_id, seconds, created_at, prev_hash, hash"


@pytest.mark.sqlite_only  # a raw sqlite3 client; PostgreSQL's guards: test_postgresql_guards_refuse_even_a_superuser
@pytest.mark.parametrize(
    "statement",
    [
        f"INSERT OR REPLACE INTO decision ({_COLUMNS}) SELECT id, {_AS_ACCEPT} FROM decision WHERE id = 1",
        f"REPLACE INTO decision ({_COLUMNS}) SELECT 7, {_AS_ACCEPT} FROM decision WHERE id = 1",  # collides on the hash only
        f"INSERT INTO decision ({_COLUMNS}) SELECT {_COLUMNS} FROM decision WHERE id = 1 ON CONFLICT(id) DO UPDATE SET action = 'accept'",
    ],
    ids=["insert-or-replace", "replace-on-hash", "upsert"],
)
def test_a_decision_cannot_be_replaced_even_by_a_raw_sqlite_client(engine: Engine, statement: str) -> None:
    (candidate,) = add(engine, chat(0))
    decide(engine, candidate, "reject")
    raw = sqlite3.connect(database_of(engine))
    with pytest.raises(sqlite3.IntegrityError, match="decisions are append-only: REPLACE refused"):
        raw.execute(statement)
    assert raw.execute("SELECT id, action FROM decision").fetchall() == [(1, "reject")]
    raw.close()


@pytest.mark.sqlite_only  # a raw sqlite3 client; PostgreSQL's guards: test_postgresql_guards_refuse_even_a_superuser
@pytest.mark.parametrize(
    "statement",
    [
        "INSERT OR REPLACE INTO decision_chain (id, seq, head_hash) VALUES (1, 0, '')",
        "DELETE FROM decision_chain",
        "UPDATE decision_chain SET seq = 0, head_hash = ''",
        "INSERT OR REPLACE INTO store_meta (id, store_id, signed_from_decision) VALUES (1, 'x', 99)",
        "UPDATE store_meta SET signed_from_decision = 99",
        "DELETE FROM store_meta",
    ],
)
def test_the_chain_head_and_the_store_identity_refuse_to_be_replaced_or_rewound(engine: Engine, statement: str) -> None:
    (candidate,) = add(engine, chat(0))
    decide(engine, candidate, "accept")
    raw = sqlite3.connect(database_of(engine))
    before = raw.execute("SELECT * FROM decision_chain").fetchall(), raw.execute("SELECT * FROM store_meta").fetchall()
    with pytest.raises(sqlite3.IntegrityError, match="refused"):
        raw.execute(statement)
    assert (raw.execute("SELECT * FROM decision_chain").fetchall(), raw.execute("SELECT * FROM store_meta").fetchall()) == before
    raw.close()


# --- forged decisions fail verify, naming the line ------------------------------------------------------
@pytest.mark.sqlite_only  # a raw sqlite3 client; PostgreSQL's guards: test_postgresql_guards_refuse_even_a_superuser
def test_a_decision_inserted_with_raw_sql_fails_verify_naming_its_line(
    engine: Engine, tmp_path: Path, project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    honest, rejected = add(engine, chat(0), chat(1))
    decide(engine, honest, "accept")
    decide(engine, rejected, "reject", reviewer="bob")
    forged = write_unsigned_decision(database_of(engine), candidate_id=rejected, reviewer="ann")  # undo bob's rejection, as ann
    out = tmp_path / "train.jsonl"
    # Without the key the gate cannot tell the forged accept (valid hash, consistent chain) from an honest one.
    export_without_the_key(engine, out, monkeypatch, tmp_path / "another-machine")
    message = f"decision {forged} carries no valid proof: it was not written by synthgate's review path"
    found = problems(verify(engine, out))
    assert ("train.jsonl", 2, message) in found
    assert ("train.jsonl.manifest.json", None, f"decision history broken: decision {forged}: {message.split(' ', 2)[2]}") in found
    assert all(line != 1 for _, line, _ in found)  # the honest line still holds
    result = run_cli("--db", str(engine.url), "verify", str(out), cwd=project_dir)
    assert result.returncode == 1
    assert f"FAIL train.jsonl:2: {message}" in result.stdout


@pytest.mark.sqlite_only  # a raw sqlite3 client; PostgreSQL's guards: test_postgresql_guards_refuse_even_a_superuser
def test_a_replaced_decision_fails_verify_even_with_the_guards_dropped(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """INSERT OR REPLACE after dropping the trigger: the hash recomputes, but the proof was made for the old hash."""
    kept, replaced = add(engine, chat(0), chat(1))
    decide(engine, kept, "accept")
    decide(engine, replaced, "reject", reviewer="bob")
    raw = sqlite3.connect(database_of(engine))
    raw.execute("DROP TRIGGER decision_no_replace")
    row = dict(
        zip(
            ("created_at", "prev_hash", "content_hash", "proof"),
            raw.execute("SELECT created_at, prev_hash, content_hash, proof FROM decision WHERE id = 2").fetchone(),
            strict=True,
        )
    )
    with read_session(engine) as session:
        from generator.store.models import Decision

        created_at = session.get(Decision, 2).created_at  # type: ignore[union-attr]
    fields = {
        "id": 2,
        "candidate_id": replaced,
        "reviewer": "bob",
        "action": "accept",
        "reasons": [],
        "note": None,
        "edited_messages": None,
        "content_hash": row["content_hash"],
        "undoes_id": None,
        "seconds": 3.0,
        "created_at": created_at,
        "prev_hash": row["prev_hash"],
    }
    digest = decision_hash(**fields)
    raw.execute(
        "INSERT OR REPLACE INTO decision (id, candidate_id, reviewer, action, reasons, edited_messages, content_hash, seconds, created_at, prev_hash, hash, proof)"
        " VALUES (2, ?, 'bob', 'accept', '[]', 'null', ?, 3.0, ?, ?, ?, ?)",
        (replaced, row["content_hash"], row["created_at"], row["prev_hash"], digest, row["proof"]),
    )
    raw.execute("UPDATE decision_chain SET head_hash = ?", (digest,))
    raw.execute("UPDATE candidate SET status = 'accepted' WHERE id = ?", (replaced,))
    raw.commit()
    raw.close()
    out = tmp_path / "out.jsonl"
    export(engine, out)
    assert [e["candidate_id"] for e in entries(out)] == [kept]  # the gate refuses it where the key is
    export_without_the_key(engine, out, monkeypatch, tmp_path / "another-machine")
    assert ("out.jsonl", 2, "decision 2 carries no valid proof: it was not written by synthgate's review path") in problems(
        verify(engine, out)
    )


def test_decisions_signed_with_another_key_fail(engine: Engine, tmp_path: Path) -> None:
    for candidate in add(engine, chat(0), chat(1)):
        decide(engine, candidate, "accept")
    out = tmp_path / "out.jsonl"
    export(engine, out)
    assert verify(engine, out).ok
    key_file = the_key_file(engine)
    body = json.loads(key_file.read_text())
    body["key"] = secrets.token_bytes(32).hex()
    key_file.write_text(json.dumps(body))
    found = problems(verify(engine, out))
    assert [(file, line) for file, line, _ in found if line] == [("out.jsonl", 1), ("out.jsonl", 2)]
    assert all("carries no valid proof" in problem for _, _, problem in found)


@pytest.mark.sqlite_only  # a raw sqlite3 client
def test_raising_the_signing_boundary_in_the_store_does_not_turn_forgeries_into_legacy(
    engine: Engine, tmp_path: Path, project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    honest, target = add(engine, chat(0), chat(1))
    decide(engine, honest, "accept")
    forged = write_unsigned_decision(database_of(engine), candidate_id=target)
    raw = sqlite3.connect(database_of(engine))
    raw.execute("DROP TRIGGER store_meta_no_update")
    raw.execute("UPDATE store_meta SET signed_from_decision = 100")
    raw.commit()
    raw.close()
    out = tmp_path / "out.jsonl"
    export(engine, out)  # the gate takes where signing began from the key file, not from the store
    assert [e["candidate_id"] for e in entries(out)] == [honest]
    assert promote(engine, project_dir).added == 1
    export_without_the_key(engine, out, monkeypatch, tmp_path / "another-machine")
    report = verify(engine, out)
    found = problems(report)
    assert ("out.jsonl", 2, f"decision {forged} carries no valid proof: it was not written by synthgate's review path") in found
    assert any("signed from decision 100 on, but its key was made when signing began at decision 1" in p for _, _, p in found)
    assert report.legacy_count == 0


# --- the export gate and promote refuse forged decisions where the key is ----------------------------------


FORGED_REASON = "left out by the gate: the decision carries no valid proof: it was not written by synthgate's review path"


@pytest.mark.sqlite_only  # a raw sqlite3 client
def test_a_decision_inserted_with_raw_sql_is_neither_exported_nor_promoted(engine: Engine, tmp_path: Path, project_dir: Path) -> None:
    honest, rejected = add(engine, chat(0), chat(1))
    decide(engine, honest, "accept")
    decide(engine, rejected, "reject", reviewer="bob")
    write_unsigned_decision(database_of(engine), candidate_id=rejected, reviewer="ann")
    out = tmp_path / "train.jsonl"
    report = export(engine, out)
    assert [e["candidate_id"] for e in entries(out)] == [honest]
    assert report.skipped.counts[FORGED_REASON] == 1 and report.skipped.listed[FORGED_REASON] == [f"candidate:{rejected}"]
    assert report.notes == []  # the key is here: the proofs were checked
    in_workers = export(engine, tmp_path / "workers.jsonl", workers=2)  # spawned workers read the key themselves
    assert [e["candidate_id"] for e in entries(tmp_path / "workers.jsonl")] == [honest]
    assert in_workers.skipped.counts[FORGED_REASON] == 1
    assert verify(engine, out).ok is False  # the chain still holds the forgery: verify says so
    promoted = promote(engine, project_dir)
    assert promoted.added == 1 and [(r.candidate_id, r.reason) for r in promoted.refused] == [
        (rejected, FORGED_REASON.removeprefix("left out by the gate: "))
    ]
    assert promoted.notes == []

    result = run_cli("--db", str(engine.url), "export", "-o", str(tmp_path / "cli.jsonl"), cwd=project_dir)
    assert result.returncode == 0, result.stderr
    assert f"skipped 1: {FORGED_REASON} (e.g. candidate:{rejected})" in " ".join(result.stderr.split())
    assert "note:" not in result.stderr


def test_without_the_key_export_and_promote_still_work_and_say_once_that_proofs_were_not_checked(
    engine: Engine, tmp_path: Path, project_dir: Path
) -> None:
    first, second = add(engine, chat(0), chat(1))
    decide(engine, first, "accept")
    decide(engine, second, "accept")
    elsewhere = {"SYNTHGATE_HOME": str(tmp_path / "another-machine")}
    out = tmp_path / "out.jsonl"
    result = run_cli("--db", str(engine.url), "export", "-o", str(out), cwd=project_dir, env=elsewhere)
    assert result.returncode == 0, result.stderr
    assert len(entries(out)) == 2
    said = " ".join(result.stderr.split())
    assert said.count("note: decision proofs were not checked here") == 1 and "run `synthgate verify`" in said
    result = run_cli("--db", str(engine.url), "promote", cwd=project_dir, env=elsewhere)
    assert result.returncode == 0, result.stderr
    assert " ".join(result.stderr.split()).count("note: decision proofs were not checked here") == 1
    assert verify(engine, out).ok  # where the key is


# --- the key: outside the store, created once, needed to verify -------------------------------------------


def test_the_key_lives_outside_the_store_created_once_private_and_never_printed(engine: Engine, tmp_path: Path, project_dir: Path) -> None:
    first, second = add(engine, chat(0), chat(1))
    decide(engine, first, "accept")
    key_file = the_key_file(engine)
    assert key_file.parent == tmp_path / "synthgate-home" / "keys"  # SYNTHGATE_HOME, set by conftest
    assert key_file.stat().st_mode & 0o777 == 0o600
    secret = json.loads(key_file.read_text())["key"]
    if engine.dialect.name == "sqlite":
        assert secret.encode() not in Path(database_of(engine)).read_bytes()
    else:  # on PostgreSQL the key enters the store only when the owner adds a reviewer, for the signing trigger alone
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM decision_signing_key")).scalar() == 0
    decide(engine, second, "accept")
    assert json.loads(key_file.read_text())["key"] == secret  # never replaced
    out = tmp_path / "out.jsonl"
    export(engine, out)
    result = run_cli("--db", str(engine.url), "verify", str(out), cwd=project_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert secret not in result.stdout + result.stderr


def test_verify_without_the_key_exits_2_with_one_line_naming_the_key_and_the_fix(engine: Engine, tmp_path: Path, project_dir: Path) -> None:
    (candidate,) = add(engine, chat(0))
    decide(engine, candidate, "accept")
    out = tmp_path / "out.jsonl"
    export(engine, out)
    key_file = the_key_file(engine)
    elsewhere = tmp_path / "another-machine"
    result = run_cli("--db", str(engine.url), "verify", str(out), cwd=project_dir, env={"SYNTHGATE_HOME": str(elsewhere)})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(elsewhere / "keys" / key_file.name) in lines[0]
    assert "copy this file from the machine where the store was created" in lines[0] and "SYNTHGATE_HOME" in lines[0]
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_a_machine_without_the_key_refuses_to_sign_rather_than_make_a_second_key(engine: Engine) -> None:
    first, second = add(engine, chat(0), chat(1))
    decide(engine, first, "accept")
    key_file = the_key_file(engine)
    key_file.rename(key_file.with_suffix(".away"))
    with pytest.raises(UserError, match="not on this machine"):
        decide(engine, second, "accept")
    assert not key_file.exists()
    with engine.connect() as connection:
        assert connection.execute(text("SELECT seq FROM decision_chain")).scalar() == 1
        assert connection.execute(text("SELECT status FROM candidate WHERE id = :id"), {"id": second}).scalar() == "pending"


# --- every manifest field verify relies on is proved against the store ------------------------------------


@pytest.fixture
def exported_run(engine: Engine, tmp_path: Path) -> Path:
    """Two candidates of run-1 exported: the first accepted by ann, the second edited by bob."""
    with write_session(engine) as session:
        session.add(
            Run(
                id="run-1",
                provider="openai",
                model="gpt-4o-mini",
                template="prompts/generate.jinja",
                template_hash="t1",
                config={"count": 5},
            )
        )
    accepted, edited = add(engine, chat(0), chat(1), run_id="run-1")
    decide(engine, accepted, "accept")
    decide(engine, edited, "edit", reviewer="bob", messages=chat(1, answer="a corrected answer"))
    out = tmp_path / "out.jsonl"
    export(engine, out)
    assert verify(engine, out).ok
    return out


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(manifest: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = manifest
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[int(last) if last.isdigit() else last] = value

    return change


MANIFEST = "out.jsonl.manifest.json"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            _set("lines.0.reviewer", "mallory"),
            ("out.jsonl", 1, "the manifest's reviewer for this line is 'mallory', but decision 1 says 'ann'"),
        ),
        (
            _set("lines.1.decided_at", "2020-01-01T00:00:00+00:00"),
            ("out.jsonl", 2, "the manifest's decided_at for this line is '2020-01-01T00:00:00+00:00'"),
        ),
        (_set("lines.1.action", "accept"), ("out.jsonl", 2, "the manifest's action for this line is 'accept', but decision 2 says 'edit'")),
        (_set("counts.accepted", 2), (MANIFEST, None, "manifest field counts.accepted is 2, but its entries hold accepts for 1")),
        (_set("counts.edited", 0), (MANIFEST, None, "manifest field counts.edited is 0, but its entries hold edits for 1")),
        (_set("counts.seeds", 5), (MANIFEST, None, "manifest field counts.seeds is 5, but its entries hold seeds for 0")),
        (_set("counts.skipped", 3), (MANIFEST, None, "manifest field counts.skipped is 3, but its skipped reasons add up to 0")),
        (_set("counts.lines", 9), (MANIFEST, None, "manifest field counts.lines is 9, but its entries list 2")),
        (_set("runs.0.model", "gpt-5"), (MANIFEST, None, "manifest field runs[0].model is 'gpt-5', but run run-1 has 'gpt-4o-mini'")),
        (
            _set("runs.0.config_sha256", "0" * 64),
            (MANIFEST, None, f"manifest field runs[0].config_sha256 is '{'0' * 64}', but run run-1 has"),
        ),
        (_set("runs.0.template_hash", "t2"), (MANIFEST, None, "manifest field runs[0].template_hash is 't2', but run run-1 has 't1'")),
        (_set("runs", []), (MANIFEST, None, "out.jsonl:1 comes from run run-1, which the manifest's runs do not list")),
        (
            _set("decision_chain.head_hash", "f" * 64),
            (MANIFEST, None, "manifest field decision_chain.head_hash is not decision 2's hash in the store"),
        ),
        (
            _set("decision_chain.seq", 1),
            ("out.jsonl", 2, "decision 2 was made after this export (the manifest's chain head is decision 1)"),
        ),
        (_set("decision_chain.seq", 0), (MANIFEST, None, "manifest field decision_chain.head_hash is '")),  # once skipped the check
    ],
    ids=lambda value: value[2][:40] if isinstance(value, tuple) else None,
)
def test_a_manifest_field_changed_after_export_fails_naming_it(
    engine: Engine, exported_run: Path, change: Callable[[dict[str, Any]], None], expected: tuple[str, int | None, str]
) -> None:
    rewrite_manifest(exported_run, change)
    found = problems(verify(engine, exported_run))
    file, line, message = expected
    assert any((f, n) == (file, line) and p.startswith(message) for f, n, p in found), found


def test_a_line_exported_twice_fails_even_with_a_matching_manifest_entry(engine: Engine, tmp_path: Path) -> None:
    for candidate in add(engine, chat(0), chat(1), chat(2)):
        decide(engine, candidate, "accept")
    out = tmp_path / "out.jsonl"
    export(engine, out)
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join([*lines, lines[1]]))

    def duplicate(manifest: dict[str, Any]) -> None:
        manifest["lines"].append({**manifest["lines"][1], "line": 4})
        manifest["files"][0].update(lines=4, sha256=hashlib.sha256(out.read_bytes()).hexdigest())
        manifest["counts"].update(lines=4, accepted=4)

    rewrite_manifest(out, duplicate)
    assert problems(verify(engine, out)) == [("out.jsonl", 4, "candidate 2 is exported twice (lines 2 and 4)")]


def test_a_seed_exported_twice_fails(engine: Engine, tmp_path: Path, project_dir: Path) -> None:
    seeds = _sync_project_seeds(engine, project_dir)
    out = tmp_path / "s.jsonl"
    export(engine, out, include_seeds=True)
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join([lines[0], *lines]))

    def duplicate(manifest: dict[str, Any]) -> None:
        entries = manifest["lines"]
        manifest["lines"] = [entries[0]] + [{**entry, "line": entry["line"] + 1} for entry in entries]
        manifest["files"][0].update(lines=len(lines) + 1, sha256=hashlib.sha256(out.read_bytes()).hexdigest())
        manifest["counts"].update(lines=len(lines) + 1, seeds=len(lines) + 1)

    rewrite_manifest(out, duplicate)
    first = sorted(s.id for s in seeds)[0]
    assert problems(verify(engine, out)) == [("s.jsonl", 2, f"seed {first} is exported twice (lines 1 and 2)")]


def test_an_export_checked_against_another_store_says_so(engine: Engine, exported_run: Path) -> None:
    manifest = json.loads(manifest_path(exported_run).read_text())
    with read_session(engine) as session:
        assert manifest["store_id"] == store_identity(session).store_id  # the exporter names its store
    manifest["store_id"] = "00000000-0000-4000-8000-000000000000"
    manifest_path(exported_run).write_text(json.dumps(manifest))
    # A user error (exit 2) naming the export's store, not a tamper failure on every line.
    with pytest.raises(UserError, match=r"this export was made from store 00000000-0000-4000-8000-000000000000 at (sqlite:///|postgresql)"):
        verify(engine, exported_run)


# --- decisions older than signing are legacy, not forged ---------------------------------------------------


def test_decisions_made_before_signing_are_reported_as_legacy_and_later_ones_are_signed(
    tmp_path: Path, project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'old' / 'queue.db'}"
    old = store_at_revision(url, "0001")
    legacy_accept, legacy_reject, fresh = add(old, chat(0), chat(1), chat(2))
    write_unsigned_decision(tmp_path / "old" / "queue.db", candidate_id=legacy_accept)
    write_unsigned_decision(tmp_path / "old" / "queue.db", candidate_id=legacy_reject, action="reject", reasons=["off-topic"])
    old.dispose()

    from generator.store.db import open_store

    engine = open_store(url)  # migrated: the two decisions become legacy
    with read_session(engine) as session:
        assert store_identity(session).signed_from_decision == 3
    with write_session(engine) as session:
        record_decision(session, candidate_id=fresh, reviewer="ann", action="accept")
    out = tmp_path / "out.jsonl"
    export(engine, out)
    report = verify(engine, out)
    assert report.ok, report.failures
    assert (report.legacy_count, report.legacy_lines) == (1, ["out.jsonl:1"])
    assert report.notes == [
        "1 line(s) rest on legacy decisions, made before decisions were signed (out.jsonl:1): the hash chain proves them, but no key does"
    ]
    result = run_cli("--db", str(engine.url), "verify", str(out), cwd=project_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    said = " ".join(result.stdout.split())
    assert said.index("note: 1 line(s) rest on legacy decisions") < said.index("OK: 2 line(s) verified")

    # After the migration, an unsigned decision is a forgery, not a legacy one.
    (late,) = add(engine, chat(3))
    forged = write_unsigned_decision(tmp_path / "old" / "queue.db", candidate_id=late)
    export(engine, out)
    assert [e["candidate_id"] for e in entries(out)] == [legacy_accept, fresh]  # legacy passes, the forgery does not
    export_without_the_key(engine, out, monkeypatch, tmp_path / "another-machine")
    assert ("out.jsonl", 3, f"decision {forged} carries no valid proof: it was not written by synthgate's review path") in problems(
        verify(engine, out)
    )
    engine.dispose()


def test_a_store_holding_only_legacy_decisions_verifies_without_a_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old' / 'queue.db'}"
    old = store_at_revision(url, "0001")
    (candidate,) = add(old, chat(0))
    write_unsigned_decision(tmp_path / "old" / "queue.db", candidate_id=candidate)
    old.dispose()

    from generator.store.db import open_store

    engine = open_store(url)
    out = tmp_path / "out.jsonl"
    export(engine, out)
    report = verify(engine, out)
    assert report.ok and report.legacy_count == 1
    assert not (tmp_path / "synthgate-home" / "keys").exists()  # verify reads; it never makes a key
    engine.dispose()


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO decision (id, candidate_id, reviewer, action, reasons, content_hash, created_at, prev_hash, hash, kind) "
        "SELECT id, candidate_id, 'mallory', action, reasons, content_hash, created_at, prev_hash, hash, kind FROM decision "
        "ON CONFLICT (id) DO UPDATE SET reviewer = 'mallory'",
        "UPDATE decision SET reviewer = 'mallory'",
        "DELETE FROM decision",
        "TRUNCATE decision CASCADE",
        "INSERT INTO decision_chain (id, seq, head_hash) VALUES (2, 0, '')",
        "DELETE FROM decision_chain",
        "UPDATE decision_chain SET seq = 0, head_hash = ''",
        "TRUNCATE decision_chain",
        "UPDATE store_meta SET signed_from_decision = 99",
        "INSERT INTO store_meta (id, store_id, signed_from_decision) VALUES (1, 'x', 99) ON CONFLICT DO NOTHING",
        "DELETE FROM store_meta",
    ],
)
def test_postgresql_guards_refuse_even_a_superuser(pg_store_url: str, statement: str) -> None:
    """The PostgreSQL triggers of migrations 0001 and 0003, run as the (superuser) owner: only switching triggers off passes them."""
    engine = open_store(pg_store_url)
    ids = add(engine, chat(1))
    decide(engine, ids[0], "accept")
    with pytest.raises(DBAPIError, match=r"append-only|refused|one row|only moves forward|fixed"), engine.begin() as connection:
        connection.exec_driver_sql(statement)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT reviewer, seq FROM decision, decision_chain")).all() == [("ann", 1)]
    engine.dispose()
