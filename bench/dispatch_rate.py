"""Dispatch rate: pods created per second by 4 worker processes, against the raw client.

Starts the local Kubernetes control plane of the tests (deploy/dev/kube_local.py:
the real kube-apiserver, controller-manager and scheduler, kwok nodes) and a
scratch database. Several Cluster rows point at that one API server, each with
its own namespace and QPS limit: `--clusters` fast ones (`--qps` each) and one
slow one (`--slow-qps`) whose limit must visibly hold. Then, alternating, in
each round:

* raw: `--workers` processes, each creating its share of `--pods` pods with
  the official `kubernetes` client in a loop (`create_namespaced_pod`, the
  same manifest the executor sends, response not deserialised, as the
  executor does), timed from the start signal to the last answer;
* ours: one binding tick over the fast clusters (and one over the slow one)
  stores the same number of runs (apps/runs/fanout.py); a Celery worker with
  `--workers` processes on the dispatch queue claims and launches them
  (apps/runs/dispatch_batch.py), timed from the tick to the last run running.

It prints both rates and their ratio per round (target: ours ≥ 70% of raw),
and for each cluster the pods it got per second (from the pods'
creationTimestamp, whole seconds) against its QPS limit and burst.

    python bench/dispatch_rate.py [--pods 1200] [--rounds 2] [--workers 4]
                                  [--clusters 6] [--qps 100] [--slow-qps 5] [--slow-pods 20] [--keep]

Needs the built control plane (make kube-build), Postgres (BENCH_PG,
BENCH_DATABASE) and Redis (REDIS_URL, default db 14).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from _stack import PG, ROOT, bench_env, run

DB = os.environ.get("BENCH_DATABASE", "kubeprobe_bench_dispatch")
QUEUE = "bench-dispatch"
ENV = bench_env(DB, 14, QUEUE)


def setup_django() -> None:
    os.environ.update(ENV)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kubeprobe_site.settings")
    sys.path[:0] = [str(ROOT), str(ROOT / "deploy" / "dev")]
    import django

    django.setup()


def equivalent_manifest(namespace: str, name: str) -> dict[str, Any]:
    """A pod as the executor makes one (labels, the contract env, limits)."""
    from apps.runs.executors.base import LaunchSpec
    from apps.runs.executors.kubernetes import pod_manifest

    env = {
        "KUBEPROBE_REPORT_URL": "http://127.0.0.1:8000/api/v1/runs/123456/report",
        "KUBEPROBE_RUN_ID": "123456",
        "KUBEPROBE_TOKEN": "x" * 43,
        "KUBEPROBE_DEADLINE": str(int(time.time()) + 300),
        "KUBEPROBE_CLUSTER": "raw",
        "TARGET": "bench",
    }
    labels = {
        "app.kubernetes.io/managed-by": "kubeprobe",
        "kubeprobe.io/installation": "raw",
        "kubeprobe.io/run-id": "123456",
        "kubeprobe.io/case": "bench",
        "kubeprobe.io/binding": "bench",
        "kubeprobe.io/trigger": "schedule",
    }
    spec = LaunchSpec(
        run_id=0,
        name=name,
        namespace=namespace,
        image="registry.k8s.io/pause:3.10",
        command=[],
        args=[],
        env=env,
        resources={},
        service_account="",
        timeout_seconds=300,
        labels=labels,
        report_protocol="kubeprobe",
    )
    return pod_manifest(spec)


def raw_child(kubeconfig: str, namespace: str, count: int, prefix: str) -> None:
    """Create `count` pods with the plain client, after a line on stdin; print the seconds."""
    setup_django()
    import yaml
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config_from_dict(
        yaml.safe_load(Path(kubeconfig).read_text()), client_configuration=configuration
    )
    core = client.CoreV1Api(client.ApiClient(configuration))
    manifests = [equivalent_manifest(namespace, f"{prefix}-{i}") for i in range(count)]
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.perf_counter()
    for manifest in manifests:
        core.create_namespaced_pod(namespace, manifest, _preload_content=False)
    print(json.dumps({"seconds": time.perf_counter() - started}), flush=True)


def raw_phase(kube: Any, workers: int, pods: int, round_no: int) -> float:
    namespace = f"raw-{round_no}"
    kube.create_namespace(namespace)
    share = pods // workers
    children = []
    for w in range(workers):
        command = [sys.executable, __file__, "--raw-child", str(kube.kubeconfig_path),
                   namespace, str(share), f"raw-{round_no}-{w}"]  # fmt: skip
        children.append(
            subprocess.Popen(
                command, cwd=ROOT, env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
        )
    for child in children:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    started = time.perf_counter()
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    for child in children:
        out, _ = child.communicate(timeout=600)
        assert child.returncode == 0, out
    return share * workers / (time.perf_counter() - started)


def prepare(kube: Any, args: argparse.Namespace) -> dict[str, Any]:
    from django.core.management import call_command

    drop, create = f"DROP DATABASE IF EXISTS {DB}", f"CREATE DATABASE {DB}"
    run(["psql", PG + "/postgres", "-q", "-c", drop, "-c", create], ENV)
    call_command("migrate", verbosity=0)
    from apps.catalog.models import Case, CaseTemplate
    from apps.clusters.models import Cluster, Executor
    from apps.scheduling.models import Binding

    template = CaseTemplate.objects.create(
        name="bench", image="registry.k8s.io/pause:3.10", timeout_seconds=300
    )
    per_cluster = args.pods // args.clusters
    cases = [Case.objects.create(name=f"c{i:03d}", template=template) for i in range(per_cluster)]
    kubeconfig = kube.kubeconfig()
    fast, limits = [], {}
    for i in range(args.clusters + 1):
        slow = i == args.clusters
        name = "slow" if slow else f"fast-{i}"
        kube.create_namespace(name)
        qps = args.slow_qps if slow else args.qps
        cluster = Cluster.objects.create(
            name=name, executor=Executor.KUBERNETES, kubeconfig=kubeconfig,
            namespace=name, api_qps=qps,
        )  # fmt: skip
        limits[name] = (qps, max(1, int(qps * 2)))
        if not slow:
            fast.append(cluster)
    fleet = Binding.objects.create(name="fleet", interval_seconds=60)
    fleet.clusters.set(fast)
    fleet.cases.set(cases)
    slow_binding = Binding.objects.create(name="slow", interval_seconds=60)
    slow_binding.clusters.set([cluster])
    slow_binding.cases.set(cases[: args.slow_pods])
    return {
        "bindings": [fleet.pk, slow_binding.pk],
        "limits": limits,
        "runs": len(cases) * len(fast),
    }


def ours_phase(setup: dict[str, Any]) -> tuple[float, int, int]:
    """One tick of each binding; returns (fleet pods/s, runs launched, runs in error)."""
    from django.db.models import Q
    from django.utils import timezone

    from apps.runs.models import ProbeRun, RunState
    from apps.scheduling.models import Binding
    from apps.scheduling.services import binding_fire_schedule

    ProbeRun.objects.exclude(state__in=("succeeded", "error")).update(
        state=RunState.SUCCEEDED, finished_at=timezone.now()
    )
    Binding.objects.update(last_fired_at=None)
    started = time.perf_counter()
    now = timezone.now()
    created = [binding_fire_schedule(binding_id=b, now=now).created for b in setup["bindings"]]
    fleet = ProbeRun.objects.filter(pk__in=created[0])
    mine = ProbeRun.objects.filter(pk__in=created[0] + created[1])
    while fleet.filter(state__in=("pending", "dispatched")).exists():
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    while mine.filter(state__in=("pending", "dispatched")).exists():
        time.sleep(0.05)
    launched = mine.filter(state="running").count()
    errors = mine.filter(~Q(state="running")).count()
    return len(created[0]) / seconds, launched, errors


def per_second(kube: Any, namespace: str) -> Counter[datetime]:
    items = kube.api("GET", f"/api/v1/namespaces/{namespace}/pods")["items"]
    return Counter(
        datetime.fromisoformat(p["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
        for p in items
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pods", type=int, default=1200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--clusters", type=int, default=6)
    parser.add_argument("--qps", type=float, default=100)
    parser.add_argument("--slow-qps", type=float, default=5)
    parser.add_argument("--slow-pods", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    parser.add_argument("--raw-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_child:
        kubeconfig, namespace, count, prefix = args.raw_child
        raw_child(kubeconfig, namespace, int(count), prefix)
        return
    setup_django()
    import redis
    from kube_local import LocalKube

    from apps.runs.models import ProbeRun

    workdir = Path(tempfile.mkdtemp(prefix="kubeprobe-bench-kube-"))
    kube = LocalKube(workdir, nodes=3).start()
    worker = None
    try:
        setup = prepare(kube, args)
        log = (workdir / "worker.log").open("w")
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "kubeprobe_site", "worker",
             "-Q", f"{QUEUE}.dispatch", "-c", str(args.workers), "--prefetch-multiplier", "1",
             "--loglevel", "INFO", "--without-gossip", "--without-mingle", "-n", "bench@%h"],
            cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while b"ready." not in (workdir / "worker.log").read_bytes():
            if time.monotonic() > deadline or worker.poll() is not None:
                raise SystemExit(f"the worker did not start: see {workdir / 'worker.log'}")
            time.sleep(0.2)
        print(f"{args.workers} worker processes each side, {setup['runs']} pods per phase over"
              f" {args.clusters} clusters at {args.qps:g} qps, + {args.slow_pods} on one at"
              f" {args.slow_qps:g} qps; load {os.getloadavg()}")  # fmt: skip
        rows = []
        for round_no in range(args.rounds):
            raw = raw_phase(kube, args.workers, setup["runs"], round_no)
            ours, launched, errors = ours_phase(setup)
            rows.append((raw, ours))
            print(f"round {round_no + 1}: raw client {raw:6.1f} pods/s, KubeProbe dispatch"
                  f" {ours:6.1f} pods/s = {ours / raw:.0%}; launched {launched}, errors {errors};"
                  f" load {os.getloadavg()[0]:.1f}")  # fmt: skip
        worst = {}
        for name, (qps, burst) in setup["limits"].items():
            seconds = per_second(kube, name)
            span = (max(seconds) - min(seconds)).total_seconds() + 1 if seconds else 1
            total = sum(seconds.values())
            worst[name] = max(seconds.values(), default=0)
            # A token bucket lets `burst` through at once, then `qps` a second.
            held = total <= burst + qps * span and worst[name] <= burst + qps
            print(f"  {name}: {total} pods over {span:.0f} s, at most {worst[name]} in one second"
                  f" (limit {qps:g}/s, burst {burst}): {'held' if held else 'EXCEEDED'}")  # fmt: skip
        ratios = [ours / raw for raw, ours in rows]
        print(f"median ratio {statistics.median(ratios):.0%} (target ≥ 70%);"
              f" load after {os.getloadavg()}")  # fmt: skip
        print(f"runs in the table: {ProbeRun.objects.count()}")
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
        kube.stop()
        redis.Redis.from_url(ENV["REDIS_URL"]).delete(f"{QUEUE}.dispatch")
        if not args.keep:
            from django.db import connection

            connection.close()
            run(["psql", PG + "/postgres", "-q", "-c", f"DROP DATABASE IF EXISTS {DB}"], ENV)


if __name__ == "__main__":
    main()
