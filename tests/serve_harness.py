"""Drives `synthgate serve` in headless Chromium: start the server, sign in, read the terminal's text (tests and benchmark)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package: Playwright's own browser downloads are unreachable here
# The page's terminal (xterm.js, drawn on a canvas) is made inside textual.js's closure. The first
# `this.fitAddon = ...` of the object that owns it runs this setter, which keeps that object where
# the test can read the terminal's buffer: the screen's text, as the reviewer sees it.
CAPTURE_TERMINAL = """
Object.defineProperty(Object.prototype, "fitAddon", {
  configurable: true,
  set(value) {
    Object.defineProperty(this, "fitAddon", {value, writable: true, configurable: true, enumerable: true});
    window.__synthgateTerminal = this.terminal;
  },
});
"""
SCREEN_TEXT = """() => {
  const terminal = window.__synthgateTerminal;
  if (!terminal) return "";
  const buffer = terminal.buffer.active;
  const lines = [];
  for (let row = 0; row < terminal.rows; row++) {
    const line = buffer.getLine(buffer.viewportY + row);
    lines.push(line ? line.translateToString(true) : "");
  }
  return lines.join("\\n");
}"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_server(project_dir: Path, *, port: int, log_file: Path) -> subprocess.Popen[bytes]:
    """`synthgate serve` in its own process group (so its app processes can be found and stopped), once it answers."""
    with log_file.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "generator", "--project", str(project_dir), "serve", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "COLUMNS": "200"},
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"synthgate serve exited with {server.returncode}: {log_file.read_text()}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/signin", timeout=5).close()
            return server
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)  # polling for the port to open: no event to wait on across processes
    server.kill()
    raise RuntimeError(f"synthgate serve did not answer within 60 s: {log_file.read_text()}")


def child_processes(pid: int) -> list[int]:
    """The processes whose parent is `pid` (Linux /proc): each review app is one (its shell execs Python)."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # the process ended while we looked
            if int(fields[1]) == pid:
                children.append(int(entry.name))
    return children


def launch_chromium(playwright: Any) -> Any:
    args = ["--no-sandbox"] if os.geteuid() == 0 else []  # Chromium's sandbox refuses to run as root
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)


def new_page(browser: Any) -> Any:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.add_init_script(CAPTURE_TERMINAL)
    return context.new_page()


def sign_in(page: Any, link: str) -> None:
    """Open an invite link and press Sign in, as a reviewer does."""
    page.goto(link)
    page.click("#sign-in")


def screen_text(page: Any) -> str:
    text: str = page.evaluate(SCREEN_TEXT)
    return text


def wait_for_screen(page: Any, text: str, *, timeout_ms: float = 30_000) -> None:
    """Wait until `text` shows on the page's terminal (Playwright polls; no fixed sleeps)."""
    page.wait_for_function(f"text => ({SCREEN_TEXT})().includes(text)", arg=text, timeout=timeout_ms, polling=20)


SHOWN_CANDIDATE = f"""() => {{
  const match = ({SCREEN_TEXT})().match(/candidate #(\\d+)/);
  return match ? Number(match[1]) : null;
}}"""


def wait_for_candidate(page: Any, *, other_than: int | None = None, timeout_ms: float = 30_000) -> int:
    """The id of the candidate on screen, once one other than `other_than` shows (its provenance panel names it)."""
    handle = page.wait_for_function(
        f"previous => {{ const shown = ({SHOWN_CANDIDATE})(); return shown !== null && shown !== previous ? shown : null; }}",
        arg=other_than,
        timeout=timeout_ms,
        polling=10,
    )
    shown: int = handle.json_value()
    return shown


def press(page: Any, key: str) -> None:
    """A key typed into the page's terminal (xterm.js reads keys from its hidden textarea)."""
    page.focus("textarea.xterm-helper-textarea")
    page.keyboard.press(key)


# Timed in the page, on the browser's clock: from the key's keydown to the moment xterm.js has
# parsed the output that puts another candidate on screen (no polling interval in the figure).
ARM_KEY_TIMER = f"""previous => {{
  const terminal = window.__synthgateTerminal;
  const textarea = document.querySelector("textarea.xterm-helper-textarea");
  window.__synthgateNext = new Promise(resolve => {{
    let pressedAt = null;
    textarea.addEventListener("keydown", () => {{ pressedAt = performance.now(); }}, {{once: true, capture: true}});
    const watch = terminal.onWriteParsed(() => {{
      const shown = ({SHOWN_CANDIDATE})();
      if (pressedAt !== null && shown !== null && shown !== previous) {{
        watch.dispose();
        resolve([shown, performance.now() - pressedAt]);
      }}
    }});
  }});
}}"""


def timed_key(page: Any, key: str, *, shown: int) -> tuple[int, float]:
    """Press `key` on candidate `shown`; (the next candidate's id, milliseconds from keydown to it on screen)."""
    page.evaluate(ARM_KEY_TIMER, shown)
    press(page, key)
    next_id, milliseconds = page.evaluate("() => window.__synthgateNext")
    return int(next_id), float(milliseconds)
