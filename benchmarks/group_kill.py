"""Kill the whole process group of a running `synthgate generate` at a random moment, rerun it, count what was lost.

Run: .venv/bin/python benchmarks/group_kill.py [--trials 20] [--requests 300] [--concurrency 32] [--latency 0.1]

Each trial: a fresh project; `synthgate generate` in a new session (its own process group, as a
shell, SSH session or container gives it) against the loopback fake server; `kill -9` of the whole
group at a random moment while answers arrive; then the same command again, to completion.
  requests paid twice   requests sent over both runs minus the requests the run needs
  in flight at the kill  requests the server was still working on when the group died (never answered)
  answered, paid again  paid twice minus in flight: answers the server had sent that were bought again. An
                        upper bound on answers lost: it also counts answers still in the client's socket
                        buffers or inside the SDK at the kill, which synthgate never received.
Targets: paid twice <= in flight + what arrives in ~20 ms (at 32 in flight and 100 ms latency:
<= 42) in every trial; answered-but-paid-again near 0 on a quiet machine.
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
        os.killpg(process.pid, signal.SIGKILL)
        in_flight = fake.in_flight  # read at once: requests the server had not answered when the group died
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
    return {
        "sent_first": sent_first,
        "in_flight": in_flight,
        "paid_twice": paid_twice,
        "lost": max(0, paid_twice - in_flight),
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
    print(f"{'trial':>5} {'sent before kill':>17} {'in flight':>10} {'paid twice':>11} {'from the log':>13} {'answered, paid again':>21}")
    results = []
    with tempfile.TemporaryDirectory(prefix="synthgate-kill-") as tmp:
        for number in range(1, args.trials + 1):
            result = trial(Path(tmp), rng, requests=args.requests, concurrency=args.concurrency, latency=args.latency)
            results.append(result)
            print(
                f"{number:>5} {result['sent_first']:>17.0f} {result['in_flight']:>10.0f} {result['paid_twice']:>11.0f} "
                f"{result['recovered']:>13.0f} {result['lost']:>21.0f}"
            )
    print(
        f"\nanswered by the server before the kill, paid again: {sum(r['lost'] for r in results):.0f} over {args.trials} trials, "
        f"max {max(r['lost'] for r in results):.0f} in one (an upper bound on answers lost)"
    )
    print(
        f"requests paid twice: max {max(r['paid_twice'] for r in results):.0f}, mean {sum(r['paid_twice'] for r in results) / len(results):.1f} "
        f"(in flight at the kill: max {max(r['in_flight'] for r in results):.0f})"
    )


if __name__ == "__main__":
    main()
