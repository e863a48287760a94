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
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DB = os.environ.get("BENCH_DATABASE", "kubeprobe_bench_alerts")
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
PORT = int(os.environ.get("BENCH_PORT", "8766"))
BODY = json.dumps(
    {
        "ok": False,
        "errors": ["step ready failed: Failed to create pod sandbox: rpc error"],
        "steps": [
            {"name": "create", "ok": True, "duration_ms": 40},
            {
                "name": "ready",
                "ok": False,
                "duration_ms": 900,
                "error": "Failed to create pod sandbox",
            },
        ],
        "metrics": {},
    }
).encode()


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


def run(args: list[str], env: dict[str, str]) -> str:
    return subprocess.run(
        args, check=True, capture_output=True, text=True, env=env, cwd=ROOT
    ).stdout


def prepare(env: dict[str, str], alerts: int, hook: str, out: Path) -> None:
    run(
        [
            "psql",
            PG + "/postgres",
            "-q",
            "-c",
            f"DROP DATABASE IF EXISTS {DB}",
            "-c",
            f"CREATE DATABASE {DB}",
        ],
        env,
    )
    run([sys.executable, "manage.py", "migrate", "-v", "0"], env)
    code = f"""
import hashlib, json, secrets
from datetime import timedelta
from django.utils import timezone
from apps.alerts.models import AlertRule
from apps.alerts.services import channel_save
from apps.catalog.models import Case, CaseTemplate
from apps.clusters.models import Cluster
from apps.runs.models import ProbeRun
AlertRule.objects.filter(name="default").update(consecutive_failures=1)
channel_save(name="bench-hook", kind="webhook", config={{"url": {hook!r}}})
template = CaseTemplate.objects.create(name="bench", image="x")
cases = [Case.objects.create(name=f"case-{{i}}", template=template) for i in range(10)]
clusters = Cluster.objects.bulk_create(
    [Cluster(name=f"cluster-{{i:04d}}", executor="local") for i in range({alerts} // 10 + 1)]
)
now = timezone.now()
rows, tokens = [], []
for i in range({alerts}):
    token = secrets.token_urlsafe(24)
    tokens.append(token)
    rows.append(ProbeRun(case=cases[i % 10], cluster=clusters[i // 10], trigger="manual",
        state="running", dispatched_at=now, deadline=now + timedelta(hours=1),
        token_hash=hashlib.sha256(token.encode()).hexdigest(), idempotency_key=f"bench:{{i}}"))
ProbeRun.objects.bulk_create(rows)
by_key = dict(ProbeRun.objects.values_list("idempotency_key", "id"))
with open({str(out)!r}, "w") as f:
    for i, token in enumerate(tokens):
        f.write(f"{{by_key[f'bench:{{i}}']}} {{token}} case-{{i % 10}} cluster-{{i // 10:04d}}\\n")
"""
    run([sys.executable, "manage.py", "shell", "-c", code], env)


def wait_http(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--alerts", type=int, default=300)
    parser.add_argument("--rate", type=float, default=10.0, help="failing reports per second")
    opts = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kubeprobe-alert-bench-"))
    queue = f"kubeprobe-alert-bench-{os.getpid()}"
    env = {
        **os.environ,
        "DATABASE_URL": f"{PG}/{DB}",
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/13"),
        "SECRET_KEY": "bench-" + secrets.token_hex(30),
        "KUBEPROBE_ENCRYPTION_KEY": "kTl4gWAX8Qp4NUS7vjUWRFDiRZPp6fz0mPnuV3Gq-dE=",
        "KUBEPROBE_STATIC_MANIFEST": "false",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "LOG_LEVEL": "WARNING",
        "DATABASE_CONN_MAX_AGE": "60",
    }
    receiver = Receiver()
    runs_file = tmp / "runs.txt"
    print(f"preparing {opts.alerts} dispatched runs in {DB} ...", flush=True)
    prepare(env, opts.alerts, receiver.url, runs_file)
    runs = [line.split() for line in runs_file.read_text().splitlines()]
    logs = (tmp / "server.log").open("w"), (tmp / "worker.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "kubeprobe_site.wsgi:application",
            "-b",
            f"127.0.0.1:{PORT}",
            "-w",
            "2",
            "--threads",
            "4",
            "-k",
            "gthread",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=logs[0],
    )
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "kubeprobe_site",
            "worker",
            "-Q",
            queue,
            "-c",
            "2",
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=logs[1],
    )
    sent: dict[tuple[str, str], float] = {}
    try:
        wait_http(f"http://127.0.0.1:{PORT}/livez", 30)
        time.sleep(3)  # let the worker connect to the broker before the clock starts
        interval = 1.0 / opts.rate
        start = time.monotonic()
        for index, (run_id, token, case, cluster) in enumerate(runs):
            pause = start + index * interval - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            request = urllib.request.Request(
                f"http://127.0.0.1:{PORT}/api/v1/runs/{run_id}/report",
                data=BODY,
                method="POST",
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=10) as answer:
                assert answer.status == 200
            sent[(case, cluster)] = time.monotonic()
        deadline = time.monotonic() + 30
        while len(receiver.arrived) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.05)  # the bench waits for stragglers; nothing is synchronised on this
    finally:
        for process in (server, worker):
            process.terminate()
        for process in (server, worker):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
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
