"""Sign-in links and sessions in the store, the decision's client column, and serve's loopback warning (in-process, fast)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from generator.cli import app
from generator.project import Project
from generator.serve import sessions
from generator.store.db import open_store, read_session, write_session
from generator.store.models import utcnow
from generator.store.queue import record_decision
from tests.conftest import run_cli
from tests.test_decision_forgery import store_at_revision, write_unsigned_decision


def test_an_invite_signs_in_once_and_only_hashes_are_stored(engine: Engine) -> None:
    with write_session(engine) as session:
        invite = sessions.create_invite(session, reviewer="Ada")
    with write_session(engine) as session:
        spent = sessions.spend_invite(session, token=invite)
    assert spent is not None
    reviewer, cookie = spent
    assert reviewer == "Ada"
    with write_session(engine) as session:
        assert sessions.spend_invite(session, token=invite) is None  # spent
        assert sessions.spend_invite(session, token=cookie) is None  # a session is not an invite
    with read_session(engine) as session:
        assert sessions.reviewer_for_session(session, token=cookie) == "Ada"
        assert sessions.reviewer_for_session(session, token=invite) is None  # an invite is not a session
    with engine.connect() as connection:
        stored = " ".join(" ".join(map(str, row)) for row in connection.execute(text("SELECT * FROM web_session")))
    assert invite not in stored and cookie not in stored


def test_expired_invites_and_sessions_open_nothing(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    with write_session(engine) as session:
        invite = sessions.create_invite(session, reviewer="Ada")
        second = sessions.create_invite(session, reviewer="Ada")
    with write_session(engine) as session:
        spent = sessions.spend_invite(session, token=second)
    assert spent is not None
    later = utcnow() + sessions.INVITE_LIFETIME + timedelta(seconds=1)
    monkeypatch.setattr(sessions, "utcnow", lambda: later)
    with write_session(engine) as session:
        assert sessions.spend_invite(session, token=invite) is None
    with read_session(engine) as session:
        assert sessions.reviewer_for_session(session, token=spent[1]) is None


def test_revoking_a_reviewer_ends_their_links_and_sessions_only(engine: Engine) -> None:
    with write_session(engine) as session:
        ada_invite = sessions.create_invite(session, reviewer="Ada")
        bea_invite = sessions.create_invite(session, reviewer="Bea")
        ada_link = sessions.create_invite(session, reviewer="Ada")
    with write_session(engine) as session:
        ada = sessions.spend_invite(session, token=ada_invite)
        bea = sessions.spend_invite(session, token=bea_invite)
    assert ada is not None and bea is not None
    with write_session(engine) as session:
        assert sessions.revoke_reviewer(session, reviewer="Ada") == 3  # a spent invite, a session, an unused link
        assert sessions.spend_invite(session, token=ada_link) is None
    with read_session(engine) as session:
        assert sessions.reviewer_for_session(session, token=ada[1]) is None
        assert sessions.reviewer_for_session(session, token=bea[1]) == "Bea"
        hashes = [sessions.hash_token(ada[1]), sessions.hash_token(bea[1])]
        assert sessions.live_session_hashes(session, token_hashes=hashes) == {hashes[1]}


def test_decisions_record_their_client_and_older_ones_read_terminal(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = store_at_revision(url, "0003")
    # Raw SQL: the models describe today's candidate table, not the one this revision made.
    with old.begin() as connection:
        for i in range(3):
            connection.execute(
                text(
                    "INSERT INTO candidate (source_key, content_hash, messages, tags, seed_ids, status, flags, review_order, created_at) "
                    "VALUES (:key, :hash, :messages, '[]', '[]', 'pending', '[]', 0, :now)"
                ),
                {"key": str(i), "hash": f"h{i}", "messages": f'[{{"role": "user", "content": "q{i}"}}]', "now": utcnow()},
            )
    ids = [1, 2, 3]
    write_unsigned_decision(tmp_path / "old.db", candidate_id=ids[0])
    old.dispose()
    engine = open_store(url)
    with write_session(engine) as session:
        record_decision(session, candidate_id=ids[1], reviewer="ann", action="accept")
        record_decision(session, candidate_id=ids[2], reviewer="ann", action="reject", reasons=["wrong"], client="browser")
    with engine.connect() as connection:
        clients = connection.execute(text("SELECT id, client FROM decision ORDER BY id")).all()
    assert clients == [(1, "terminal"), (2, "terminal"), (3, "browser")]
    engine.dispose()


@pytest.mark.parametrize(
    ("host", "warned"), [("127.0.0.1", False), ("localhost", False), ("::1", False), ("0.0.0.0", True), ("review.example.org", True)]
)
def test_serving_beyond_loopback_warns_to_put_it_behind_tls(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch, host: str, warned: bool
) -> None:
    from review_tui.web.server import ReviewServer

    started: list[datetime] = []
    monkeypatch.setattr(ReviewServer, "serve", lambda self, debug=False: started.append(utcnow()))
    result = CliRunner().invoke(app, ["--project", str(project_dir), "serve", "--host", host])
    assert result.exit_code == 0, result.output
    assert len(started) == 1
    assert ("behind a reverse proxy with TLS" in result.output) is warned


def test_team_invite_prints_a_link_that_signs_in_once_and_revoke_ends_it(project_dir: Path) -> None:
    runner = CliRunner()
    invited = runner.invoke(app, ["--project", str(project_dir), "team", "invite", "Ada Lovelace", "--url", "https://review.example.org/"])
    assert invited.exit_code == 0, invited.output
    link = invited.output.strip()
    assert link.startswith("https://review.example.org/signin#")
    engine = open_store(Project.locate(project_dir).db_url)
    with write_session(engine) as session:
        spent = sessions.spend_invite(session, token=link.split("#", 1)[1])
    assert spent is not None and spent[0] == "Ada Lovelace"
    revoked = runner.invoke(app, ["--project", str(project_dir), "team", "revoke", "Ada Lovelace"])
    assert revoked.exit_code == 0, revoked.output
    with read_session(engine) as session:
        assert sessions.reviewer_for_session(session, token=spent[1]) is None
    engine.dispose()


@pytest.mark.parametrize(
    ("args", "message"),
    [(["team", "invite", "  "], "must not be blank"), (["team", "invite", "Ada", "--url", "review.example.org"], "not a web address")],
)
def test_team_invite_refuses_bad_input_with_a_fix(project_dir: Path, args: list[str], message: str) -> None:
    result = run_cli("--project", str(project_dir), *args, cwd=project_dir)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
