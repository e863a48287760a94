"""Resident sample ingestion and the series query, end to end over real HTTP on the real stack.

1. Ingestion: starts gunicorn (2 processes x 4 threads, as deployed) on Postgres
   and Redis, registers --probes resident probes (one cluster each), creates the
   daily partitions as housekeeping does, then --clients keep-alive HTTP clients
   post batches of --windows windows x --samples samples (default 100 x 100 =
   10,000 samples per batch) for --seconds, each probe's batches in time order.
   Prints samples/s sustained (samples = sum of window counts acknowledged with
   202) with the batch latency p50/p95/p99 and the load average beside it.
   Every 202 must be stored: the script counts the rows afterwards.
2. Series: loads 30 days of per-minute data for 1,000 resident probes with
   generate_series SQL (rollups for all 30 days, and 1-minute raw windows for
   the last day), then asks GET /api/v1/resident/<name>/series for one probe over
   7 days at a 1-minute step (10,080 points) --queries times over HTTP with an
   API token, and prints p50/p99.

    python bench/resident_ingest.py [--seconds 20] [--clients 4] [--probes 20]
        [--windows 100] [--samples 100] [--load-probes 1000] [--load-days 30] [--queries 30]

Targets (2-core machine): >= 50,000 samples/s, batch p99 < 100 ms, series < 200 ms.
Needs Postgres and Redis on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _stack import (
    bench_env,
    django_shell,
    fresh_database,
    gunicorn,
    percentile,
    processes,
    wait_http,
)

DB = os.environ.get("BENCH_DATABASE", "kubeprobe_bench_resident")
PORT = int(os.environ.get("BENCH_PORT", "8766"))
REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "13"))
WARM = 3  # batches per probe before measuring

SETUP = """
import json
from apps.clusters.models import Cluster
from apps.resident import storage
from apps.resident.services import resident_probe_create
from datetime import UTC, datetime, timedelta
storage.partitions_ensure(days_ahead=4, today=datetime.now(UTC).date() - timedelta(days=1))
out = []
for i in range({probes}):
    cluster = Cluster.objects.create(name=f"bench-{{i:04d}}", executor="local")
    probe, token = resident_probe_create(
        fields={{"name": f"bench-{{i:04d}}", "image": "bench:1"}}, clusters=[cluster])
    out.append([probe.name, cluster.name, token])
print(json.dumps(out))
"""

LOAD = """
from datetime import UTC, datetime, timedelta
from django.contrib.auth.models import Group, User
from django.db import connection
from apps.clusters.models import Cluster
from apps.core.models import ApiToken
from apps.resident import storage
from apps.resident.models import ResidentProbe
today = datetime.now(UTC).date()
storage.partitions_ensure(days_ahead={days} + 4, today=today - timedelta(days={days} + 1))
clusters = Cluster.objects.bulk_create(
    [Cluster(name=f"load-{{i:04d}}", executor="local") for i in range({probes})])
probes = ResidentProbe.objects.bulk_create(
    [ResidentProbe(name=f"load-{{i:04d}}", image="bench:1") for i in range({probes})])
through = ResidentProbe.clusters.through
through.objects.bulk_create(
    [through(residentprobe_id=p.pk, cluster_id=c.pk) for p, c in zip(probes, clusters)])
pairs = [(p.pk, c.pk) for p, c in zip(probes, clusters)]
now = datetime.now(UTC).replace(second=0, microsecond=0)
with connection.cursor() as cur:
    for start in range(0, len(pairs), 100):
        chunk = pairs[start:start + 100]
        # 60 windows x 10 samples a minute; about 1 % of minutes have failures.
        cur.execute(
            "INSERT INTO resident_minute (probe_id, cluster_id, minute, count, failures, "
            "p50_sum, p99_sum, max_ms) SELECT p, c, m, 600, "
            "CASE WHEN random() < 0.01 THEN 6 ELSE 0 END, 600 * (2 + random()), "
            "600 * (8 + 4 * random()), 20 + 10 * random() "
            "FROM unnest(%s::int[], %s::int[]) AS t(p, c), "
            "generate_series(%s::timestamptz, %s::timestamptz, interval '1 minute') AS m",
            [[p for p, _ in chunk], [c for _, c in chunk], now - timedelta(days={days}), now],
        )
        cur.execute(
            "INSERT INTO resident_window (probe_id, cluster_id, start, \\"end\\", count, failures, "
            "p50_ms, p99_ms, max_ms, up, errors) SELECT p, c, m, m + interval '1 minute', 600, 0, "
            "2.5, 9.5, 25, true, NULL FROM unnest(%s::int[], %s::int[]) AS t(p, c), "
            "generate_series(%s::timestamptz, %s::timestamptz, interval '1 minute') AS m",
            [[p for p, _ in chunk], [c for _, c in chunk], now - timedelta(days=1), now],
        )
        print(f"loaded {{start + len(chunk)}} probes", flush=True)
    cur.execute("ANALYZE resident_minute")
    cur.execute("ANALYZE resident_window")
    cur.execute("SELECT count(*) FROM resident_minute")
    print("rollup rows", cur.fetchone()[0])
    cur.execute("SELECT count(*) FROM resident_window")
    print("window rows", cur.fetchone()[0])
user = User.objects.create_user("bench", is_staff=True)
user.groups.add(Group.objects.get(name="viewer"))
token = ApiToken(user=user, name="bench")
raw = token.issue()
token.save()
print("TOKEN", raw)
"""


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def batch_bodies(
    probe: str, cluster: str, count: int, windows: int, samples: int, start: datetime
) -> list[bytes]:
    """`count` consecutive batches of one probe, oldest first, as the runner sends them."""
    bodies = []
    step = timedelta(seconds=1)
    moment = start
    for _ in range(count):
        wins = []
        for _ in range(windows):
            end = moment + step
            wins.append(
                {
                    "start": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                    "end": end.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                    "count": samples,
                    "failures": 1,
                    "latency_ms": {"p50": 3.1, "p99": 9.8, "max": 12.0},
                    "state": "up",
                    "errors": [{"step": "get", "error": "connection refused", "count": 1}],
                }
            )
            moment = end
        body = {
            "batch_id": uuid.uuid4().hex,
            "probe": probe,
            "cluster": cluster,
            "dropped": 0,
            "windows": wins,
        }
        bodies.append(json.dumps(body).encode())
    return bodies


def client_loop(
    bodies: dict[str, tuple[str, list[bytes]]],
    names: list[str],
    stop_at: float,
    latencies: list[float],
    stored: list[int],
    errors: list[str],
    samples_per_batch: int,
    interval: float = 0.0,
    phase: float = 0.0,
) -> None:
    """Post each probe's batches in order; `interval` > 0 paces this client (s per batch),
    its first batch `phase` s late (the clients' sends interleave, as independent
    runners' do, instead of arriving together)."""
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
    index = 0
    due = time.monotonic() + phase
    while time.monotonic() < stop_at:
        for name in names:
            token, queue = bodies[name]
            if index >= len(queue) or time.monotonic() >= stop_at:
                return
            if interval:
                due += interval
                time.sleep(max(0.0, due - time.monotonic()))
            began = time.perf_counter()
            conn.request(
                "POST",
                "/api/v1/resident/samples",
                body=queue[index],
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            answer = conn.getresponse()
            answer.read()
            latencies.append((time.perf_counter() - began) * 1000)
            if answer.status == 202:
                stored.append(samples_per_batch)
            else:
                errors.append(str(answer.status))
        index += 1


def ingest(args: argparse.Namespace, env: dict[str, str]) -> None:
    probes = json.loads(
        django_shell(env, SETUP.format(probes=args.probes)).strip().splitlines()[-1]
    )
    per_probe = int(args.seconds * 200 / len(probes)) + 5 + WARM  # more than the clients can send
    # Each probe's windows are consecutive seconds ending before now.
    start = datetime.now(UTC) - timedelta(seconds=per_probe * args.windows + 60)
    bodies = {
        name: (token, batch_bodies(name, cluster, per_probe, args.windows, args.samples, start))
        for name, cluster, token in probes
    }
    names = [name for name, _, _ in probes]
    groups = [names[i :: args.clients] for i in range(args.clients)]
    latencies: list[float] = []
    stored: list[int] = []
    errors: list[str] = []  # any answer but 202, over all phases
    # Warm-up, not counted: WARM batches per probe from all clients at once, so that
    # every gunicorn thread has opened its database connection and each process has
    # looked up every probe (a cold thread's first request takes a connection set-up).
    warm = {name: (token, queue[:WARM]) for name, (token, queue) in bodies.items()}
    warmers = [
        threading.Thread(
            target=client_loop, args=(warm, group, time.monotonic() + 60, [], [], errors, 0)
        )
        for group in groups
    ]
    for thread in warmers:
        thread.start()
    for thread in warmers:
        thread.join()
    for name in names:
        bodies[name] = (bodies[name][0], bodies[name][1][WARM:])
    total_stored = 0
    for phase, rate in (("paced", args.rate), ("flat out", 0.0)):
        latencies, stored = [], []
        threads = []
        began = time.monotonic()
        stop_at = began + args.seconds
        interval = args.clients / rate if rate else 0.0
        for number, group in enumerate(groups):
            thread = threading.Thread(
                target=client_loop,
                args=(
                    bodies,
                    group,
                    stop_at,
                    latencies,
                    stored,
                    errors,
                    args.windows * args.samples,
                ),
                kwargs={"interval": interval, "phase": number * interval / len(groups)},
            )
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - began
        total_stored += len(stored)
        for name in names:  # the next phase goes on with each probe's later batches
            token, queue = bodies[name]
            bodies[name] = (token, queue[len(stored) // len(names) + 1 :])
        offered = f"{rate:g} batches/s offered" if rate else "as fast as the clients go"
        print(f"ingestion, {phase} ({offered}): batch = {args.windows} windows x "
              f"{args.samples} samples ({args.windows * args.samples} samples), "
              f"{args.clients} clients, {elapsed:.1f} s")  # fmt: skip
        print(f"  batches stored: {len(stored)}, errors: {len(errors)} {sorted(set(errors))[:5]}")
        print(f"  samples/s sustained: {sum(stored) / elapsed:,.0f}  (target >= 50,000) "
              f"with batch latency p50 {percentile(latencies, 50):.1f} ms, "
              f"p95 {percentile(latencies, 95):.1f} ms, p99 {percentile(latencies, 99):.1f} ms "
              f"(target p99 < 100 ms); load average {_load()}")  # fmt: skip
    rows = (
        django_shell(
            env,
            "from django.db import connection\n"
            "c = connection.cursor(); c.execute('SELECT count(*), sum(count) FROM resident_window')\n"
            "print(*c.fetchone())",
        )
        .strip()
        .splitlines()[-1]
        .split()
    )
    print(f"  stored windows {rows[0]}, samples {rows[1]} (warm-up batches included)")
    expected = (total_stored + WARM * len(names)) * args.windows
    assert int(rows[0]) == expected, f"{rows[0]} windows stored, {expected} acknowledged"


REUSE = """
from django.contrib.auth.models import User
from apps.core.models import ApiToken
token = ApiToken(user=User.objects.get(username="bench"), name=f"bench-{ApiToken.objects.count()}")
print("TOKEN", token.issue())
token.save()
"""


def series(args: argparse.Namespace, env: dict[str, str]) -> None:
    began = time.monotonic()
    load = REUSE if args.reuse else LOAD.format(probes=args.load_probes, days=args.load_days)
    out = django_shell(env, load)
    token = next(line.split()[1] for line in out.splitlines() if line.startswith("TOKEN"))
    counts = [
        line for line in out.splitlines() if line.endswith(tuple("0123456789")) and "rows" in line
    ]
    if args.reuse:
        print("series: on the data a previous run loaded")
    else:
        print(f"series: loaded {args.load_days} days x {args.load_probes} probes in "
              f"{time.monotonic() - began:.0f} s ({'; '.join(counts)})")  # fmt: skip
    now = datetime.now(UTC)
    since = (now - timedelta(days=7)).isoformat().replace("+00:00", "Z")
    until = now.isoformat().replace("+00:00", "Z")
    name = f"load-{args.load_probes // 2:04d}"
    path = f"/api/v1/resident/{name}/series?cluster={name}&from={since}&to={until}&step=1m"
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
    timings = []
    points = 0
    for i in range(args.queries + 3):
        began = time.perf_counter()
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        answer = conn.getresponse()
        body = answer.read()
        took = (time.perf_counter() - began) * 1000
        assert answer.status == 200, body[:300]
        if i >= 3:  # the first ones warm the caches
            timings.append(took)
            points = len(json.loads(body)["t"])
    print(f"  GET series, one probe, 7 days at 1 min ({points} points, from rollups), "
          f"{len(timings)} queries: p50 {percentile(timings, 50):.1f} ms, "
          f"p99 {percentile(timings, 99):.1f} ms  (target < 200 ms)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument(
        "--rate",
        type=float,
        default=10,
        help="batches/s of the paced phase (10 = 100,000 samples/s)",
    )
    parser.add_argument("--probes", type=int, default=20)
    parser.add_argument("--windows", type=int, default=100)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--load-probes", type=int, default=1000)
    parser.add_argument("--load-days", type=int, default=30)
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--skip-series", action="store_true")
    parser.add_argument(
        "--reuse", action="store_true", help="series only, on the data a previous run loaded"
    )
    args = parser.parse_args()
    env = bench_env(DB, REDIS_DB, f"bench-resident-{os.getpid()}")
    if not args.reuse:
        print("setting up a fresh database ...", flush=True)
        fresh_database(env, DB)
    logs = Path(tempfile.mkdtemp(prefix="bench-resident-"))
    with processes(env, logs, gunicorn=gunicorn(PORT)):
        wait_http(f"http://127.0.0.1:{PORT}/livez", 30)
        if not args.reuse:
            ingest(args, env)
        if not args.skip_series:
            series(args, env)
    print(f"(server logs in {logs})")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
