"""Live push latency: from a failing report accepted to its cell at 100 open dashboards.

Starts the real stack on Postgres and Redis as deployed (docs/operating.md, "Running it
in production"): daphne (ASGI) for the websockets, gunicorn for the report API
(``--http daphne`` serves both from daphne, as the quick start does), and a
Celery worker on a queue of its own (alert evaluation, which announces
pair_changed and so pushes the cell).
Opens --clients websocket clients logged in as a viewer (a session cookie),
each subscribed to the overview. Then it sends failing reports at a steady
pace, each on its own (case, cluster) pair, and measures for every (update,
client) the time from the report's 200 to the cell arriving at that client
with alert state "firing". Prints p50/p95/p99/max; the target is p99 < 500 ms.

    python bench/live_push.py [--clients 100] [--updates 300] [--rate 10] [--http gunicorn]

Needs: Postgres and Redis on 127.0.0.1; aiohttp (a dev dependency).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from _stack import (
    FAILING_REPORT,
    bench_env,
    celery_worker,
    daphne,
    django_shell,
    failing_runs_code,
    fresh_database,
    gunicorn,
    percentile,
    processes,
    wait_http,
)

DB = os.environ.get("BENCH_DATABASE", "kubeprobe_bench_live")
PORT = int(os.environ.get("BENCH_PORT", "8767"))  # daphne; gunicorn on PORT + 1
WARMUP = 10  # pairs reported before the clock starts: the worker's first tasks are slow


def prepare(env: dict[str, str], pairs: int, out: Path) -> str:
    """Fresh database, one dispatched run per pair, a viewer; returns its session key."""
    fresh_database(env, DB)
    viewer = """
from django.contrib.auth.models import Group, User
from django.test import Client
user = User.objects.create_user("bench-viewer", password=secrets.token_urlsafe(16), is_staff=True)
user.groups.add(Group.objects.get(name="viewer"))
client = Client()
client.force_login(user)
print(client.cookies["sessionid"].value)
"""
    return django_shell(env, failing_runs_code(pairs, out) + viewer).strip().splitlines()[-1]


class Dashboard:
    """One browser page: records when each pair first arrives as firing."""

    def __init__(self) -> None:
        self.arrived: dict[tuple[int, int], float] = {}
        self.frames = 0

    async def run(self, session: aiohttp.ClientSession, cookie: str, ready: asyncio.Event) -> None:
        async with session.ws_connect(
            f"ws://127.0.0.1:{PORT}/ws/live/",
            headers={"Origin": f"http://127.0.0.1:{PORT}", "Cookie": f"sessionid={cookie}"},
        ) as ws:
            await ws.send_json({"type": "subscribe", "scope": "overview"})
            answer = await ws.receive_json(timeout=10)
            assert answer["type"] == "subscribed", answer
            ready.set()
            async for message in ws:
                now = time.monotonic()
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                frame = json.loads(message.data)
                if frame["type"] != "cells":
                    continue
                self.frames += 1
                for cell in frame["cells"]:
                    if cell.get("alert_state") == "firing":
                        self.arrived.setdefault((cell["case_id"], cell["cluster_id"]), now)


async def drive(
    opts: argparse.Namespace, cookie: str, pairs: list[list[str]], http_port: int
) -> tuple[dict[tuple[int, int], float], list[Dashboard]]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        dashboards = [Dashboard() for _ in range(opts.clients)]
        readies = [asyncio.Event() for _ in dashboards]
        tasks = [
            asyncio.create_task(d.run(session, cookie, r))
            for d, r in zip(dashboards, readies, strict=True)
        ]
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)

        # A connection per report: gunicorn closes idle keep-alive connections
        # after 2 s, and a POST on one it just closed fails without a retry.
        posting = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))

        async def report(run_id: str, token: str) -> None:
            async with posting.post(
                f"http://127.0.0.1:{http_port}/api/v1/runs/{run_id}/report",
                data=FAILING_REPORT,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            ) as answer:
                assert answer.status == 200, (answer.status, await answer.text())

        for run_id, token, *_ in pairs[:WARMUP]:
            await report(run_id, token)
        await asyncio.sleep(2)

        sent: dict[tuple[int, int], float] = {}

        async def timed(run_id: str, token: str, key: tuple[int, int]) -> None:
            await report(run_id, token)
            sent[key] = time.monotonic()

        interval = 1.0 / opts.rate
        start = time.monotonic()
        posts = []
        for index, (run_id, token, case_id, cluster_id, *_) in enumerate(pairs[WARMUP:]):
            pause = start + index * interval - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            key = (int(case_id), int(cluster_id))
            posts.append(asyncio.create_task(timed(run_id, token, key)))
        await asyncio.gather(*posts)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(
            len(d.arrived.keys() & sent.keys()) < len(sent) for d in dashboards
        ):
            await asyncio.sleep(0.05)
        await posting.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return sent, dashboards


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--rate", type=float, default=10.0, help="failing reports per second")
    parser.add_argument("--http", choices=("gunicorn", "daphne"), default="gunicorn")
    opts = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kubeprobe-live-bench-"))
    queue = f"kubeprobe-live-bench-{os.getpid()}"
    env = bench_env(DB, 12, queue)
    runs_file = tmp / "runs.txt"
    total = opts.updates + WARMUP
    print(f"preparing {total} dispatched runs in {DB} ...", flush=True)
    cookie = prepare(env, total, runs_file)
    pairs = [line.split() for line in runs_file.read_text().splitlines()]
    http_port = PORT + 1 if opts.http == "gunicorn" else PORT
    commands = {"server": daphne(PORT), "worker": celery_worker(queue)}
    if opts.http == "gunicorn":
        commands["http"] = gunicorn(http_port)
    with processes(env, tmp, **commands):
        wait_http(f"http://127.0.0.1:{PORT}/livez", 30)
        wait_http(f"http://127.0.0.1:{http_port}/livez", 30)
        time.sleep(3)  # let the worker connect to the broker before the clock starts
        sent, dashboards = asyncio.run(drive(opts, cookie, pairs, http_port))
    latencies = [
        (d.arrived[key] - t) * 1000
        for d in dashboards
        for key, t in sent.items()
        if key in d.arrived
    ]
    expected = len(sent) * len(dashboards)
    frames = sum(d.frames for d in dashboards) / max(1, len(dashboards))
    print(
        f"machine: {os.cpu_count()} cores; websockets: daphne (1 process); reports: "
        f"{'gunicorn 2x4' if opts.http == 'gunicorn' else 'the same daphne'}; "
        "celery worker -c 2; Postgres + Redis local"
    )
    print(
        f"dashboards: {len(dashboards)}; failing reports: {len(sent)} at {opts.rate:g}/s; "
        f"cells frames per dashboard: {frames:.0f}"
    )
    if latencies:
        p50, p95, p99 = (percentile(latencies, p) for p in (50, 95, 99))
        print(
            f"report -> cell at a dashboard ({len(latencies)} pairs): p50 {p50:.0f} ms  "
            f"p95 {p95:.0f} ms  p99 {p99:.0f} ms  max {max(latencies):.0f} ms  "
            f"mean {statistics.mean(latencies):.0f} ms"
        )
        print(f"target p99 < 500 ms: {'met' if p99 < 500 else 'NOT met'}")
    if len(latencies) < expected:
        sys.exit(f"{expected - len(latencies)} of {expected} cells never arrived (logs in {tmp})")


if __name__ == "__main__":
    main()
