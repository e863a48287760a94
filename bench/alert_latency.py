"""Alert latency: from a failing report accepted to the notification at a webhook receiver.

Starts the real stack on Postgres and Redis: the portal's HTTP server
(gunicorn, as in production) and a Celery worker. Creates dispatched runs on
many (case, cluster) pairs, a rule that fires on one failure, and a webhook
channel pointing at a receiver in this process. Then it sends failing reports
at a steady pace, each on its own pair, and measures for every pair the time
from the report's 200 to the moment its cluster arrives at the receiver
(grouped messages count for every cluster they list). Prints p50/p95/p99/max;
the target is p99 under 2 s.

    python bench/alert_latency.py [--alerts 300] [--rate 10]

Needs: Postgres and Redis on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from _stack import (
    bench_env,
    celery_worker,
    django_shell,
    failing_runs_code,
    fresh_database,
    gunicorn,
    percentile,
    post_failing_report,
    processes,
    wait_http,
)

DB = os.environ.get("BENCH_DATABASE", "kubeprobe_bench_alerts")
PORT = int(os.environ.get("BENCH_PORT", "8766"))


class Receiver:
    """Records when each (case, cluster) first arrives."""

    def __init__(self) -> None:
        self.arrived: dict[tuple[str, str], float] = {}
        self.messages = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                now = time.monotonic()
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.messages += 1
                    if body.get("event") == "firing":
                        for item in body["items"]:
                            outer.arrived.setdefault((body["case"], item["cluster"]), now)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def prepare(env: dict[str, str], alerts: int, hook: str, out: Path) -> None:
    fresh_database(env, DB)
    channel = (
        "from apps.alerts.channels import channel_save\n"
        f'channel_save(name="bench-hook", kind="webhook", config={{"url": {hook!r}}})\n'
    )
    django_shell(env, failing_runs_code(alerts, out) + channel)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--alerts", type=int, default=300)
    parser.add_argument("--rate", type=float, default=10.0, help="failing reports per second")
    opts = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kubeprobe-alert-bench-"))
    queue = f"kubeprobe-alert-bench-{os.getpid()}"
    env = bench_env(DB, 13, queue)
    receiver = Receiver()
    runs_file = tmp / "runs.txt"
    print(f"preparing {opts.alerts} dispatched runs in {DB} ...", flush=True)
    prepare(env, opts.alerts, receiver.url, runs_file)
    runs = [line.split() for line in runs_file.read_text().splitlines()]
    sent: dict[tuple[str, str], float] = {}
    base = f"http://127.0.0.1:{PORT}"
    with processes(env, tmp, server=gunicorn(PORT), worker=celery_worker(queue)):
        wait_http(base + "/livez", 30)
        time.sleep(3)  # let the worker connect to the broker before the clock starts
        interval = 1.0 / opts.rate
        start = time.monotonic()
        for index, (run_id, token, _, _, case, cluster) in enumerate(runs):
            pause = start + index * interval - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            post_failing_report(base, run_id, token)
            sent[(case, cluster)] = time.monotonic()
        deadline = time.monotonic() + 30
        while len(receiver.arrived) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.05)  # the bench waits for stragglers; nothing is synchronised on this
    latencies = [(receiver.arrived[k] - t) * 1000 for k, t in sent.items() if k in receiver.arrived]
    missing = len(sent) - len(latencies)
    print(
        f"machine: {os.cpu_count()} cores; gunicorn 2x4, celery worker -c 2, Postgres + Redis local"
    )
    print(f"failing reports: {len(sent)} at {opts.rate:g}/s; webhook messages: {receiver.messages}")
    if latencies:
        p50, p95, p99 = (percentile(latencies, p) for p in (50, 95, 99))
        print(
            f"report -> webhook: p50 {p50:.0f} ms  p95 {p95:.0f} ms  p99 {p99:.0f} ms  "
            f"max {max(latencies):.0f} ms  mean {statistics.mean(latencies):.0f} ms"
        )
        print(f"target p99 < 2000 ms: {'met' if p99 < 2000 else 'NOT met'}")
    if missing:
        sys.exit(f"{missing} alerts never arrived (logs in {tmp})")


if __name__ == "__main__":
    main()
