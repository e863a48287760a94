"""The overview dashboard with 2,000 (or 10,000) clusters x 20 cases, served.

Creates a bench database on Postgres (dropped and migrated first), clusters
in 8 regions and 10 cluster groups (label selectors and explicit members), 20
cases, a binding that runs every case on every group (so the overview asks
which pairs are scheduled, as in a real fleet), one finished run and one Alert
row per (case, cluster) with a few percent failing, firing, acknowledged and
silenced. Then fetches the overview's shell (/dashboard/), its matrix
(/dashboard/grid.json, what static/dashboard/grid.js draws) and the other
pages through Django's full request path (test client: middleware, session,
auth, permissions, template) as a user of the viewer role, several times per
variant, and prints median and max time, the query count and the size
(gzipped, as browsers ask for it, and plain). Target: the overview (shell +
grid.json, gzipped) under 1 s at 10,000 x 20. bench/dashboard_browser.py
measures the same page drawn in Chromium.

    python bench/dashboard.py [--clusters 2000] [--cases 20] [--repeat 7] [--reuse]

Needs Postgres on 127.0.0.1 (BENCH_PG, BENCH_DATABASE) and Redis (sessions do not use it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from _stack import PG, ROOT, run

DB = os.environ.get("BENCH_DATABASE", "kubeprobe_bench_dashboard")


def load_average() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def setup_django() -> None:
    os.environ["DATABASE_URL"] = f"{PG}/{DB}"
    os.environ.setdefault(
        "SECRET_KEY", "bench-secret-key-not-for-production-0123456789abcdefghijklmnop"
    )
    os.environ.setdefault(
        "KUBEPROBE_ENCRYPTION_KEY", "kTl4gWAX8Qp4NUS7vjUWRFDiRZPp6fz0mPnuV3Gq-dE="
    )
    os.environ["ALLOWED_HOSTS"] = "testserver,127.0.0.1,localhost"
    os.environ["KUBEPROBE_STATIC_MANIFEST"] = "false"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kubeprobe_site.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def prepare(clusters: int, cases: int) -> None:
    from django.core.management import call_command

    # Django is set up in this process: drop and create the database, then migrate here.
    drop, create = f"DROP DATABASE IF EXISTS {DB}", f"CREATE DATABASE {DB}"
    run(["psql", PG + "/postgres", "-q", "-c", drop, "-c", create], dict(os.environ))
    call_command("migrate", verbosity=0)

    from django.utils import timezone

    from apps.alerts.models import Alert
    from apps.catalog.models import Case, CaseSet, CaseSetMembership, CaseTemplate
    from apps.clusters.models import Cluster, ClusterGroup, Executor
    from apps.runs.models import ProbeRun

    now = timezone.now()
    regions = [f"region-{i}" for i in range(8)]
    envs = ["prod", "staging", "dev"]
    cluster_rows = Cluster.objects.bulk_create(
        [
            Cluster(
                name=f"k8s-{regions[i % 8]}-{i:05d}",
                display_name=f"Cluster {i}",
                executor=Executor.LOCAL,
                region=regions[i % 8],
                environment=envs[i % 3],
                labels={"team": f"team-{i % 10}", "tier": envs[i % 3]},
            )
            for i in range(clusters)
        ],
        batch_size=2000,
    )
    groups = ClusterGroup.objects.bulk_create(
        [ClusterGroup(name=f"team-{g}", selector={"team": f"team-{g}"}) for g in range(10)]
        + [ClusterGroup(name="canary")]
    )
    groups[-1].members.add(*cluster_rows[:100])
    template = CaseTemplate.objects.create(name="bench", image="x")
    case_rows = Case.objects.bulk_create(
        [Case(name=f"probe-case-{i:02d}", template=template) for i in range(cases)]
    )
    from apps.scheduling.models import Binding

    binding = Binding.objects.create(name="everything", interval_seconds=60)
    binding.groups.add(*groups[:10])
    binding.cases.add(*case_rows)
    core = CaseSet.objects.create(name="core")
    CaseSetMembership.objects.bulk_create(
        [CaseSetMembership(case_set=core, case=c) for c in case_rows[:5]]
    )
    pairs = [(case, cluster) for cluster in cluster_rows for case in case_rows]

    def state_of(i: int) -> tuple[str, str]:
        if i % 97 == 0:
            return "failed", "firing"
        if i % 89 == 0:
            return "timed_out", "acknowledged"
        if i % 83 == 0:
            return "error", "silenced"
        if i % 211 == 0:
            return "running", "ok"
        return "succeeded", "ok"

    runs = ProbeRun.objects.bulk_create(
        [
            ProbeRun(
                case=case,
                cluster=cluster,
                trigger="schedule",
                state=state_of(i)[0],
                finished_at=now,
                duration_ms=100 + i % 900,
                steps=[{"name": "create", "ok": True, "duration_ms": 20}],
            )
            for i, (case, cluster) in enumerate(pairs)
        ],
        batch_size=5000,
    )
    Alert.objects.bulk_create(
        [
            Alert(
                case=case,
                cluster=cluster,
                latest_run=run,
                latest_state=state_of(i)[0],
                state=state_of(i)[1],
                severity=("warning", "critical", "info")[i % 3],
                last_finished_at=now,
            )
            for i, ((case, cluster), run) in enumerate(zip(pairs, runs, strict=True))
        ],
        batch_size=5000,
    )
    subprocess.run(["psql", f"{PG}/{DB}", "-q", "-c", "VACUUM ANALYZE"], check=True)


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(repeat: int, variants_wanted: str) -> None:
    from django.contrib.auth.models import Group, User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    user, created = User.objects.get_or_create(username="bench-viewer", is_staff=True)
    if created:
        user.groups.add(Group.objects.get(name="viewer"))
    plain = Client()
    plain.force_login(user)
    zipped = Client(headers={"accept-encoding": "gzip, deflate, br"})  # as browsers ask
    zipped.force_login(user)
    variants = [
        ("/dashboard/", "the overview's shell"),
        ("/dashboard/grid.json", "the overview's matrix, every cell"),
        ("/dashboard/grid.json?group_by=group", "rows by cluster group"),
        ("/dashboard/grid.json?state=failing", "only rows with a red cell"),
        ("/dashboard/grid.json?order=problems", "problems first"),
        ("/dashboard/grid.json?case_set=core&region=region-1", "filtered"),
        ("/dashboard/?render=table", "table fallback, 500 rows a page"),
        ("/dashboard/state.json?scope=overview", "state.json (cluster/case resync)"),
        ("/dashboard/cases/probe-case-00/", "case page, every cluster"),
        ("/dashboard/clusters/k8s-region-0-00000/", "cluster page"),
    ]
    if variants_wanted == "overview":
        variants = variants[:2]
    print(
        f"{'variant':58} {'median':>7} {'max':>7} {'gzip median':>11} {'gzip max':>8} "
        f"{'queries':>7} {'size':>7} {'gzipped':>7} {'CPU gz':>7}"
    )
    # CPU time (this process, which serves, plus its Postgres backend) is what a request
    # costs whatever else the machine runs; wall time on a busy machine waits for a core.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    medians: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for url, what in variants:
        row = []
        for client in (plain, zipped):
            client.get(url)  # warm: caches, connection
            times, cpus = [], []
            for _ in range(repeat):
                start, used = time.perf_counter(), time.process_time() + cpu_seconds(backend)
                response = client.get(url)
                times.append(time.perf_counter() - start)
                cpus.append(time.process_time() + cpu_seconds(backend) - used)
                assert response.status_code == 200, response.status_code
            row.append((statistics.median(times) * 1000, max(times) * 1000, response))
            cpu[url] = statistics.median(cpus) * 1000
        with CaptureQueriesContext(connection) as ctx:
            plain.get(url)
        (p_med, p_max, p_resp), (z_med, z_max, z_resp) = row
        medians[url] = z_med
        print(
            f"{url + '  (' + what + ')':58.58} {p_med:5.0f}ms {p_max:5.0f}ms {z_med:9.0f}ms "
            f"{z_max:6.0f}ms {len(ctx.captured_queries):7d} {len(p_resp.content) / 1e6:5.2f}MB "
            f"{len(z_resp.content) / 1e6:5.2f}MB {cpu[url]:5.0f}ms"
        )
    served = medians["/dashboard/"] + medians["/dashboard/grid.json"]
    used = cpu["/dashboard/"] + cpu["/dashboard/grid.json"]
    print(
        f"overview served (shell + grid.json, gzipped, medians): {served:.0f} ms wall, "
        f"{used:.0f} ms CPU (Django + Postgres); target < 1000 ms: "
        f"{'met' if served < 1000 else 'NOT met'}; load average {load_average()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=2000)
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--reuse", action="store_true", help="keep the existing bench database")
    parser.add_argument(
        "--variants", choices=("all", "overview"), default="all", help="overview: shell and grid"
    )
    args = parser.parse_args()
    setup_django()
    if not args.reuse:
        start = time.perf_counter()
        prepare(args.clusters, args.cases)
        print(
            f"prepared {args.clusters} clusters x {args.cases} cases in {time.perf_counter() - start:.1f}s"
        )
    measure(args.repeat, args.variants)


if __name__ == "__main__":
    main()
