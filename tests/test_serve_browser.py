"""`synthgate serve` end to end in headless Chromium: sign-in, reviewing, sessions refused, untrusted text (run alone: pytest -m browser)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import col, select
from typer.testing import CliRunner

from generator.cli import app
from generator.project import Project
from generator.store.db import open_store, read_session
from generator.store.intake import NewCandidate
from generator.store.models import Candidate, Decision
from tests.conftest import REPO
from tests.review_snapshot_app import build_review_store, conversation, fixture_candidates
from tests.serve_harness import (
    CHROMIUM,
    child_processes,
    free_port,
    launch_chromium,
    new_page,
    press,
    screen_text,
    sign_in,
    start_server,
    wait_for_candidate,
    wait_for_screen,
)

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (make's install step adds it as root)"),
]
ARTIFACTS = REPO / ".synthgate" / "artifacts"  # git-ignored: screenshots of each run


class Served:
    """A project, its store and `synthgate serve` running on it."""

    def __init__(self, project_dir: Path, engine: Engine, server: subprocess.Popen[bytes], port: int) -> None:
        self.project_dir = project_dir
        self.engine = engine
        self.server = server
        self.url = f"http://127.0.0.1:{port}"

    def invite(self, reviewer: str) -> str:
        """The sign-in link `synthgate team invite` prints, as an admin would send it."""
        result = CliRunner().invoke(app, ["--project", str(self.project_dir), "team", "invite", reviewer, "--url", self.url])
        assert result.exit_code == 0, result.output
        link: str = result.output.strip()
        return link

    def decisions(self) -> list[Decision]:
        with read_session(self.engine) as session:
            return list(session.exec(select(Decision).order_by(col(Decision.id))).all())

    def apps(self) -> list[int]:
        return child_processes(self.server.pid)

    def sign_in_request(self, token: str) -> int:
        """POST a token to /signin without a browser; the HTTP status."""
        return status_of(urllib.request.Request(f"{self.url}/signin", data=urllib.parse.urlencode({"token": token}).encode()))


def status_of(request: urllib.request.Request | str) -> int:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=30) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code


def wait_until(condition: Callable[[], object], *, timeout: float = 30, what: str) -> None:
    """Poll `condition` (another process's effect: nothing to wait on but the store or /proc) until it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium for the whole file; each test opens its own contexts (cookies apart)."""
    with sync_api.sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@contextlib.contextmanager
def serve(project_dir: Path, tmp_path: Path, candidates: list[NewCandidate] | None = None) -> Iterator[Served]:
    engine = open_store(Project.locate(project_dir).db_url)
    build_review_store(engine, candidates)
    port = free_port()
    server = start_server(project_dir, port=port, log_file=tmp_path / "serve.log")
    try:
        yield Served(project_dir, engine, server, port)
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and any app process still running
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        engine.dispose()


@pytest.fixture
def served(project_dir: Path, tmp_path: Path) -> Iterator[Served]:
    """The review fixture's five candidates, served."""
    with serve(project_dir, tmp_path) as running:
        yield running


def test_sign_in_accept_reject_undo_are_recorded_under_the_invited_name_from_the_browser(served: Served, browser: Any) -> None:
    page = new_page(browser)
    sign_in(page, served.invite("Ada Lovelace"))
    first = wait_for_candidate(page)
    wait_for_screen(page, "Ada Lovelace")  # the header names the reviewer the server chose
    start_page = page.content()
    assert str(served.project_dir) not in start_page and "review --reviewer" not in start_page  # nothing server-side shows
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "serve_first_candidate.png"))

    press(page, "a")
    second = wait_for_candidate(page, other_than=first)
    press(page, "r")
    wait_for_screen(page, "factually wrong")  # the configured reasons, each with its digit
    press(page, "1")
    third = wait_for_candidate(page, other_than=second)
    press(page, "u")
    assert wait_for_candidate(page, other_than=third) == second  # the undone candidate comes back

    decisions = served.decisions()
    assert [(d.candidate_id, d.action, d.reasons) for d in decisions] == [
        (first, "accept", []),
        (second, "reject", ["factually wrong"]),
        (second, "undo", []),
    ]
    assert {(d.reviewer, d.client) for d in decisions} == {("Ada Lovelace", "browser")}
    assert decisions[2].undoes_id == decisions[1].id

    # Closing the tab ends its app process and gives its candidate back to the queue.
    assert len(served.apps()) == 1
    page.context.close()
    wait_until(lambda: not served.apps(), what="the app process to end with its tab")
    with read_session(served.engine) as session:
        held = session.exec(select(Candidate.id).where(col(Candidate.lease_owner).is_not(None))).all()
    assert held == []


def test_two_reviewers_review_in_parallel_without_double_claims(project_dir: Path, tmp_path: Path, browser: Any) -> None:
    extra = [NewCandidate(source_key=f"extra:{n}", messages=conversation(f"Question {n}?", f"Answer {n}."), tags=["x"]) for n in range(2)]
    with serve(project_dir, tmp_path, [*fixture_candidates(), *extra]) as served:  # 7: each still sees one after 2 decisions
        review_in_parallel(served, browser)


def review_in_parallel(served: Served, browser: Any) -> None:
    bea, cid = new_page(browser), new_page(browser)
    sign_in(bea, served.invite("Bea"))
    sign_in(cid, served.invite("Cid"))
    shown = {"Bea": wait_for_candidate(bea), "Cid": wait_for_candidate(cid)}
    assert shown["Bea"] != shown["Cid"]
    for _ in range(2):
        for name, page in (("Bea", bea), ("Cid", cid)):
            press(page, "a")
            shown[name] = wait_for_candidate(page, other_than=shown[name])
        assert shown["Bea"] != shown["Cid"]
    decisions = served.decisions()
    assert sorted(d.reviewer for d in decisions) == ["Bea", "Bea", "Cid", "Cid"]
    assert len({d.candidate_id for d in decisions}) == 4  # nobody decided a candidate twice
    assert {d.client for d in decisions} == {"browser"}
    bea.context.close()
    cid.context.close()


def test_without_a_live_session_every_page_is_refused_and_no_app_starts(served: Served, browser: Any) -> None:
    for path in ("/", "/ws", "/download/anything"):
        assert status_of(served.url + path) == 401
    page = new_page(browser)
    link = served.invite("Dee")
    sign_in(page, link)
    wait_for_candidate(page)
    cookie = next(c for c in page.context.cookies() if c["name"] == "synthgate_session")
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["secure"]) == (True, "Strict", False)  # plain http on loopback

    # The link is spent: a second use, in another browser, signs nobody in.
    again = new_page(browser)
    sign_in(again, link)
    assert "already used" in again.inner_text("#reason")
    assert served.sign_in_request(link.split("#", 1)[1]) == 401

    # Revoked: the open tab closes, its app ends, and the cookie opens nothing any more.
    revoked = CliRunner().invoke(app, ["--project", str(served.project_dir), "team", "revoke", "Dee"])
    assert revoked.output.strip() == "Dee: 2 sign-in link(s) and session(s) ended"  # the spent invite and the session
    page.wait_for_selector("body.-closed")
    wait_until(lambda: not served.apps(), what="the revoked reviewer's app to end")
    with_cookie = urllib.request.Request(served.url + "/", headers={"Cookie": f"synthgate_session={cookie['value']}"})
    assert status_of(with_cookie) == 401
    page.goto(served.url + "/")
    assert "not signed in" in page.inner_text("#reason")
    assert served.apps() == []
    assert served.decisions() == []
    page.context.close()
    again.context.close()


def test_sign_in_attempts_are_rate_limited_per_address(served: Served) -> None:
    statuses = [served.sign_in_request(f"guess-{attempt}") for attempt in range(10)]
    assert statuses == [401] * 10
    good_link = served.invite("Eve")
    assert served.sign_in_request(good_link.split("#", 1)[1]) == 429  # even a good token waits now
    assert served.apps() == []


def test_untrusted_text_shows_literally_in_the_page(project_dir: Path, tmp_path: Path, browser: Any) -> None:
    hostile = "\n".join(
        [
            "[link=https://evil.example]open[/link]",
            "[@click=app.quit]quit[/]",
            "\x1b[31mred\x1b[0m",
            "\x1b]52;c;aGk=\x07",
            "bidi \u202eevil\u202c end",
        ]
    )
    long_answer = "Yes. " + "Long answer. " * 3000 + "THE-END"
    candidates = [
        NewCandidate(source_key="hostile:1", messages=conversation("A question?", hostile), tags=["edge:hostile"]),
        NewCandidate(source_key="hostile:2", messages=conversation("A long one?", long_answer), tags=["edge:long"]),
    ]
    with serve(project_dir, tmp_path, candidates) as served:
        page = new_page(browser)
        sign_in(page, served.invite("Fay"))
        first = wait_for_candidate(page)
        wait_for_screen(page, "\\u202c end")  # the whole answer is drawn (the panels are not drawn all at once)
        text = screen_text(page)
        for literal in (
            "[link=https://evil.example]open[/link]",
            "[@click=app.quit]quit[/]",
            "\\x1b[31mred\\x1b[0m",
            "\\x1b]52;c;aGk=\\x07",
            "bidi \\u202eevil\\u202c end",
        ):
            assert literal in text, literal
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "serve_untrusted_text.png"))
        press(page, "a")  # the app still works: no markup quit it
        wait_for_candidate(page, other_than=first)
        wait_for_screen(page, "Yes. Long answer.")
        assert [d.action for d in served.decisions()] == ["accept"]
        page.context.close()


def test_on_postgresql_a_browser_reviewer_decides_as_their_database_role(
    project_dir: Path, tmp_path: Path, browser: Any, pg_store_url: str, test_role_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from generator.store.team import add_reviewer

    monkeypatch.setenv("SYNTHGATE_DB", pg_store_url)  # the server, its app processes and `team invite` all use it
    role = f"{test_role_prefix}ada"
    with serve(project_dir, tmp_path) as served:
        add_reviewer(served.engine, role)
        page = new_page(browser)
        sign_in(page, served.invite(role))
        first = wait_for_candidate(page)
        press(page, "a")
        wait_for_candidate(page, other_than=first)
        [decision] = served.decisions()
        assert (decision.candidate_id, decision.action, decision.reviewer, decision.client) == (first, "accept", role, "browser")
        assert decision.proof
        # Not proved here: that the app acted as the role (SET ROLE) rather than as the owner under the
        # role's name; both record the same row. tests/test_team_roles.py proves engine_as_role itself.
        page.context.close()
