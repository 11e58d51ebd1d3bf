"""The web server: textual-serve's aiohttp `Server`, with sign-in, a session on every request and one review app per reviewer."""

from __future__ import annotations

import asyncio
import logging
import shlex
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import web
from aiolimiter import AsyncLimiter
from sqlalchemy import Engine
from textual_serve.app_service import AppService
from textual_serve.server import Server, to_int

from generator.project import DB_ENV
from generator.serve import sessions
from generator.serve.identity import SERVED_ENV
from generator.store.db import read_session, write_session

log = logging.getLogger("synthgate.serve")

TEMPLATES = Path(__file__).parent / "templates"
COOKIE = "synthgate_session"
# Sign-in attempts per client address: a person mistypes a few times; a guesser needs ~2^256 tries.
SIGN_IN_ATTEMPTS = 10
SIGN_IN_PERIOD_SECONDS = 60
MAX_TRACKED_ADDRESSES = 10_000  # one small limiter per address: bounded memory under many addresses
# How soon `team revoke` (another process, writing the store) closes an open review tab.
REVOCATION_CHECK_SECONDS = 1.0
# How long a review app may take to save and quit after its tab closes before it is killed.
APP_STOP_SECONDS = 10.0


class ReviewerAppService(AppService):
    """One reviewer's app process: textual-serve's, with the server's environment for that reviewer added."""

    def __init__(self, command: str, *, environment: dict[str, str], **kwargs: Any) -> None:
        super().__init__(command, **kwargs)
        self.extra_environment = environment

    def _build_environment(self, width: int = 80, height: int = 24) -> dict[str, str]:
        return {**super()._build_environment(width=width, height=height), **self.extra_environment}

    def kill(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.kill()


class ReviewServer(Server):
    """Serves `synthgate review` to signed-in reviewers only; who reviews comes from the session cookie."""

    def __init__(self, *, engine: Engine, db_url: str, project_root: Path, host: str, port: int, public_url: str | None = None) -> None:
        super().__init__(
            "synthgate review", host=host, port=port, title="synthgate review", public_url=public_url, templates_path=TEMPLATES
        )
        self.engine = engine
        self.db_url = db_url
        self.project_root = project_root
        self.apps_started = 0
        # Open review tabs by session hash, so a revoked session's tabs can be closed.
        self.connections: dict[str, set[web.WebSocketResponse]] = {}
        self.sign_in_limits: dict[str, AsyncLimiter] = {}
        self._revocation_task: asyncio.Task[None] | None = None

    # --- the aiohttp application --------------------------------------------------------------

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(self.require_session)
        app.router.add_get("/signin", self.handle_sign_in_page)
        app.router.add_post("/signin", self.handle_sign_in)
        return app

    @web.middleware
    async def require_session(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Everything but the sign-in page and the static files needs a live session: else 401, and no app starts."""
        if request.path == "/signin" or request.path.startswith("/static/"):
            return await handler(request)
        token = request.cookies.get(COOKIE)
        reviewer = await asyncio.to_thread(self._reviewer_for, token) if token else None
        if reviewer is None or token is None:
            return self._page(request, "signed_out.html", status=401)
        request["reviewer"] = reviewer
        request["session_hash"] = sessions.hash_token(token)
        return await handler(request)

    def _reviewer_for(self, token: str) -> str | None:
        with read_session(self.engine) as session:
            return sessions.reviewer_for_session(session, token=token)

    def _page(self, request: web.Request, template: str, *, status: int = 200, **context: Any) -> web.Response:
        response = aiohttp_jinja2.render_template(template, request, context, status=status)
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"  # nobody may frame the review app to steal its keystrokes
        return response

    # --- sign-in ------------------------------------------------------------------------------

    async def handle_sign_in_page(self, request: web.Request) -> web.Response:
        # The token travels in the link's #fragment, which browsers never send: it stays out of proxy
        # logs, and a link previewer that fetches the page does not spend it. The page posts it.
        return self._page(request, "sign_in.html")

    async def handle_sign_in(self, request: web.Request) -> web.Response:
        if not self._same_origin(request):
            raise web.HTTPForbidden(text="sign-in from another site refused")
        address = request.remote or "unknown"
        if len(self.sign_in_limits) > MAX_TRACKED_ADDRESSES:  # forget the addresses whose attempts have all drained away
            self.sign_in_limits = {a: lim for a, lim in self.sign_in_limits.items() if not lim.has_capacity(SIGN_IN_ATTEMPTS)}
        limiter = self.sign_in_limits.setdefault(address, AsyncLimiter(SIGN_IN_ATTEMPTS, SIGN_IN_PERIOD_SECONDS))
        if not limiter.has_capacity():
            return self._page(request, "signed_out.html", status=429, too_many=True)
        await limiter.acquire()
        token = str((await request.post()).get("token", "")).strip()
        spent = await asyncio.to_thread(self._spend, token) if token else None
        if spent is None:
            return self._page(request, "signed_out.html", status=401, bad_link=True)
        reviewer, session_token = spent
        log.info("%s signed in from %s", reviewer, address)
        response = web.HTTPSeeOther("/")
        response.set_cookie(
            COOKIE,
            session_token,
            path="/",
            max_age=int(sessions.SESSION_LIFETIME.total_seconds()),
            httponly=True,
            samesite="Strict",
            secure=self._served_over_https(request),
        )
        raise response

    def _spend(self, token: str) -> tuple[str, str] | None:
        with write_session(self.engine) as session:
            return sessions.spend_invite(session, token=token)

    def _served_over_https(self, request: web.Request) -> bool:
        """https here, at the public URL (--public-url), or at a reverse proxy that says so (X-Forwarded-Proto).

        Trusting the header is safe for this one use: a forged one only makes the cookie stricter.
        """
        return request.secure or self.public_url.startswith("https://") or request.headers.get("X-Forwarded-Proto", "").lower() == "https"

    @staticmethod
    def _same_origin(request: web.Request) -> bool:
        """A browser names the page a request comes from (Origin); another site's page must not drive the app."""
        origin = request.headers.get("Origin")
        return origin is None or urlsplit(origin).netloc == request.host

    # --- the review app -----------------------------------------------------------------------

    async def handle_index(self, request: web.Request) -> web.Response:
        """Our own start page: the terminal and nothing about the server (textual-serve's shows its command line)."""
        scheme = "wss" if self._served_over_https(request) else "ws"
        return self._page(
            request,
            "review.html",
            font_size=to_int(request.query.get("fontsize", "16"), 16),
            websocket_url=f"{scheme}://{request.host}/ws",
        )

    def review_command(self, reviewer: str) -> str:
        """The app process for `reviewer`: `synthgate review` under this Python, named by the server, not the browser."""
        argv = [sys.executable, "-m", "generator", "--project", str(self.project_root), "review", "--reviewer", reviewer]
        return shlex.join(argv)  # textual-serve starts it through the shell: quote the name like any other text

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        """One review app process per connected tab, for the session's reviewer; it quits when the tab closes."""
        if not self._same_origin(request):
            raise web.HTTPForbidden(text="connection from another site refused")
        reviewer: str = request["reviewer"]
        session_hash: str = request["session_hash"]
        websocket = web.WebSocketResponse(heartbeat=15)
        await websocket.prepare(request)
        service = ReviewerAppService(
            self.review_command(reviewer),
            # The store's URL goes in the environment, not the command line other users can list.
            environment={DB_ENV: self.db_url, SERVED_ENV: "browser"},
            write_bytes=websocket.send_bytes,
            write_str=websocket.send_str,
            close=websocket.close,
            download_manager=self.download_manager,
            debug=self.debug,
        )
        tabs = self.connections.setdefault(session_hash, set())
        tabs.add(websocket)
        self.apps_started += 1
        log.info("review app started for %s (%d started so far)", reviewer, self.apps_started)
        try:
            await service.start(to_int(request.query.get("width", "80"), 80), to_int(request.query.get("height", "24"), 24))
            try:
                await self._process_messages(websocket, service)
            finally:
                # The app saves, gives back its leased candidates and quits; one that hangs is killed
                # (its leases then run out on their own).
                try:
                    await asyncio.wait_for(service.stop(), APP_STOP_SECONDS)
                except TimeoutError:
                    service.kill()
        except asyncio.CancelledError:
            await websocket.close()
        finally:
            tabs.discard(websocket)
            if not tabs:
                self.connections.pop(session_hash, None)
            log.info("review app ended for %s", reviewer)
        return websocket

    # --- revocation ---------------------------------------------------------------------------

    async def on_startup(self, app: web.Application) -> None:
        self.console.print(f"synthgate serve: review at {self.public_url} (sign in with a link from `synthgate team invite NAME`)")
        self.console.print("Press Ctrl+C to stop.")
        self._revocation_task = asyncio.create_task(self._close_revoked_sessions())

    async def on_shutdown(self, app: web.Application) -> None:
        if self._revocation_task is not None:
            self._revocation_task.cancel()
        for tabs in list(self.connections.values()):
            for websocket in list(tabs):
                await websocket.close()

    async def _close_revoked_sessions(self) -> None:
        """`team revoke` runs in another process and writes only the store: look there for ended sessions."""
        while True:
            await asyncio.sleep(REVOCATION_CHECK_SECONDS)
            open_sessions = list(self.connections)
            if not open_sessions:
                continue
            try:
                live = await asyncio.to_thread(self._live, open_sessions)
            except Exception:  # the store was busy for a moment (logged): look again next tick
                log.exception("could not check sessions")
                continue
            for session_hash in set(open_sessions) - live:
                for websocket in list(self.connections.get(session_hash, ())):
                    await websocket.close()  # ends its message loop, which stops the app process

    def _live(self, session_hashes: list[str]) -> set[str]:
        with read_session(self.engine) as session:
            return sessions.live_session_hashes(session, token_hashes=session_hashes)
