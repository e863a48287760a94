"""Alert evaluation: finished runs judged per second, and run finished → alert changed.

Starts the real stack on Postgres and Redis in a scratch database:

* gunicorn (2 × 4 threads) taking the reports, as in production;
* the evaluation workers: one Celery worker with two processes (`-c 2`) on
  the alerts queue only (the post-run pipeline: diagnosis, alert judged,
  incidents, actions, dashboard push; and notification delivery);
* dispatch busy at the same time: a Celery worker (`-c 2`) on the dispatch
  queue whose `kubernetes` executor creates no pod (bench/_fake_executor_worker.py:
  claiming, tokens, launch specs, state updates and pushes run for real), fed
  `--dispatch-rate` pending runs a second by this script, woken as a binding
  tick wakes them (apps/runs/fanout.py);
* a webhook channel pointing at a receiver in this script (delivery is part
  of the load).

`--cases` × `--clusters` (case, cluster) pairs under a rule that fires on one
failure and resolves on one success; each pair gets a run per round, rounds
one after the other, a mix of failing and passing: a quarter of the pairs
always fail (they fire once), half always pass, an eighth fail in the third
and fourth rounds (fire, then resolve), an eighth in the second only. wrk posts the reports over HTTP
at `--rate` a second for `--seconds`. A thread polls the alerts every 50 ms
and records when each pair's alert first shows a run at least as new as each
of its runs: that run is judged. Printed: per run, run finished (its
`finished_at`, stamped by the report) → judged (p50/p95/p99/max; polling
adds up to 50 ms), the same for every flip (its `created_at`, both server
clocks), the reports' and the judged rates, the dispatch rate and the load
average. Targets: ≥ 500 runs judged a second, p99 < 2 s.

    python bench/alert_eval.py [--rate 550] [--seconds 30] [--cases 20] [--clusters 100]
                               [--dispatch-rate 100] [--connections 200]

Needs: wrk, Postgres and Redis on 127.0.0.1 (BENCH_DATABASE, REDIS_URL,
BENCH_PORT).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from _stack import (
    ROOT,
    Meter,
    bench_env,
    fresh_database,
    gunicorn,
    machine_busy,
    percentile,
    processes,
    wait_http,
)

DB = os.environ.get("BENCH_DATABASE", "kubeprobe_bench_alert_eval")
PORT = int(os.environ.get("BENCH_PORT", "8767"))
QUEUE = f"bench-alert-eval-{os.getpid()}"
ENV = bench_env(DB, 12, QUEUE)
POLL_SECONDS = 0.05
LOGLEVEL = os.environ.get("BENCH_WORKER_LOGLEVEL", "WARNING")

FAILING = (
    '{"ok": false, "errors": ["step ready failed: Failed to create pod sandbox: rpc error"],'
    ' "steps": [{"name": "create", "ok": true, "duration_ms": 40}, {"name": "ready",'
    ' "ok": false, "duration_ms": 900, "error": "Failed to create pod sandbox"}], "metrics": {}}'
)
PASSING = (
    '{"ok": true, "steps": [{"name": "create", "ok": true, "duration_ms": 40},'
    ' {"name": "ready", "ok": true, "duration_ms": 300}], "metrics": {"ready_ms": 300}}'
)

# wrk paces each connection with delay(): every connection sends one report per
# connections/rate seconds; each thread takes every thread_count-th run.
LUA = r"""
local runs = {}
local counter = 0
thread_count = 1
local pause = 0
local bodies = {["0"] = [[PASSING]], ["1"] = [[FAILING]]}
local next_thread = 0

function setup(thread)
  thread:set("thread_index", next_thread)
  next_thread = next_thread + 1
end

function init(args)
  thread_count = tonumber(args[2])
  pause = tonumber(args[3])
  for line in io.lines(args[1]) do
    local id, token, failing = line:match("(%d+) (%S+) (%d)")
    table.insert(runs, {id = id, token = token, body = bodies[failing]})
  end
end

function delay()
  return pause
end

function request()
  if counter == 0 then counter = thread_index + 1 end
  local r = runs[counter]
  if r == nil then
    wrk.thread:stop()
    return ""
  end
  counter = counter + thread_count
  return wrk.format("POST", "/api/v1/runs/" .. r.id .. "/report",
    {["Authorization"] = "Bearer " .. r.token, ["Content-Type"] = "application/json"}, r.body)
end
"""


def setup_django() -> None:
    os.environ.update(ENV)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kubeprobe_site.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def failing(pair: int, round_: int) -> bool:
    """The mix: a quarter of the pairs always fail (they fire once), half always pass,
    an eighth fail in rounds 2 and 3 (fire, resolve), an eighth in round 1 only."""
    kind = pair % 8
    return kind in (0, 1) or (kind == 6 and round_ in (2, 3)) or (kind == 7 and round_ == 1)


class Receiver:
    """Counts the webhook messages the evaluation workers deliver."""

    def __init__(self) -> None:
        self.messages = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                outer.messages += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def prepare(opts: argparse.Namespace, hook: str, runs_file: Path) -> int:
    """Pairs, the rule, the channel, the runs to report (by round) and the dispatch cases."""
    import hashlib
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    from apps.alerts.channels import channel_save
    from apps.alerts.models import AlertRule
    from apps.catalog.models import Case, CaseTemplate
    from apps.clusters.models import Cluster
    from apps.runs.models import ProbeRun

    AlertRule.objects.filter(name="default").update(
        consecutive_failures=1, resolve_after_successes=1
    )
    channel_save(name="bench-hook", kind="webhook", config={"url": hook})
    template = CaseTemplate.objects.create(name="bench", image="x")
    cases = [
        Case.objects.create(name=f"case-{i:02d}", template=template) for i in range(opts.cases)
    ]
    clusters = Cluster.objects.bulk_create(
        [Cluster(name=f"cluster-{i:04d}", executor="local") for i in range(opts.clusters)]
    )
    pairs = [(case, cluster) for cluster in clusters for case in cases]
    total = int(opts.rate * opts.seconds)
    rounds = -(-total // len(pairs))
    now = timezone.now()
    lines = []
    for round_ in range(rounds):  # one insert per round: ids grow with the rounds
        rows, tokens = [], []
        for index, (case, cluster) in enumerate(pairs[: total - round_ * len(pairs)]):
            token = secrets.token_urlsafe(24)
            tokens.append((token, failing(index, round_)))
            rows.append(
                ProbeRun(
                    case=case,
                    cluster=cluster,
                    trigger="manual",
                    state="running",
                    dispatched_at=now,
                    deadline=now + timedelta(hours=2),
                    token_hash=hashlib.sha256(token.encode()).hexdigest(),
                )
            )
        ProbeRun.objects.bulk_create(rows, batch_size=2000)
        lines += [
            f"{row.pk} {token} {int(bad)}" for row, (token, bad) in zip(rows, tokens, strict=True)
        ]
    runs_file.write_text("\n".join(lines) + "\n")
    # The dispatch load's clusters (the fake executor creates no pod) and its case.
    load = Cluster.objects.bulk_create(
        [Cluster(name=f"dispatch-{i:03d}", executor="kubernetes") for i in range(20)]
    )
    Case.objects.create(name="dispatch-load", template=template)
    connection.cursor().execute("ANALYZE")
    assert load
    return len(lines)


def feed_dispatch(rate: float, stop: threading.Event, counted: list[int]) -> None:
    """Insert `rate` pending runs a second (in 0.2 s slices) and wake the dispatchers."""
    from django.db import connection

    from apps.catalog.models import Case
    from apps.clusters.models import Cluster
    from apps.runs.fanout import dispatch_wake
    from apps.runs.models import ProbeRun

    case = Case.objects.get(name="dispatch-load")
    clusters = list(Cluster.objects.filter(name__startswith="dispatch-"))
    per_slice, n = max(1, round(rate / 5)), 0
    try:
        while not stop.wait(0.2):
            rows = [
                ProbeRun(case=case, cluster=clusters[(n + i) % len(clusters)], trigger="schedule")
                for i in range(per_slice)
            ]
            ProbeRun.objects.bulk_create(rows)
            dispatch_wake(runs=per_slice)
            n += per_slice
            counted[0] = n
    finally:
        connection.close()


def poll_alerts(
    stop: threading.Event, seen: dict[tuple[int, int], list[tuple[float, int]]]
) -> None:
    """Every POLL_SECONDS: when did each pair's alert first show each newest run."""
    from django.db import connection

    try:
        with connection.cursor() as cursor:
            while not stop.is_set():
                cursor.execute(
                    "SELECT case_id, cluster_id, latest_run_id FROM alerts_alert"
                    " WHERE latest_run_id IS NOT NULL"
                )
                at = time.time()
                for case_id, cluster_id, run_id in cursor.fetchall():
                    history = seen.setdefault((case_id, cluster_id), [])
                    if not history or history[-1][1] < run_id:
                        history.append((at, run_id))
                stop.wait(POLL_SECONDS)
    finally:
        connection.close()


def judged_at(history: list[tuple[float, int]], run_id: int) -> float | None:
    return next((at for at, newest in history if newest >= run_id), None)


def summary(label: str, values: list[float]) -> str:
    if not values:
        return f"{label}: none"
    p50, p95, p99 = (percentile(values, p) for p in (50, 95, 99))
    return (
        f"{label}: p50 {p50:.0f} ms  p95 {p95:.0f} ms  p99 {p99:.0f} ms  max {max(values):.0f} ms"
        f"  ({len(values)})"
    )


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=550.0, help="reports per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument("--dispatch-rate", type=float, default=100.0)
    # wrk waits `pause` after each answer, so a connection sends one report per
    # pause + latency: many connections, each with a long pause, keep the offered
    # rate close to --rate when answers slow down.
    parser.add_argument("--connections", type=int, default=200)
    opts = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk")
    tmp = Path(tempfile.mkdtemp(prefix="kubeprobe-alert-eval-"))
    print(f"preparing {DB} ...", flush=True)
    fresh_database(ENV, DB)
    setup_django()
    from django.db import connection

    from apps.alerts.models import AlertFlip
    from apps.runs.models import ProbeRun

    receiver = Receiver()
    runs_file = tmp / "runs.txt"
    total = prepare(opts, receiver.url, runs_file)
    connection.close()
    script = tmp / "report.lua"
    script.write_text(
        LUA.replace("[[PASSING]]", repr(PASSING)).replace("[[FAILING]]", repr(FAILING))
    )
    base = f"http://127.0.0.1:{PORT}"
    worker = [sys.executable, "-m", "celery", "-A", "kubeprobe_site", "worker", "-c", "2",
              "-Q", f"{QUEUE}.alerts", "-n", f"alerts-{os.getpid()}@%h", "--loglevel", LOGLEVEL,
              "--without-gossip", "--without-mingle"]  # fmt: skip
    dispatcher = [sys.executable, str(ROOT / "bench" / "_fake_executor_worker.py"), "-c", "2",
                  "-Q", f"{QUEUE}.dispatch", "-n", f"dispatch-{os.getpid()}@%h",
                  "--loglevel", "WARNING"]  # fmt: skip
    seen: dict[tuple[int, int], list[tuple[float, int]]] = {}
    stop = threading.Event()
    dispatched = [0]
    with processes(ENV, tmp, server=gunicorn(PORT), alerts=worker, dispatch=dispatcher) as pids:
        wait_http(base + "/livez", 120)
        time.sleep(3)  # the workers connect to the broker before the clock starts
        threads = [
            threading.Thread(target=feed_dispatch, args=(opts.dispatch_rate, stop, dispatched)),
            threading.Thread(target=poll_alerts, args=(stop, seen)),
        ]
        for thread in threads:
            thread.start()
        time.sleep(1)
        running_before = ProbeRun.objects.filter(state="running", trigger="schedule").count()
        pause = max(1, round(opts.connections * 1000 / opts.rate))
        seconds = int(opts.seconds) + 3
        print(f"reporting {total} runs at {opts.rate:g}/s for ~{opts.seconds:g} s "
              f"(load {loadavg()}) ...", flush=True)  # fmt: skip
        started = time.time()
        # Redis serves this stack only on a machine of its own: counted as part of it.
        redis = subprocess.run(["pgrep", "-x", "redis-server"], capture_output=True, text=True)
        groups = {name: [pid] for name, pid in pids.items()}
        groups["redis"] = [int(pid) for pid in redis.stdout.split()]
        meter = Meter(groups)
        busy_before, reaped_before = machine_busy(), os.times()
        out = subprocess.run(
            ["wrk", "-t", "2", "-c", str(opts.connections), "-d", f"{seconds}s", "-s",
             str(script), base + "/", "--", str(runs_file), "2", str(pause)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        load_during = loadavg()
        reaped = os.times()
        wrk_cpu = sum(getattr(reaped, f) - getattr(reaped_before, f)
                      for f in ("children_user", "children_system"))  # fmt: skip
        deadline = time.time() + 60
        finished = dict(
            ProbeRun.objects.filter(finished_at__isnull=False, trigger="manual").values_list(
                "pk", "finished_at"
            )
        )
        pair_of = dict(
            (pk, (case, cluster))
            for pk, case, cluster in ProbeRun.objects.filter(pk__in=finished).values_list(
                "pk", "case_id", "cluster_id"
            )
        )
        while time.time() < deadline:  # wait for the stragglers; nothing synchronises on it
            if all(judged_at(seen.get(pair_of[pk], []), pk) for pk in finished):
                break
            time.sleep(0.2)
        running_after = ProbeRun.objects.filter(state="running", trigger="schedule").count()
        cpu = meter.stop()
        cpu["wrk"] = wrk_cpu
        busy_after = machine_busy()
        stop.set()
        for thread in threads:
            thread.join()
        flips = list(
            AlertFlip.objects.filter(run__isnull=False).values_list("run_id", "created_at")
        )
    end = max(f.timestamp() for f in finished.values())
    first = min(f.timestamp() for f in finished.values())
    latencies, judged_times = [], []
    for pk, at in finished.items():
        judged = judged_at(seen.get(pair_of[pk], []), pk)
        if judged is not None:
            latencies.append((judged - at.timestamp()) * 1000)
            judged_times.append(judged)
    flip_ms = [
        (created - finished[run]).total_seconds() * 1000
        for run, created in flips
        if run in finished
    ]
    arrival = len(finished) / max(end - first, 1e-6)
    judged_rate = len(judged_times) / max(max(judged_times, default=first) - first, 1e-6)
    dispatch_rate = (running_after - running_before) / max(time.time() - started, 1e-6)
    print(
        f"machine: {os.cpu_count()} cores; gunicorn 2x4; alerts worker -c 2; dispatch worker -c 2"
    )
    lines = out.stdout.strip().splitlines()
    latency = next((line.split() for line in lines if line.strip().startswith("Latency")), [])
    print(f"wrk: {lines[-2] if lines else ''}; report latency avg {' '.join(latency[1:2])}"
          f" stdev {' '.join(latency[2:3])} max {' '.join(latency[3:4])}")  # fmt: skip
    print(f"reports stored: {len(finished)} of {total} at {arrival:.0f}/s")
    print(f"runs judged: {len(judged_times)} at {judged_rate:.0f}/s (first finish to last judged)")
    print(summary("run finished -> alert judged", latencies))
    print(summary("run finished -> flip written", flip_ms))
    print(f"flips: {len(flips)}; webhook messages: {receiver.messages}")
    print(
        "CPU seconds, first report to last judged: "
        + ", ".join(f"{name} {used:.1f}" for name, used in cpu.items())
        + f"; alerts worker {cpu['alerts'] * 1000 / max(len(judged_times), 1):.2f} ms per run judged"
    )
    busy, total = (after - before for after, before in zip(busy_after, busy_before, strict=True))
    cores = total / (os.cpu_count() or 1)  # wall seconds
    print(
        f"machine: {busy / cores:.2f} of {os.cpu_count()} cores busy, of which these processes"
        f" {sum(cpu.values()) / cores:.2f} (the rest: other work on the machine)"
    )
    print(f"dispatch load: {dispatched[0]} runs fed, ~{dispatch_rate:.0f} runs/s launched")
    print(f"load average during: {load_during}; after: {loadavg()}")
    ok = judged_rate >= 500 and latencies and percentile(latencies, 99) < 2000
    print(f"target (>= 500 judged/s, p99 < 2000 ms): {'met' if ok else 'NOT met'}")
    if len(judged_times) < len(finished):
        sys.exit(f"{len(finished) - len(judged_times)} runs never judged (logs in {tmp})")


if __name__ == "__main__":
    main()
