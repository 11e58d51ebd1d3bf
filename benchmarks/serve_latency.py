"""Browser review latency under `synthgate serve`: page load -> first candidate shown, and keypress -> next candidate.

Headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) signs in with an invite link
and reviews through the real server: each decision goes keydown in the page -> websocket -> the
reviewer's `synthgate review` process (decision committed, next candidate claimed, screen redrawn)
-> websocket -> xterm.js. Both figures are taken on the page's clock: page load from navigation
start to the first candidate's id parsed into the terminal (server start, interpreter start of the
app process and its imports included); keypress from the keydown event to the next candidate's id
parsed. Page loads are repeated (--loads); the keypress figures cover --decisions accepts.

    .venv/bin/python benchmarks/serve_latency.py
    .venv/bin/python benchmarks/serve_latency.py --decisions 500 --loads 10
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from generator.init_project import init_project  # noqa: E402
from generator.project import Project  # noqa: E402
from generator.serve.sessions import create_invite  # noqa: E402
from generator.store.db import open_store, write_session  # noqa: E402
from generator.store.intake import NewCandidate, add_candidates  # noqa: E402
from tests.serve_harness import free_port, launch_chromium, new_page, sign_in, start_server, timed_key, wait_for_candidate  # noqa: E402

# Navigation start (the page's time origin) to the first candidate's id parsed into the terminal.
FIRST_SHOWN = """() => new Promise(resolve => {
  const check = () => {
    const terminal = window.__synthgateTerminal;
    if (terminal) {
      const text = [];
      for (let row = 0; row < terminal.rows; row++) {
        const line = terminal.buffer.active.getLine(row);
        text.push(line ? line.translateToString(true) : "");
      }
      if (/candidate #\\d+/.test(text.join("\\n"))) return resolve(performance.now());
    }
    setTimeout(check, 5);
  };
  check();
})"""


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=200, help="Accepts made in the browser (keypress -> next candidate).")
    parser.add_argument("--loads", type=int, default=5, help="Page loads measured (page load -> first candidate).")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        os.environ["SYNTHGATE_HOME"] = str(work / "home")  # the store's signing key, apart from the user's
        project_dir = work / "project"
        init_project(project_dir)
        engine = open_store(Project.locate(project_dir).db_url)
        candidates = [
            NewCandidate(
                source_key=f"bench:{n}",
                messages=[
                    {"role": "user", "content": f"Question {n}: how do I export my data as CSV?"},
                    {"role": "assistant", "content": f"Answer {n}: open Reports, choose Export and pick CSV. " * 4},
                ],
                tags=["bench"],
            )
            for n in range(args.decisions + args.loads + 10)
        ]
        with write_session(engine) as session:
            add_candidates(session, candidates)
        with write_session(engine) as session:
            link_token = create_invite(session, reviewer="Benchmark Reviewer")
        port = free_port()
        server = start_server(project_dir, port=port, log_file=work / "serve.log")
        url = f"http://127.0.0.1:{port}"
        try:
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                page = new_page(browser)
                sign_in(page, f"{url}/signin#{link_token}")
                wait_for_candidate(page)
                loads = []
                for _ in range(args.loads):
                    page.goto(url + "/")  # a new page load: the old tab's app quits, a new one starts
                    loads.append(float(page.evaluate(FIRST_SHOWN)))
                shown = wait_for_candidate(page)
                keypresses = []
                for _ in range(args.decisions):
                    shown, milliseconds = timed_key(page, "a", shown=shown)
                    keypresses.append(milliseconds)
                browser.close()
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
            engine.dispose()

    print(f"page load -> first candidate shown, {len(loads)} loads: median {statistics.median(loads):.0f} ms, max {max(loads):.0f} ms")
    print(
        f"keypress -> next candidate shown, {len(keypresses)} accepts: p50 {percentile(keypresses, 0.5):.1f} ms, "
        f"p95 {percentile(keypresses, 0.95):.1f} ms, max {max(keypresses):.1f} ms"
    )
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; {time.strftime('%Y-%m-%d %H:%M')})")


if __name__ == "__main__":
    main()
