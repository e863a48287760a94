"""One /metrics scrape with 10,000 clusters x 20 cases (200,000 alert rows).

Creates a bench database on Postgres (dropped and migrated first), inserts the
clusters, cases and one alert row per (case, cluster) with SQL (a few percent
failing, firing, silenced; a few breakers open; some active runs), then scrapes
/metrics through Django's whole request path (test client, middleware, view)
several times, with and without gzip (Prometheus asks for gzip), and prints the
median and max time, the size, the number of series and each collector's share.

    python bench/metrics_scrape.py [--clusters 10000] [--cases 20] [--repeat 5] [--keep]

Needs Postgres on 127.0.0.1 (BENCH_PG, BENCH_DATABASE) and Redis (REDIS_URL, queue depth).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import dashboard
from _stack import PG, run

DB = os.environ.get("BENCH_DATABASE", "kubeprobe_bench_metrics")
dashboard.DB = DB  # its setup_django connects to dashboard.DB


def insert_select(cursor: Any, model: Any, computed: dict[str, str], source: str) -> None:
    """INSERT … SELECT of `computed` columns; every other NOT NULL column its default."""
    from django.db import connection

    computed = dict(computed)
    for field in model._meta.concrete_fields:
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            computed.setdefault(field.column, "now()")
    defaults = [
        field
        for field in model._meta.concrete_fields
        if not field.primary_key and not field.null and field.column not in computed
    ]
    columns = [*computed, *(field.column for field in defaults)]
    values = [*computed.values(), *(["%s"] * len(defaults))]
    cursor.execute(
        f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) "
        f"SELECT {', '.join(values)} {source}",
        [
            field.get_db_prep_value(field.get_default(), connection, prepared=False)
            for field in defaults
        ],
    )


def prepare(clusters: int, cases: int) -> None:
    from django.core.management import call_command
    from django.db import connection

    drop, create = f"DROP DATABASE IF EXISTS {DB}", f"CREATE DATABASE {DB}"
    run(["psql", PG + "/postgres", "-q", "-c", drop, "-c", create], dict(os.environ))
    call_command("migrate", verbosity=0)
    from django.utils import timezone

    from apps.alerts.models import Alert
    from apps.catalog.models import Case, CaseTemplate
    from apps.clusters.models import Cluster, Executor
    from apps.runs.models import ProbeRun

    now = timezone.now()
    Cluster.objects.bulk_create(
        [
            Cluster(
                name=f"k8s-region-{i % 8}-{i:05d}",
                executor=Executor.LOCAL,
                region=f"region-{i % 8}",
                breaker_failures=5 if i % 500 == 0 else 0,
                breaker_open_since=now if i % 500 == 0 else None,
            )
            for i in range(clusters)
        ],
        batch_size=5000,
    )
    template = CaseTemplate.objects.create(name="bench", image="x")
    Case.objects.bulk_create(
        [Case(name=f"probe-case-{i:02d}", template=template) for i in range(cases)]
    )
    # The 200,000 alert rows (and 20,000 active runs) in SQL: much faster than the ORM.
    with connection.cursor() as cursor:
        # Every other NOT NULL column gets its model default, as a parameter (so % is %%).
        insert_select(
            cursor,
            Alert,
            {
                "case_id": "c.id",
                "cluster_id": "k.id",
                "state": "CASE WHEN (c.id + k.id) %% 97 = 0 THEN 'firing'"
                " WHEN (c.id + k.id) %% 89 = 0 THEN 'silenced' ELSE 'ok' END",
                "latest_state": "CASE WHEN (c.id + k.id) %% 97 = 0 THEN 'failed'"
                " WHEN (c.id + k.id) %% 89 = 0 THEN 'timed_out' ELSE 'succeeded' END",
                "latest_duration_ms": "100 + (c.id * 7 + k.id) %% 900",
                "last_finished_at": "now()",
            },
            "FROM catalog_case AS c, clusters_cluster AS k",
        )
        # A running run on every tenth cluster (kubeprobe_runs_active).
        insert_select(
            cursor,
            ProbeRun,
            {
                "case_id": "c.id",
                "cluster_id": "k.id",
                "trigger": "'schedule'",
                "state": "'running'",
            },
            "FROM catalog_case AS c, clusters_cluster AS k WHERE k.id %% 10 = 0",
        )
    run(["psql", f"{PG}/{DB}", "-q", "-c", "VACUUM ANALYZE"], dict(os.environ))


def measure(repeat: int) -> None:
    from django.test import Client

    from apps.core import metrics

    client = Client()
    for gzip in (False, True):
        headers = {"HTTP_ACCEPT_ENCODING": "gzip"} if gzip else {}
        times, size, body = [], 0, b""
        for _ in range(repeat):
            started = time.perf_counter()
            response = client.get("/metrics", **headers)
            times.append(time.perf_counter() - started)
            assert response.status_code == 200, response.status_code
            size = len(response.content)
            body = response.content
            assert (response.get("Content-Encoding") == "gzip") == gzip
        label = "gzip" if gzip else "plain"
        print(
            f"/metrics {label}: median {statistics.median(times) * 1000:.0f} ms, "
            f"max {max(times) * 1000:.0f} ms, {size / 1e6:.2f} MB"
        )
        if not gzip:
            lines = [line for line in body.decode().splitlines() if not line.startswith("#")]
            print(f"  series: {len(lines):,}")
            for line in lines:
                if line.startswith("kubeprobe_metrics_collector_duration_seconds"):
                    print(f"  {line}")
    del metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=10000)
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="reuse the bench database as is")
    args = parser.parse_args()
    dashboard.setup_django()
    if not args.keep:
        started = time.perf_counter()
        prepare(args.clusters, args.cases)
        print(
            f"loaded {args.clusters:,} clusters x {args.cases} cases in "
            f"{time.perf_counter() - started:.1f} s"
        )
    measure(args.repeat)


if __name__ == "__main__":
    main()
