"""Kill the whole process group of a running `synthgate generate` at a random moment, rerun it, count what was lost.

Run: .venv/bin/python benchmarks/group_kill.py [--trials 20] [--requests 300] [--concurrency 32] [--latency 0.1]

Each trial: a fresh project; `synthgate generate` in a new session (its own process group, as a
shell, SSH session or container gives it) against the loopback fake server; `kill -9` of the whole
group at a random moment while answers arrive; then the same command again, to completion.
  paid twice      requests sent over both runs minus the requests the run needs
Each request paid twice is then placed by when the loopback server had sent its first answer:
  in flight       not yet answered when the group died
  last 20 ms      answered in the 20 ms before the kill (still in sockets or the SDK: never received)
  lost            answered earlier than that and bought again: an answer synthgate had and lost
Targets: lost = 0 in every trial; paid twice <= in flight + what arrives in ~20 ms (at 32 in flight
and 100 ms latency: <= 42).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from generate_throughput import fresh_project  # noqa: E402  (beside this script)

from tests.conftest import generate_args, start_cli, wait_for_logged_answers  # noqa: E402
from tests.fake_llm_server import FakeLLMServer, FaultPlan  # noqa: E402

KEY = {"OPENAI_API_KEY": "sk-benchmark"}


def trial(root: Path, rng: random.Random, *, requests: int, concurrency: int, latency: float) -> dict[str, float]:
    project = fresh_project(root)
    with FakeLLMServer(FaultPlan(latency=latency)) as fake:
        args = generate_args(project, fake.openai_base_url, count=requests, concurrency=concurrency)
        process = start_cli(args, env=KEY, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_for_logged_answers(process, project / ".synthgate", 1)
        time.sleep(rng.uniform(0.0, 0.8 * requests * latency / concurrency))  # somewhere in the run
        killed_at = time.monotonic()
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        sent_first = fake.requests
        rerun = subprocess.run(
            [sys.executable, "-m", "generator", *args], cwd=REPO, env={**os.environ, **KEY}, capture_output=True, text=True, timeout=600
        )
        if rerun.returncode != 0:
            raise SystemExit(f"the rerun failed:\n{rerun.stderr}")
        summary = json.loads(rerun.stdout)
        if summary["status"] != "complete":
            raise SystemExit(f"the rerun did not complete: {summary}")
        paid_twice = fake.requests - requests
        # Each request paid again, by when the server had sent its first answer (None: after the kill).
        sent_before_kill = [killed_at - fake.answered_at[body] for body, times in fake.seen_bodies.items() if times > 1]
    return {
        "sent_first": sent_first,
        "paid_twice": paid_twice,
        "in_flight": sum(1 for ago in sent_before_kill if ago < 0),
        "last_20ms": sum(1 for ago in sent_before_kill if 0 <= ago < 0.02),
        "lost": sum(1 for ago in sent_before_kill if ago >= 0.02),
        "recovered": summary["answers_recovered"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    print(
        f"kill -9 of the whole process group, {args.trials} trials: {args.requests} requests, {args.latency * 1000:.0f} ms latency, "
        f"concurrency {args.concurrency}"
    )
    print(f"{'trial':>5} {'sent before kill':>17} {'from the log':>13} {'paid twice':>11} {'in flight':>10} {'last 20 ms':>11} {'lost':>5}")
    results = []
    with tempfile.TemporaryDirectory(prefix="synthgate-kill-") as tmp:
        for number in range(1, args.trials + 1):
            result = trial(Path(tmp), rng, requests=args.requests, concurrency=args.concurrency, latency=args.latency)
            results.append(result)
            print(
                f"{number:>5} {result['sent_first']:>17.0f} {result['recovered']:>13.0f} {result['paid_twice']:>11.0f} "
                f"{result['in_flight']:>10.0f} {result['last_20ms']:>11.0f} {result['lost']:>5.0f}"
            )
    print(f"\nanswers lost (answered > 20 ms before the kill, paid again): {sum(r['lost'] for r in results):.0f} over {args.trials} trials")
    print(
        f"requests paid twice: max {max(r['paid_twice'] for r in results):.0f}, mean {sum(r['paid_twice'] for r in results) / len(results):.1f} "
        f"(in flight at the kill: max {max(r['in_flight'] for r in results):.0f})"
    )


if __name__ == "__main__":
    main()
