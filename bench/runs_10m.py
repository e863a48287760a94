"""10 million runs: report ingestion and the dashboard pages at 100,000 runs, then at 10M.

In a scratch database (BENCH_DATABASE, default kubeprobe_bench_10m):

1. 20 cases × 10 clusters; 100,000 finished runs over the last 7 days in the
   current partition of the runs table (created through the table, every index
   maintained), their hourly rollups backfilled.
2. Measures report ingestion over real HTTP (gunicorn + wrk, bench/ingest.py's
   machinery: rounds of /livez then reports, the median round), then the
   overview, cluster, case and run pages (Django's test client in this process:
   server time, the median of --repeats).
3. Grows the table to 10M: 9.9M more finished runs, 8 to 38 days old, as ten
   partitions of three days each, written with generate_series into plain
   tables and attached (Postgres builds their indexes once). Prints how long.
4. Measures the same again (pages first, then ingestion, so that both page
   measurements see the same recent runs), and prints both and the ratios
   (targets: ingestion within 10%, pages within ±20%).
5. Retention: drops the partitions past 30 days (apps/runs/partitions.py)
   and prints how long that took; then rebuilds all rollups from scratch
   (the backfill command's work) and prints how long.

    python bench/runs_10m.py [--history 9900000] [--repeats 15] [--seconds 8] [--rounds 3]

Needs: wrk (apt-get install wrk), Postgres and Redis on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from _stack import ENCRYPTION_KEY, PG, ROOT, fresh_database, wait_http
from ingest import LUA, measured, phase_failure, wrk

DB = os.environ.get("BENCH_DATABASE", "kubeprobe_bench_10m")
PORT = int(os.environ.get("BENCH_PORT", "8766"))
CASES, CLUSTERS = 20, 10
RECENT = 100_000
WINDOWS = 10  # history partitions
WINDOW_DAYS = 3
CURRENT = WINDOWS + 2  # the partition recent runs go to; history is 2 .. WINDOWS + 1

ENV = {
    "DATABASE_URL": f"{PG}/{DB}",
    "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14"),
    "SECRET_KEY": "bench-" + "x" * 60,
    "KUBEPROBE_ENCRYPTION_KEY": ENCRYPTION_KEY,
    "KUBEPROBE_STATIC_MANIFEST": "false",
    "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
    "CELERY_TASK_DEFAULT_QUEUE": "kubeprobe-bench-10m",
    "LOG_LEVEL": "WARNING",
    "DATABASE_CONN_MAX_AGE": "60",
}


def _columns(case_ids: list[int], cluster_ids: list[int]) -> dict[str, str]:
    """SQL per runs column for row g of generate_series (created_at comes as `t`)."""
    failed = "(mod(g, 10) = 0)"
    return {
        "case_id": f"(ARRAY{case_ids}::bigint[])[1 + mod(g, {len(case_ids)})]",
        "cluster_id": f"(ARRAY{cluster_ids}::bigint[])[1 + mod(g / {len(case_ids)}, {len(cluster_ids)})]",
        "binding_id": "NULL",
        "trigger": "'schedule'",
        "state": f"CASE WHEN {failed} THEN 'failed' ELSE 'succeeded' END",
        "idempotency_key": "'tick:' || g::text",
        "token_hash": "md5(g::text) || md5((g + 1)::text)",
        "event_id": "NULL",
        "requested_by_id": "NULL",
        "executor": "'local'",
        "pod_name": "'kp-run-' || g::text",
        "created_at": "t",
        "enqueued_at": "t",
        "redispatch_after": "interval '60 seconds'",
        "dispatch_attempts": "1",
        "dispatched_at": "t + interval '1 second'",
        "finished_at": "t + interval '20 seconds'",
        "deadline": "t + interval '10 minutes'",
        "duration_ms": "200 + mod(g::bigint * 7919, 4000)",
        "ok": f"NOT {failed}",
        "errors": f"CASE WHEN {failed} THEN '[\"etcd: context deadline exceeded\"]'::jsonb"
        " ELSE '[]'::jsonb END",
        "steps": '\'[{"name": "put", "ok": true, "duration_ms": 3},'
        ' {"name": "get", "ok": true, "duration_ms": 5}]\'::jsonb',
        "metrics": "'{\"put_ms\": 3}'::jsonb",
        "reason": "''",
        "log_tail": "''",
        "diagnostics": "'{}'::jsonb",
        "root_cause": "''",
        "root_cause_component": "''",
        "root_cause_confidence": "NULL",
        "root_cause_source": "''",
        "root_cause_summary": "''",
        "cleaned_at": "t + interval '30 seconds'",
        "keep_until": "NULL",
    }


def _insert_sql(table: str, columns: dict[str, str], with_id: str | None) -> str:
    names = list(columns)
    exprs = [columns[n] for n in names]
    if with_id is not None:
        names, exprs = ["id", *names], [with_id, *exprs]
    return (
        f"INSERT INTO {table} ({', '.join(names)}) SELECT {', '.join(exprs)}"
        " FROM (SELECT g, %(start)s::timestamptz + (%(span)s::interval * g / %(n)s) AS t"
        " FROM generate_series(0, %(n)s - 1) AS g) s"
    )


def setup() -> dict[str, Any]:
    from django.contrib.auth.models import User
    from django.db import connection
    from django.utils import timezone

    from apps.catalog.models import Case, CaseTemplate
    from apps.clusters.models import Cluster
    from apps.runs import partitions
    from apps.runs.models import ProbeRun, RunPartition
    from apps.runs.rollups import rollups_rebuild

    template = CaseTemplate.objects.create(name="bench", image="x")
    cases = [Case.objects.create(name=f"case-{i:02d}", template=template) for i in range(CASES)]
    clusters = Cluster.objects.bulk_create(
        [Cluster(name=f"cluster-{i:02d}", executor="local") for i in range(CLUSTERS)]
    )
    User.objects.create_superuser("bench", password=secrets.token_urlsafe(16))
    concrete = {f.column for f in ProbeRun._meta.concrete_fields} - {"id"}
    columns = _columns([c.pk for c in cases], [k.pk for k in clusters])
    assert set(columns) == concrete, concrete ^ set(columns)
    now = timezone.now()
    with connection.cursor() as cur:
        # Recent runs go to partition CURRENT; history below it, in time order.
        for number in (CURRENT, CURRENT + 1):
            partitions._create(cur, number)
        cur.execute(
            "SELECT setval(%s, %s, false)", [partitions.SEQUENCE, CURRENT * partitions.STRIDE]
        )
        RunPartition.objects.create(number=CURRENT, opened_at=now - timedelta(days=7, hours=1))
        RunPartition.objects.create(number=CURRENT + 1)
        started = time.monotonic()
        cur.execute(
            _insert_sql(partitions.TABLE, columns, None),
            {
                "start": now - timedelta(days=7),
                "span": timedelta(days=7) - timedelta(minutes=5),
                "n": RECENT,
            },
        )
        cur.execute("ANALYZE runs_proberun")
    print(
        f"{RECENT} recent finished runs inserted in {time.monotonic() - started:.1f} s", flush=True
    )
    started = time.monotonic()
    rollups_rebuild()
    print(f"rollups backfilled in {time.monotonic() - started:.1f} s", flush=True)
    return {"now": now, "columns": columns, "cases": cases, "clusters": clusters}


def grow(state: dict[str, Any], history: int) -> float:
    """9.9M finished runs 8 to 38 days old, WINDOWS partitions written unindexed, then attached."""
    from django.db import connection

    from apps.runs import partitions
    from apps.runs.models import RunPartition

    started = time.monotonic()
    per = history // WINDOWS
    for i in range(WINDOWS):
        number = 2 + i
        name = partitions.partition_name(number)
        start = state["now"] - timedelta(days=8 + WINDOW_DAYS * (WINDOWS - i))
        with connection.cursor() as cur:
            cur.execute(
                f"CREATE TABLE {name} (LIKE {partitions.TABLE} INCLUDING DEFAULTS"
                " INCLUDING CONSTRAINTS)"
            )
            cur.execute(
                _insert_sql(name, state["columns"], f"{number * partitions.STRIDE} + g"),
                {"start": start, "span": timedelta(days=WINDOW_DAYS), "n": per},
            )
            cur.execute(f"CREATE UNIQUE INDEX {name}_idem ON {name} (idempotency_key)")
            cur.execute(
                f"ALTER TABLE {partitions.TABLE} ATTACH PARTITION {name}"
                f" FOR VALUES FROM ({number * partitions.STRIDE}) TO ({(number + 1) * partitions.STRIDE})"
            )
            cur.execute(f"ANALYZE {name}")
        RunPartition.objects.create(number=number, opened_at=start)
        print(
            f"  partition {number}: {per} runs, {time.monotonic() - started:.0f} s so far",
            flush=True,
        )
    return time.monotonic() - started


def running_runs(count: int, tokens_file: Path) -> None:
    """`count` dispatched runs with known tokens, for wrk to report."""
    import hashlib

    from django.db import connection
    from django.utils import timezone

    from apps.catalog.models import Case
    from apps.clusters.models import Cluster
    from apps.runs.models import ProbeRun

    tag = secrets.token_hex(4)
    tokens = [secrets.token_urlsafe(32) for _ in range(count)]
    now = timezone.now()
    cases, clusters = list(Case.objects.all()), list(Cluster.objects.all())
    ProbeRun.objects.bulk_create(
        [
            ProbeRun(
                case=cases[i % len(cases)], cluster=clusters[i % len(clusters)],
                trigger="manual", state="running", dispatched_at=now,
                deadline=now + timedelta(hours=2),
                token_hash=hashlib.sha256(t.encode()).hexdigest(), idempotency_key=f"{tag}:{i}",
            )
            for i, t in enumerate(tokens)
        ],
        batch_size=5000,
    )  # fmt: skip
    connection.cursor().execute("ANALYZE runs_proberun")
    ids = dict(
        ProbeRun.objects.filter(idempotency_key__startswith=f"{tag}:").values_list(
            "idempotency_key", "id"
        )
    )
    tokens_file.write_text("".join(f"{ids[f'{tag}:{i}']} {t}\n" for i, t in enumerate(tokens)))


def ingest(opts: argparse.Namespace, tmp: Path, label: str) -> dict[str, float]:
    """bench/ingest.py's rounds against a fresh gunicorn; the median round."""
    tokens = tmp / f"tokens-{label}.txt"
    running_runs(opts.reports, tokens)
    env = {**os.environ, **ENV}
    workers = int(os.environ.get("BENCH_WORKERS", str(2 * (os.cpu_count() or 1))))
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "kubeprobe_site.wsgi:application",
         "-b", f"127.0.0.1:{PORT}", "-w", str(workers), "--threads", "8", "-k", "gthread"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=(tmp / f"server-{label}.log").open("w"),
    )  # fmt: skip
    base = f"http://127.0.0.1:{PORT}"
    rounds = []
    try:
        wait_http(base + "/livez", 120)
        script = tmp / "report.lua"
        script.write_text(LUA)
        lines = tokens.read_text().splitlines(keepends=True)
        share = len(lines) // (opts.rounds + 1)
        warm = tmp / f"warm-{label}.txt"
        warm.write_text("".join(lines[opts.rounds * share :]))
        wrk(base + "/livez", 3, 50)
        if failure := phase_failure(
            wrk(base + "/", 3, 50, script, [str(warm), "2"]), "warm-up", opts.reports
        ):
            sys.exit(failure)
        for n in range(opts.rounds):
            part = tmp / f"tokens-{label}-{n}.txt"
            part.write_text("".join(lines[n * share : (n + 1) * share]))
            trivial = measured(server.pid, lambda: wrk(base + "/livez", opts.seconds, 50))
            report = measured(
                server.pid,
                lambda part=part: wrk(base + "/", opts.seconds, 50, script, [str(part), "2"]),
            )
            if failure := phase_failure(report, f"{label} round {n + 1}", opts.reports):
                sys.exit(failure)
            if report["non_2xx"]:
                sys.exit(f"{label}: {report['non_2xx']:.0f} reports refused")
            rounds.append((trivial, report))
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    trivial, report = sorted(rounds, key=lambda r: r[1]["rate"] / r[0]["rate"])[len(rounds) // 2]
    return {
        "rate": report["rate"], "livez": trivial["rate"], "ratio": report["rate"] / trivial["rate"],
        "p99_ms": report["p99_ms"], "postgres_ms": report["postgres_ms"],
    }  # fmt: skip


def pages(repeats: int) -> dict[str, float]:
    """Median server time (ms) of each page through Django's test client."""
    from django.contrib.auth.models import User
    from django.test import Client

    from apps.runs.models import ProbeRun

    client = Client()
    client.force_login(User.objects.get(username="bench"))
    run = ProbeRun.objects.filter(state="failed").order_by("-created_at").first()
    urls = {
        "overview": "/dashboard/",
        "cluster": "/dashboard/clusters/cluster-03/",
        "case": "/dashboard/cases/case-07/",
        "run": f"/dashboard/runs/{run.pk}/",  # type: ignore[union-attr]
    }
    out = {}
    for name, url in urls.items():
        times = []
        for _ in range(repeats + 2):
            started = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        out[name] = statistics.median(times[2:])  # the first two warm caches up
    return out


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--history", type=int, default=9_900_000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--reports", type=int, default=120_000, help="running runs per ingest phase"
    )
    opts = parser.parse_args()
    os.environ.update(ENV)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kubeprobe_site.settings")
    sys.path.insert(0, str(ROOT))
    fresh_database({**os.environ}, DB)
    import django

    django.setup()
    from django.db import connection

    from apps.runs.partitions import partitions_drop
    from apps.runs.rollups import rollups_rebuild

    tmp = Path(tempfile.mkdtemp(prefix="kubeprobe-10m-"))
    state = setup()
    # Ingestion first here and last at 10M: both page measurements see the same
    # recent runs (the reported ones included), only the table's size differs.
    small_ingest = ingest(opts, tmp, "100k")
    small_pages = pages(opts.repeats)
    small_load = load()
    print(f"at 100k: pages {small_pages}, ingest {small_ingest} (load {small_load})", flush=True)
    took = grow(state, opts.history)
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM runs_proberun")
        total = cur.fetchone()[0]
    print(f"grown to {total} runs in {took:.0f} s (load {load()})", flush=True)
    big_pages = pages(opts.repeats)
    big_load = load()
    big_ingest = ingest(opts, tmp, "10m")
    print(f"at 10M: pages {big_pages}, ingest {big_ingest} (load {big_load})", flush=True)

    print(f"\nmachine: {os.cpu_count()} cores, shared; runs in the table: {total}")
    print(f"{'':14} {'at 100k':>10} {'at 10M':>10} {'ratio':>7}  target")
    for name in small_pages:
        ratio = big_pages[name] / small_pages[name]
        print(
            f"{name + ' page':14} {small_pages[name]:8.1f}ms {big_pages[name]:8.1f}ms {ratio:7.2f}  0.80-1.20"
        )
    ratio = big_ingest["rate"] / small_ingest["rate"]
    print(
        f"{'reports/s':14} {small_ingest['rate']:10.0f} {big_ingest['rate']:10.0f} {ratio:7.2f}  >= 0.90"
    )
    print(
        f"{'/livez req/s':14} {small_ingest['livez']:10.0f} {big_ingest['livez']:10.0f}"
        f" {big_ingest['livez'] / small_ingest['livez']:7.2f}  (the machine's noise)"
    )
    print(
        f"{'ingest/livez':14} {small_ingest['ratio']:10.0%} {big_ingest['ratio']:10.0%}"
        f" {big_ingest['ratio'] / small_ingest['ratio']:7.2f}  >= 0.90"
    )
    print(f"load average: {small_load} at 100k, {big_load} at 10M")

    started = time.monotonic()
    dropped = partitions_drop(cutoff=state["now"] - timedelta(days=30))
    print(
        f"retention: {dropped} runs dropped with their partitions in {time.monotonic() - started:.2f} s"
    )
    started = time.monotonic()
    rows = rollups_rebuild()
    print(
        f"rollups rebuilt from all runs: {rows} rows in {time.monotonic() - started:.0f} s (load {load()})"
    )


if __name__ == "__main__":
    main()
