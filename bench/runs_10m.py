"""10 million runs: report ingestion and the dashboard pages at 100,000 runs and at 10M.

In a scratch database (BENCH_DATABASE, default kubeprobe_bench_10m):

1. 20 cases × 10 clusters; 100,000 finished runs over the last 7 days in the
   current partition of the runs table (created through the table, every index
   maintained), their hourly rollups backfilled.
2. Grows the table to 10M: 9.9M more finished runs, 8 to 38 days old, as ten
   partitions of three days each, written with generate_series into plain
   tables, vacuumed (as old partitions of a live table are: else autovacuum
   works through them during the measurements) and attached (Postgres builds
   their indexes once). Prints how long.
3. Measures in rounds on the same machine: each round measures once with the
   history detached (the table holds the 100,000 runs, as in step 1) and
   once attached (10M), in alternating order (ABBA), each after a checkpoint
   and with no autovacuum running in the database. Detaching and attaching
   the same partitions takes a second (their indexes and a range CHECK are
   kept). A measurement: report ingestion over real HTTP (one gunicorn for all
   rounds, wrk; /livez then reports, bench/ingest.py's machinery), then the
   overview, cluster, case and run pages (Django's test client in this
   process: server time, the median of --repeats). Every measurement prints
   its numbers and the load average.
4. Prints the median of the rounds for each size, their ratios and the median
   of the rounds' own ratios (targets: ingestion within 10%, pages ±20%).
5. Retention: drops the partitions past 30 days (apps/runs/partitions.py)
   and prints how long that took; then rebuilds all rollups from scratch
   (the backfill command's work) and prints how long.

    python bench/runs_10m.py [--history 9900000] [--repeats 15] [--seconds 8] [--rounds 5]

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
        "reason_params": "NULL",
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
    """9.9M finished runs 8 to 38 days old, WINDOWS partitions written unindexed,
    vacuumed, then attached."""
    from django.db import connection

    from apps.runs import partitions
    from apps.runs.models import RunPartition

    started = time.monotonic()
    per = history // WINDOWS
    for i in range(WINDOWS):
        number = 2 + i
        name = partitions.partition_name(number)
        low, high = number * partitions.STRIDE, (number + 1) * partitions.STRIDE
        start = state["now"] - timedelta(days=8 + WINDOW_DAYS * (WINDOWS - i))
        with connection.cursor() as cur:
            cur.execute(
                f"CREATE TABLE {name} (LIKE {partitions.TABLE} INCLUDING DEFAULTS"
                " INCLUDING CONSTRAINTS)"
            )
            cur.execute(
                _insert_sql(name, state["columns"], f"{low} + g"),
                {"start": start, "span": timedelta(days=WINDOW_DAYS), "n": per},
            )
            # Old partitions of a live table were vacuumed long ago; fresh ones
            # would have autovacuum working through them while we measure.
            # Before the indexes: the table alone is scanned.
            cur.execute(f"VACUUM (FREEZE, ANALYZE) {name}")
            cur.execute(f"CREATE UNIQUE INDEX {name}_idem ON {name} (idempotency_key)")
            # Lets ATTACH skip its range scan, so the rounds can detach and attach it.
            cur.execute(
                f"ALTER TABLE {name} ADD CONSTRAINT {name}_range CHECK (id >= {low} AND id < {high})"
            )
            cur.execute(
                f"ALTER TABLE {partitions.TABLE} ATTACH PARTITION {name}"
                f" FOR VALUES FROM ({low}) TO ({high})"
            )
        RunPartition.objects.create(number=number, opened_at=start)
        print(
            f"  partition {number}: {per} runs, {time.monotonic() - started:.0f} s so far",
            flush=True,
        )
    return time.monotonic() - started


def history(attached: bool) -> float:
    """Attach or detach the history partitions; seconds it took."""
    from django.db import connection

    from apps.runs import partitions

    started = time.monotonic()
    with connection.cursor() as cur:
        for number in range(2, 2 + WINDOWS):
            name = partitions.partition_name(number)
            if attached:
                low, high = number * partitions.STRIDE, (number + 1) * partitions.STRIDE
                cur.execute(
                    f"ALTER TABLE {partitions.TABLE} ATTACH PARTITION {name}"
                    f" FOR VALUES FROM ({low}) TO ({high})"
                )
            else:
                cur.execute(f"ALTER TABLE {partitions.TABLE} DETACH PARTITION {name}")
    return time.monotonic() - started


def settle() -> None:
    """The same start for every measurement: a checkpoint behind it (so each
    begins with the same full-page writes to come) and no autovacuum in this
    database (a bench, not a test: polling is fine here)."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("CHECKPOINT")
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND backend_type = 'autovacuum worker'"
            )
            if not cur.fetchone()[0]:
                return
            time.sleep(2)
        print("  (autovacuum still running after 300 s; measuring anyway)", flush=True)


def running_runs(count: int, tokens_file: Path) -> None:
    """`count` dispatched runs with known tokens, for wrk to report."""
    import hashlib

    from django.db import connection
    from django.utils import timezone

    from apps.catalog.models import Case
    from apps.clusters.models import Cluster
    from apps.runs import partitions
    from apps.runs.models import ProbeRun

    tag = secrets.token_hex(4)
    tokens = [secrets.token_urlsafe(32) for _ in range(count)]
    now = timezone.now()
    cases, clusters = list(Case.objects.all()), list(Cluster.objects.all())
    runs = ProbeRun.objects.bulk_create(
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
    # The partition the runs went to, not the parent: that would sample every partition.
    connection.cursor().execute(f"ANALYZE {partitions.partition_name(CURRENT)}")
    tokens_file.write_text("".join(f"{run.pk} {t}\n" for run, t in zip(runs, tokens, strict=True)))


def serve(tmp: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **ENV}
    workers = int(os.environ.get("BENCH_WORKERS", str(2 * (os.cpu_count() or 1))))
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "kubeprobe_site.wsgi:application",
         "-b", f"127.0.0.1:{PORT}", "-w", str(workers), "--threads", "8", "-k", "gthread"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=(tmp / "server.log").open("w"),
    )  # fmt: skip
    wait_http(f"http://127.0.0.1:{PORT}/livez", 120)
    (tmp / "report.lua").write_text(LUA)
    return server


def ingest(opts: argparse.Namespace, tmp: Path, server: int, label: str) -> dict[str, float]:
    """One round of bench/ingest.py's: /livez, then reports, after a short warm-up."""
    base = f"http://127.0.0.1:{PORT}"
    tokens, warm = tmp / f"tokens-{label}.txt", tmp / f"warm-{label}.txt"
    running_runs(opts.reports, tokens)
    lines = tokens.read_text().splitlines(keepends=True)
    warm_share = len(lines) // 5
    warm.write_text("".join(lines[:warm_share]))
    tokens.write_text("".join(lines[warm_share:]))
    script = tmp / "report.lua"
    wrk(base + "/livez", 2, 50)
    wrk(base + "/", 2, 50, script, [str(warm), "2"])  # may use its runs up: only warms
    settle()
    trivial = measured(server, lambda: wrk(base + "/livez", opts.seconds, 50), DB)
    report = measured(
        server, lambda: wrk(base + "/", opts.seconds, 50, script, [str(tokens), "2"]), DB
    )
    if failure := phase_failure(report, label, opts.reports):
        sys.exit(failure)
    if report["non_2xx"]:
        sys.exit(f"{label}: {report['non_2xx']:.0f} reports refused")
    return {
        "rate": report["rate"], "livez": trivial["rate"], "ratio": report["rate"] / trivial["rate"],
        "p99_ms": report["p99_ms"], "postgres_ms": report["postgres_ms"],
        "server_ms": report["server_ms"],
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


def load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


SIZES = ("100k", "10M")


def measure(opts: argparse.Namespace, tmp: Path, server: int) -> dict[str, list[dict[str, float]]]:
    """--rounds rounds, each measuring both sizes, in ABBA order."""
    results: dict[str, list[dict[str, float]]] = {size: [] for size in SIZES}
    attached = True
    for n in range(opts.rounds):
        for size in SIZES if n % 2 == 0 else tuple(reversed(SIZES)):
            if attached != (size == "10M"):
                attached = size == "10M"
                took = history(attached)
                print(f"  history {'attached' if attached else 'detached'} in {took:.1f} s")
            before = load()
            got = ingest(opts, tmp, server, f"{size}-{n + 1}")
            settle()
            got.update(pages(opts.repeats))
            got["load"] = (before + load()) / 2
            results[size].append(got)
            print(
                f"round {n + 1} at {size}: {got['rate']:.0f} reports/s, /livez {got['livez']:.0f},"
                f" ratio {got['ratio']:.0%}, Postgres {got['postgres_ms']:.3f} ms/report,"
                f" server {got['server_ms']:.2f} ms/report; pages "
                + ", ".join(f"{p} {got[p]:.1f}" for p in PAGES)
                + f" ms (load {before:.2f} .. {load():.2f})",
                flush=True,
            )
    if not attached:
        history(True)
    return results


PAGES = ("overview", "cluster", "case", "run")


def summary(results: dict[str, list[dict[str, float]]], total: int) -> None:
    def med(size: str, key: str) -> float:
        return statistics.median(r[key] for r in results[size])

    def paired(key: str) -> float:  # the median of the rounds' own ratios
        pairs = zip(results["10M"], results["100k"], strict=True)
        return statistics.median(
            big[key] / small[key] if small[key] else 0.0 for big, small in pairs
        )

    rounds = len(results["100k"])
    print(f"\nmachine: {os.cpu_count()} cores, shared; runs in the table: {total}; {rounds} rounds")
    print(
        f"{'median of rounds':22} {'at 100k':>10} {'at 10M':>10} {'ratio':>7} {'paired':>7}  target"
    )
    rows = [(f"{p} page (ms)", p, "0.80-1.20") for p in PAGES] + [
        ("reports/s", "rate", ">= 0.90"),
        ("/livez req/s", "livez", "(noise)"),
        ("reports / livez", "ratio", ">= 0.90"),
        ("Postgres ms/report", "postgres_ms", ""),
        ("server ms/report", "server_ms", ""),
        ("report p99 (ms)", "p99_ms", ""),
        ("load average", "load", ""),
    ]
    for title, key, target in rows:
        small, big = med("100k", key), med("10M", key)
        print(
            f"{title:22} {small:10.3f} {big:10.3f} {big / small if small else 0.0:7.2f}"
            f" {paired(key):7.2f}  {target}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--history", type=int, default=9_900_000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reports", type=int, default=60_000, help="running runs per measurement")
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
    took = grow(state, opts.history)
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM runs_proberun")
        total = cur.fetchone()[0]
    print(f"grown to {total} runs in {took:.0f} s (load {load():.2f})", flush=True)
    server = serve(tmp)
    try:
        results = measure(opts, tmp, server.pid)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    summary(results, total)

    started = time.monotonic()
    dropped = partitions_drop(cutoff=state["now"] - timedelta(days=30))
    print(
        f"retention: {dropped} runs dropped with their partitions in {time.monotonic() - started:.2f} s"
    )
    started = time.monotonic()
    rows = rollups_rebuild()
    print(
        f"rollups rebuilt from all runs: {rows} rows in {time.monotonic() - started:.0f} s"
        f" (load {load():.2f})"
    )


if __name__ == "__main__":
    main()
