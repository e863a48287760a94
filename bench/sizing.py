"""Sizing: what each component of the real stack costs per unit of work.

Starts the stack as deployed (docs/operating.md, "Running it in production") on Postgres
and Redis, in a database and queues of its own: gunicorn (reports), a Celery
worker on the alerts queue (the post-run pipeline: diagnosis, alert judging,
notifications, dashboard pushes), daphne with `--clients` overview dashboards
(websocket clients in this process) and, unless `--no-kube`, a dispatch worker
launching pods through the kubernetes executor into the local control plane of
the tests (deploy/dev/kube_local.py). Then it measures, from /proc (user +
system CPU of each component's processes, children included) and from
Postgres and Redis themselves:

* passing reports on pairs that stay ok (the steady state): CPU of gunicorn
  per report, of the alerts worker per judged run, of daphne per pushed cell
  (per cell sent to one dashboard), of this database's Postgres backends per
  report, and WAL per report (pg_waldump following the log through the phase: records
  on this database's relations and their transactions' commits, so other
  databases on the server do not count);
* failing reports on fresh pairs: the same when every judged run flips its
  alert and one webhook notification goes out (to a receiver in this process);
* dispatch: one binding tick (fan-out, in this process) and the dispatch
  worker claiming and creating the pods: CPU per dispatched run;
* Postgres bytes per run row, its indexes and TOAST (reported runs, with steps);
  bytes per alert row;
* Redis bytes per queued Celery message (MEMORY USAGE of a queue of 1,000
  unconsumed messages) and per websocket connection in the channel layer.

Prints one table; docs/sizing.md turns it into a 10,000-cluster installation.

    python bench/sizing.py [--reports 2000] [--clients 20] [--pods 400] [--no-kube]

Needs: Postgres (local, readable pg_wal for pg_waldump) and Redis on
127.0.0.1; for dispatch the built control plane (make kube-build).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp
from _stack import (
    PG,
    ROOT,
    Meter,
    bench_env,
    children,
    daphne,
    gunicorn,
    processes,
    run,
    wait_http,
)

DB = os.environ.get("BENCH_DATABASE", "kubeprobe_bench_sizing")
PORT = int(os.environ.get("BENCH_PORT", "8770"))  # gunicorn; daphne on PORT + 1
REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "13"))
QUEUE = f"kubeprobe-sizing-{os.getpid()}"
ENV = {
    **bench_env(DB, REDIS_DB, QUEUE),
    "KUBEPROBE_PUBLIC_URL": f"http://127.0.0.1:{PORT}",
    "KUBEPROBE_INSTALLATION": QUEUE,
}
PASSING = json.dumps(
    {"ok": True, "steps": [{"name": "create", "ok": True, "duration_ms": 40},
                           {"name": "ready", "ok": True, "duration_ms": 900}],
     "metrics": {"ready_ms": 900}}
).encode()  # fmt: skip
FAILING = json.dumps(
    {"ok": False, "errors": ["step ready failed: Failed to create pod sandbox: rpc error"],
     "steps": [{"name": "create", "ok": True, "duration_ms": 40},
               {"name": "ready", "ok": False, "duration_ms": 900,
                "error": "Failed to create pod sandbox"}], "metrics": {}}
).encode()  # fmt: skip


def setup_django() -> None:
    os.environ.update(ENV)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kubeprobe_site.settings")
    sys.path[:0] = [str(ROOT), str(ROOT / "deploy" / "dev")]
    import django

    django.setup()


# --- WAL ------------------------------------------------------------------------


def sql(query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(query, params or [])
        return list(cursor.fetchall())


def wal_lsn() -> str:
    return str(sql("SELECT pg_current_wal_insert_lsn()")[0][0])


WAL_RECORD = re.compile(
    r"len \(rec/tot\):\s*\d+/\s*(\d+), tx:\s*(\d+), lsn: ([0-9A-F]+)/([0-9A-F]+)"
)


def _lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) + int(low, 16)


class WalWatch:
    """Bytes of WAL written for this database from now until stop(): records on its
    relations and their transactions' commits. pg_waldump follows the log as it is
    written (-f): on a busy server the phase's first segments are recycled by its end."""

    def __init__(self) -> None:
        self.start = wal_lsn()
        self.oid = str(sql("SELECT oid FROM pg_database WHERE datname = current_database()")[0][0])
        directory = sql("SHOW data_directory")[0][0] + "/pg_wal"
        self.process = subprocess.Popen(
            ["/usr/lib/postgresql/15/bin/pg_waldump", "-f", "-p", directory, "-s", self.start],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        self.records: list[tuple[int, str, int, bool, bool]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            found = WAL_RECORD.search(line)
            if found:
                lsn = (int(found.group(3), 16) << 32) + int(found.group(4), 16)
                ours = f"/{self.oid}/" in line
                commit = line.startswith("rmgr: Transaction")
                self.records.append((lsn, found.group(2), int(found.group(1)), ours, commit))

    def stop(self) -> int:
        end = _lsn(wal_lsn())
        sql("SELECT pg_switch_wal()")  # pushes the last records out to the follower
        # The follower parses every database's WAL: on a busy server it lags behind.
        deadline = time.monotonic() + 600
        while not any(r[0] >= end for r in self.records[-50:]) and time.monotonic() < deadline:
            time.sleep(0.2)
        if time.monotonic() >= deadline:
            print("WAL follower did not reach the phase's end: WAL undercounted", file=sys.stderr)
        self.process.terminate()
        self.process.wait()
        self.thread.join(timeout=10)
        mine = {tx for lsn, tx, _, ours, _ in self.records if ours and lsn < end}
        return sum(
            size for lsn, tx, size, ours, commit in self.records
            if lsn < end and (ours or (commit and tx in mine))
        )  # fmt: skip


# --- the work -------------------------------------------------------------------


def make_runs(pairs: list[tuple[int, int]], label: str) -> list[tuple[int, str]]:
    """One running run per (case, cluster) pair; returns (run id, token)."""
    from datetime import timedelta

    from django.utils import timezone

    from apps.runs.models import ProbeRun

    now = timezone.now()
    tokens = [secrets.token_urlsafe(24) for _ in pairs]
    rows = [
        ProbeRun(case_id=case, cluster_id=cluster, trigger="schedule", state="running",
                 dispatched_at=now, deadline=now + timedelta(hours=1), executor="kubernetes",
                 token_hash=hashlib.sha256(t.encode()).hexdigest(),
                 idempotency_key=f"{label}:{case}:{cluster}")
        for (case, cluster), t in zip(pairs, tokens, strict=True)
    ]  # fmt: skip
    ProbeRun.objects.bulk_create(rows, batch_size=2000)
    ids = dict(
        ProbeRun.objects.filter(idempotency_key__startswith=f"{label}:").values_list(
            "idempotency_key", "id"
        )
    )
    return [(ids[f"{label}:{c}:{k}"], t) for (c, k), t in zip(pairs, tokens, strict=True)]


def post(run_id: int, token: str, body: bytes) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{PORT}/api/v1/runs/{run_id}/report", data=body, method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=180) as answer:
        assert answer.status == 200


def report_all(runs: list[tuple[int, str]], body: bytes) -> float:
    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda r: post(r[0], r[1], body), runs))
    return time.monotonic() - started


def wait_judged(run_ids: list[int], seconds: float = 300) -> None:
    from apps.alerts.models import Alert

    deadline = time.monotonic() + seconds
    while Alert.objects.filter(latest_run_id__in=run_ids).count() < len(run_ids):
        if time.monotonic() > deadline:
            raise SystemExit("runs were not judged in time: see the alerts worker's log")
        time.sleep(0.2)


class Dashboards:
    """Overview pages over websockets; counts the cells each was sent."""

    def __init__(self, count: int, cookie: str) -> None:
        self.cells = [0] * count
        self.ready = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.count, self.cookie = count, cookie
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._all(), self.loop)
        if not self.ready.wait(60):
            raise SystemExit("the dashboards did not subscribe")

    async def _all(self) -> None:
        subscribed = [asyncio.Event() for _ in range(self.count)]
        async with aiohttp.ClientSession() as session:
            tasks = [asyncio.create_task(self._one(session, i, subscribed[i]))
                     for i in range(self.count)]  # fmt: skip
            await asyncio.gather(*(e.wait() for e in subscribed))
            self.ready.set()
            await asyncio.gather(*tasks)

    async def _one(self, session: aiohttp.ClientSession, index: int, ok: asyncio.Event) -> None:
        url = f"ws://127.0.0.1:{PORT + 1}/ws/live/"
        headers = {"Origin": f"http://127.0.0.1:{PORT + 1}", "Cookie": f"sessionid={self.cookie}"}
        async with session.ws_connect(url, headers=headers) as ws:
            await ws.send_json({"type": "subscribe", "scope": "overview"})
            async for message in ws:
                frame = json.loads(message.data)
                if frame["type"] == "subscribed":
                    ok.set()
                elif frame["type"] == "cells":
                    self.cells[index] += len(frame["cells"])

    def total(self) -> int:
        return sum(self.cells)

    def settle(self, quiet: float = 1.5) -> None:
        """Wait until no cell arrived for `quiet` seconds."""
        last, since = self.total(), time.monotonic()
        while time.monotonic() - since < quiet:
            time.sleep(0.1)
            if self.total() != last:
                last, since = self.total(), time.monotonic()


class Receiver:
    """The webhook channel's receiver: counts requests."""

    def __init__(self) -> None:
        self.count = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.count += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"


# --- Postgres and Redis sizes -----------------------------------------------------


def table_bytes(table: str, where: str = "") -> dict[str, float]:
    heap, toast, indexes, total = sql(
        "SELECT pg_relation_size(%s), pg_total_relation_size(%s) - pg_relation_size(%s)"
        " - pg_indexes_size(%s), pg_indexes_size(%s), pg_total_relation_size(%s)",
        [table] * 6,
    )[0]
    rows = sql(f"SELECT count(*) FROM {table} {where}")[0][0]
    return {"rows": rows, "heap": heap, "toast": toast, "indexes": indexes, "total": total}


def redis_message_bytes(count: int = 1000) -> dict[str, float]:
    """MEMORY USAGE of a queue holding `count` messages of each kind, per message."""
    import redis

    from kubeprobe_site.celery import app

    client = redis.Redis.from_url(ENV["REDIS_URL"])
    kinds = {
        "fire_binding": ("apps.scheduling.tasks.fire_binding", {"binding_id": 1}),
        "dispatch_pending": ("apps.runs.tasks.dispatch_pending", {}),
        "process_finished_runs (20 pairs)": (
            "apps.postrun.tasks.process_finished_runs",
            {"pairs": [[i, i] for i in range(20)]},
        ),
    }
    out = {}
    for label, (task, kwargs) in kinds.items():
        queue = f"{QUEUE}.measure"
        with app.producer_or_acquire() as producer:
            for _ in range(count):
                app.send_task(task, kwargs=kwargs, queue=queue, producer=producer)
        used = client.memory_usage(queue, samples=0) or 0
        out[label] = used / count
        client.delete(queue)
    return out


def redis_layer_bytes() -> tuple[int, int, float]:
    """The Channels layer in this Redis database: bytes and members of its groups
    (sorted sets of channel names), and bytes per message waiting in channel lists."""
    import redis

    client = redis.Redis.from_url(ENV["REDIS_URL"])
    group_bytes = members = 0
    waiting: list[tuple[int, int]] = []
    for key in client.scan_iter("asgi*", count=1000):
        kind = client.type(key)
        if kind == b"zset":
            group_bytes += client.memory_usage(key, samples=0) or 0
            members += client.zcard(key)
        elif kind == b"list" and client.llen(key):
            waiting.append((client.memory_usage(key, samples=0) or 0, client.llen(key)))
    per_message = sum(b for b, _ in waiting) / max(1, sum(n for _, n in waiting))
    return group_bytes, members, per_message


# --- the run ----------------------------------------------------------------------


def prepare(clusters: int, cases: int, receiver_url: str) -> tuple[list[tuple[int, int]], str]:
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.test import Client

    from apps.alerts import channels
    from apps.alerts.models import AlertRule
    from apps.catalog.models import Case, CaseTemplate
    from apps.clusters.models import Cluster

    drop, create = f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)", f"CREATE DATABASE {DB}"
    run(["psql", PG + "/postgres", "-q", "-c", drop, "-c", create], ENV)
    call_command("migrate", verbosity=0)
    AlertRule.objects.filter(name="default").update(consecutive_failures=1)
    template = CaseTemplate.objects.create(name="sizing", image="registry.k8s.io/pause:3.10")
    made = [Case.objects.create(name=f"case-{i:02d}", template=template) for i in range(cases)]
    fleet = Cluster.objects.bulk_create(
        [Cluster(name=f"cluster-{i:04d}", executor="kubernetes") for i in range(clusters)]
    )
    channels.channel_save(name="hook", kind="webhook", config={"url": receiver_url})
    user = User.objects.create_user("sizing-viewer", password=secrets.token_urlsafe(16),
                                    is_staff=True)  # fmt: skip
    user.groups.add(Group.objects.get(name="viewer"))
    client = Client()
    client.force_login(user)
    pairs = [(c.pk, k.pk) for k in fleet for c in made]
    return pairs, str(client.cookies["sessionid"].value)


def report_phase(
    name: str, key: str, pairs: list[tuple[int, int]], body: bytes, groups: dict[str, list[int]],
    dashboards: Dashboards, receiver: Receiver,
) -> dict[str, Any]:  # fmt: skip
    runs = make_runs(pairs, key)
    dashboards.settle()  # the previous phase's last cells are not this one's
    cells, sent = dashboards.total(), receiver.count
    wal = WalWatch()
    meter = Meter(groups)
    seconds = report_all(runs, body)
    wait_judged([r for r, _ in runs])
    # The cells reach the pages a flush window (0.2 s) after judgement.
    deadline = time.monotonic() + 60
    while dashboards.total() - cells < len(runs) * dashboards.count:
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if body is FAILING:
        while receiver.count == sent and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2)  # group wait: the last flips' messages
    used = meter.stop()
    return {
        "name": name, "reports": len(runs), "seconds": seconds, "cpu": used,
        "cells": dashboards.total() - cells, "notifications": receiver.count - sent,
        "wal": wal.stop(),
    }  # fmt: skip


def dispatch_phase(pods: int, workdir: Path, pairs_per_cluster: int) -> dict[str, Any]:
    """One tick over kubernetes clusters of the local control plane; the dispatch
    worker claims and creates the pods."""
    from kube_local import LocalKube

    from apps.catalog.models import Case
    from apps.clusters.models import Cluster, Executor
    from apps.runs.models import ProbeRun
    from apps.scheduling.models import Binding
    from apps.scheduling.services import binding_fire_schedule

    kube = LocalKube(workdir / "kube", nodes=3).start()
    try:
        kubeconfig = kube.kubeconfig()
        clusters = []
        for i in range(max(1, pods // pairs_per_cluster)):
            kube.create_namespace(f"sizing-{i}")
            clusters.append(Cluster.objects.create(
                name=f"kube-{i}", executor=Executor.KUBERNETES, kubeconfig=kubeconfig,
                namespace=f"sizing-{i}", api_qps=100,
            ))  # fmt: skip
        binding = Binding.objects.create(name="sizing", interval_seconds=3600)
        binding.clusters.set(clusters)
        binding.cases.set(Case.objects.order_by("pk")[:pairs_per_cluster])
        command = [sys.executable, "-m", "celery", "-A", "kubeprobe_site", "worker",
                   "-Q", f"{QUEUE}.dispatch", "-c", "4", "--loglevel", "INFO",
                   "--without-gossip", "--without-mingle", "-n", "dispatch@%h"]  # fmt: skip
        with processes(ENV, workdir, dispatch=command):
            log = workdir / "dispatch.log"
            deadline = time.monotonic() + 120
            while "ready." not in log.read_text(errors="replace"):
                if time.monotonic() > deadline:
                    raise SystemExit(f"the dispatch worker did not start: {log}")
                time.sleep(0.2)
            worker = [int(p) for p in children(os.getpid()) if "dispatch" in _cmdline(p)]
            wal = WalWatch()
            meter = Meter({"dispatch worker": worker})
            started = time.monotonic()
            tick = time.process_time()
            created = binding_fire_schedule(binding_id=binding.pk).created
            fan_out = time.process_time() - tick
            mine = ProbeRun.objects.filter(pk__in=created)
            while mine.filter(state__in=("pending", "dispatched")).exists():
                if time.monotonic() - started > 600:
                    raise SystemExit("dispatch did not finish in 10 minutes")
                time.sleep(0.1)
            seconds = time.monotonic() - started
            used = meter.stop()
            wal_used = wal.stop()
        running = mine.filter(state="running").count()
        return {
            "name": "dispatch", "runs": len(created), "running": running, "seconds": seconds,
            "cpu": used, "fan_out_cpu": fan_out, "wal": wal_used,
        }  # fmt: skip
    finally:
        kube.stop()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def per(value: float, count: int, scale: float = 1000.0) -> str:
    return f"{value / count * scale:.2f}" if count else "-"


def print_table(phases: list[dict[str, Any]], sizes: dict[str, Any], clients: int) -> None:
    print(f"\n{'phase':<34}{'units':>8}  component: CPU ms per unit")
    for phase in phases:
        units = phase.get("reports") or phase.get("runs") or 0
        cpu = phase["cpu"]
        parts = [
            f"{name} {per(seconds, units)}" for name, seconds in cpu.items() if name != "bench"
        ]
        if "fan_out_cpu" in phase:
            parts.append(f"fan-out (tick) {per(phase['fan_out_cpu'], units)}")
        print(f"{phase['name']:<34}{units:>8}  " + ", ".join(parts))
        if phase.get("cells"):
            print(f"{'':<44}daphne per cell sent to one page {per(cpu['daphne'], phase['cells'])}"
                  f" ({phase['cells']} cells to {clients} pages)")  # fmt: skip
        if phase.get("notifications"):
            print(f"{'':<44}{phase['notifications']} webhook notifications")
        print(f"{'':<44}WAL {phase['wal'] / max(1, units):.0f} bytes per unit;"
              f" {units / phase['seconds']:.0f} units/s")  # fmt: skip
    print("\nPostgres (bytes per row):")
    for table, size in sizes["tables"].items():
        rows = max(1, size["rows"])
        print(f"  {table:<24} {size['rows']:>7} rows: heap {size['heap'] / rows:.0f}, TOAST"
              f" {size['toast'] / rows:.0f}, indexes {size['indexes'] / rows:.0f},"
              f" total {size['total'] / rows:.0f}")  # fmt: skip
    print("Redis:")
    for label, size in sizes["messages"].items():
        print(f"  queued {label}: {size:.0f} bytes per message")
    layer, members, message = sizes["layer"]
    print(f"  channel layer, {clients} pages connected: groups {layer} bytes more,"
          f" {members} more memberships, {layer / max(1, clients):.0f} bytes per page;"
          f" a message waiting in a channel list: {message:.0f} bytes")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reports", type=int, default=2000, help="reports per phase")
    parser.add_argument("--clients", type=int, default=20, help="overview dashboards")
    parser.add_argument("--pods", type=int, default=400, help="runs dispatched as pods")
    parser.add_argument("--no-kube", action="store_true", help="skip the dispatch phase")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    opts = parser.parse_args()
    setup_django()
    from django.db import connection

    workdir = Path(tempfile.mkdtemp(prefix="kubeprobe-sizing-"))
    receiver = Receiver()
    cases = 20
    clusters = -(-opts.reports * 2 // cases)  # two sets of pairs: passing, failing
    print(f"preparing {DB}: {clusters} clusters x {cases} cases ...", flush=True)
    pairs, cookie = prepare(clusters, cases, receiver.url)
    n = opts.reports
    alerts = [sys.executable, "-m", "celery", "-A", "kubeprobe_site", "worker",
              "-Q", f"{QUEUE}.alerts", "-c", "2", "--loglevel", "WARNING",
              "--without-gossip", "--without-mingle", "-n", "alerts@%h"]  # fmt: skip
    commands = {"web": gunicorn(PORT, threads=8), "ws": daphne(PORT + 1), "alerts": alerts}
    phases: list[dict[str, Any]] = []
    try:
        with processes(ENV, workdir, **commands):
            wait_http(f"http://127.0.0.1:{PORT}/livez", 300)
            wait_http(f"http://127.0.0.1:{PORT + 1}/livez", 300)
            me = children(os.getpid())
            groups = {
                name: [p for p in me if marker in _cmdline(p)]
                for name, marker in (("gunicorn", "gunicorn"), ("alerts worker", "alerts@"),
                                     ("daphne", "daphne"))
            }  # fmt: skip
            layer_before = redis_layer_bytes()
            dashboards = Dashboards(opts.clients, cookie)
            print(f"stack up; load average {os.getloadavg()[0]:.1f}", flush=True)
            # Warm-up: the pairs' first judgement creates their alert rows (ok).
            report_phase("warm-up", "warm", pairs[:n], PASSING, groups, dashboards, receiver)
            phases.append(
                report_phase("reports, passing (no change)", "pass", pairs[:n], PASSING, groups,
                             dashboards, receiver)
            )  # fmt: skip
            phases.append(
                report_phase("reports, failing (each flips)", "fail", pairs[n : 2 * n], FAILING,
                             groups, dashboards, receiver)
            )  # fmt: skip
            print(f"reports measured; load average {os.getloadavg()[0]:.1f}", flush=True)
            dashboards.settle()
            layer_after = redis_layer_bytes()
            layer = (layer_after[0] - layer_before[0], layer_after[1] - layer_before[1],
                     max(layer_after[2], layer_before[2]))  # fmt: skip
            if not opts.no_kube:
                phases.append(dispatch_phase(opts.pods, workdir, 20))
        sizes = {
            "tables": {
                "runs_proberun": table_bytes("runs_proberun", "WHERE finished_at IS NOT NULL"),
                "alerts_alert": table_bytes("alerts_alert"),
                "alerts_alertflip": table_bytes("alerts_alertflip"),
            },
            "messages": redis_message_bytes(),
            "layer": layer,
        }
        load = os.getloadavg()
        print(f"\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} cores;"
              f" load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}; gunicorn 2x8,"
              f" alerts worker -c 2, daphne, dispatch worker -c 4")  # fmt: skip
        print_table(phases, sizes, opts.clients)
    finally:
        connection.close()
        if not opts.keep:
            run(["psql", PG + "/postgres", "-q", "-c", f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)"],
                ENV)  # fmt: skip
        import redis

        client = redis.Redis.from_url(ENV["REDIS_URL"])
        for key in client.scan_iter(f"*{QUEUE}*"):
            client.delete(key)


if __name__ == "__main__":
    main()
