"""What the benchmarks share: a bench database, the stack's processes, failing runs, numbers.

Each benchmark runs the real stack as deployed (gunicorn, daphne, a Celery
worker) on Postgres and Redis, in a database and a queue of its own.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
# Only used by bench databases: a fixed key keeps runs comparable.
ENCRYPTION_KEY = "kTl4gWAX8Qp4NUS7vjUWRFDiRZPp6fz0mPnuV3Gq-dE="


def bench_env(database: str, redis_db: int, queue: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": f"{PG}/{database}",
        "REDIS_URL": os.environ.get("REDIS_URL", f"redis://127.0.0.1:6379/{redis_db}"),
        "SECRET_KEY": "bench-" + secrets.token_hex(30),
        "KUBEPROBE_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "KUBEPROBE_STATIC_MANIFEST": "false",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "LOG_LEVEL": "WARNING",
        "DATABASE_CONN_MAX_AGE": "60",
    }


def run(args: list[str], env: dict[str, str]) -> str:
    return subprocess.run(
        args, check=True, capture_output=True, text=True, env=env, cwd=ROOT
    ).stdout


def fresh_database(env: dict[str, str], database: str) -> None:
    """Drop and create the bench database, then migrate it."""
    drop, create = f"DROP DATABASE IF EXISTS {database}", f"CREATE DATABASE {database}"
    run(["psql", PG + "/postgres", "-q", "-c", drop, "-c", create], env)
    run([sys.executable, "manage.py", "migrate", "-v", "0"], env)


def django_shell(env: dict[str, str], code: str) -> str:
    return run([sys.executable, "manage.py", "shell", "-c", code], env)


def failing_runs_code(pairs: int, out: Path) -> str:
    """Shell code: a rule firing on one failure, 10 cases, and one dispatched run per pair
    (case i % 10 on cluster i // 10). Writes `run_id token case_id cluster_id case cluster`
    lines to `out`."""
    return f"""
import hashlib, secrets
from datetime import timedelta
from django.utils import timezone
from apps.alerts.models import AlertRule
from apps.catalog.models import Case, CaseTemplate
from apps.clusters.models import Cluster
from apps.runs.models import ProbeRun
AlertRule.objects.filter(name="default").update(consecutive_failures=1)
template = CaseTemplate.objects.create(name="bench", image="x")
cases = [Case.objects.create(name=f"case-{{i}}", template=template) for i in range(10)]
clusters = Cluster.objects.bulk_create(
    [Cluster(name=f"cluster-{{i:04d}}", executor="local") for i in range({pairs} // 10 + 1)]
)
now = timezone.now()
rows, tokens = [], []
for i in range({pairs}):
    token = secrets.token_urlsafe(24)
    tokens.append(token)
    rows.append(ProbeRun(case=cases[i % 10], cluster=clusters[i // 10], trigger="manual",
        state="running", dispatched_at=now, deadline=now + timedelta(hours=1),
        token_hash=hashlib.sha256(token.encode()).hexdigest(), idempotency_key=f"bench:{{i}}"))
ProbeRun.objects.bulk_create(rows)
found = ProbeRun.objects.values_list(
    "idempotency_key", "id", "case_id", "cluster_id", "case__name", "cluster__name")
by_key = {{key: rest for key, *rest in found}}
with open({str(out)!r}, "w") as f:
    for i, token in enumerate(tokens):
        run_id, case_id, cluster_id, case, cluster = by_key[f"bench:{{i}}"]
        f.write(f"{{run_id}} {{token}} {{case_id}} {{cluster_id}} {{case}} {{cluster}}\\n")
"""


FAILING_REPORT = (
    b'{"ok": false, "errors": ["step ready failed: Failed to create pod sandbox: rpc error"],'
    b' "steps": [{"name": "create", "ok": true, "duration_ms": 40}, {"name": "ready",'
    b' "ok": false, "duration_ms": 900, "error": "Failed to create pod sandbox"}], "metrics": {}}'
)


def post_failing_report(base: str, run_id: str, token: str) -> None:
    request = urllib.request.Request(
        f"{base}/api/v1/runs/{run_id}/report",
        data=FAILING_REPORT,
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200


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


def gunicorn(port: int, threads: int = 4) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn", "kubeprobe_site.wsgi:application",
        "-b", f"127.0.0.1:{port}", "-w", "2", "--threads", str(threads), "-k", "gthread",
    ]  # fmt: skip


def daphne(port: int) -> list[str]:
    return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
            "kubeprobe_site.asgi:application"]  # fmt: skip


def celery_worker(queue: str) -> list[str]:
    # No -Q: the worker consumes every queue derived from CELERY_TASK_DEFAULT_QUEUE
    # (`queue`, set in bench_env): dispatch, alerts, housekeeping and the default.
    return [
        sys.executable, "-m", "celery", "-A", "kubeprobe_site", "worker",
        "-c", "2", "--loglevel", os.environ.get("BENCH_WORKER_LOGLEVEL", "WARNING"),
        "--without-gossip", "--without-mingle",
    ]  # fmt: skip


@contextmanager
def processes(env: dict[str, str], logs: Path, **commands: list[str]) -> Iterator[dict[str, int]]:
    """Start each command (its stderr in logs/<name>.log) and stop them all at the end;
    yields each one's pid by name."""
    started: list[tuple[subprocess.Popen[bytes], IO[str]]] = []
    try:
        for name, command in commands.items():
            log = (logs / f"{name}.log").open("w")
            process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log
            )
            started.append((process, log))
        yield {
            name: process.pid
            for (name, _), (process, _) in zip(commands.items(), started, strict=False)
        }
    finally:
        for process, _ in started:
            process.terminate()
        for process, log in started:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
            log.close()


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


# CPU seconds from /proc, per process tree and per Postgres backend.
TICK = os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    try:
        found = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return found + [g for c in found for g in children(c)]


def _cpu(pid: int) -> float:
    """User + system seconds of the process and of its children it has reaped."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(v) for v in fields[11:15]) / TICK


def tree_cpu(pids: list[int]) -> float:
    return sum(_cpu(p) for root in pids for p in [root, *children(root)])


def postgres_pids() -> list[int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        )
        return [row[0] for row in cursor.fetchall()]


class Meter:
    """CPU seconds of named process groups over a phase; Postgres backends of this
    database counted per backend (a backend that ended within the phase is missed)."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.before = {name: tree_cpu(pids) for name, pids in groups.items()}
        self.pg_before = {pid: _cpu(pid) for pid in postgres_pids()}
        self.me = time.process_time()

    def stop(self) -> dict[str, float]:
        used = {name: tree_cpu(pids) - self.before[name] for name, pids in self.groups.items()}
        used["postgres"] = sum(_cpu(p) - self.pg_before.get(p, 0.0) for p in postgres_pids())
        used["bench"] = time.process_time() - self.me
        return used


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat: what the
    processes a bench does not measure (other work on a shared machine) used too."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields) - idle) / TICK, sum(fields) / TICK
