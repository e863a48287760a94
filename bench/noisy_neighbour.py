"""Noisy neighbour: does one unreachable cluster hold up everyone else?

Starts the stack as deployed, on Postgres and Redis, in a database and queues
of its own: gunicorn for reports, one Celery worker per queue sized as the
docs/operating.md advises for 2 cores (ticks -c 1, dispatch -c 4, alerts -c 2,
housekeeping and the default queue -c 2) and beat. Then, for `--seconds`:

- a kubernetes cluster `broken` whose API server drops every connection (a
  local port that accepts and closes at once; `--broken silent` accepts and
  never answers, so each call waits for its timeout), 4 cases every 10 s;
- healthy clusters (local executor: each run is a process that reports
  success over HTTP through probe_sdk): 2 cases every 10 s and 1 case every
  5 s on each;
- a `flip` case every 5 s on half of the healthy clusters that fails and
  passes in turn, under a rule that fires on one failure and resolves on one
  success, so every run of it changes its alert.

Then it stops beat, lets the queues drain and prints: ticks fired vs expected
on the healthy bindings (target: all, no gap over 1.5 periods), false alerts
on pairs whose runs all succeeded (target: 0), run finished -> alert flip
p50/p99 on the flip pairs (target: p99 < 2 s), when the broken cluster's
breaker opened and how long its dispatches took, and the cleanup passes'
durations (from the housekeeping worker's log). Exits non-zero if a target is
missed. Drops its database and stops its processes at the end, on Ctrl-C too.

    python bench/noisy_neighbour.py [--seconds 180] [--clusters 10] [--broken close|silent]

Needs: Postgres and Redis on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _stack import PG, bench_env, django_shell, fresh_database, gunicorn, processes, run
from _stack import wait_http as wait_http_up

DB = os.environ.get("BENCH_DATABASE", "kubeprobe_bench_noisy")
PORT = int(os.environ.get("BENCH_PORT", "8767"))
REDIS_DB = 11
# Flip-latency target, and what counts as a tick gap.
P99_TARGET_MS = 2000.0
GAP_FACTOR = 1.5

PASS_CASE = """\
from probe_sdk import Probe

with Probe() as probe:
    with probe.step("ping"):
        pass
"""
# Fails and passes in turn, per cluster: every run changes its alert.
FLIP_CASE = """\
import os
from pathlib import Path

from probe_sdk import Probe

state = Path(os.environ["BENCH_STATE_DIR"]) / os.environ["KUBEPROBE_CLUSTER"]
fail = not state.exists()
if fail:
    state.touch()
else:
    state.unlink()
with Probe() as probe:
    with probe.step("flip"):
        if fail:
            raise RuntimeError("bench: failing on purpose")
"""


class BrokenApiServer:
    """A port where the broken cluster's API server should be."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.held: list[socket.socket] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.mode == "close":
                conn.close()
            else:
                self.held.append(conn)  # silent: the TLS handshake never gets an answer

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def kubeconfig(port: int) -> str:
    return f"""apiVersion: v1
kind: Config
clusters:
- name: broken
  cluster: {{server: "https://127.0.0.1:{port}", insecure-skip-tls-verify: true}}
users:
- name: bench
  user: {{token: bench}}
contexts:
- name: broken
  context: {{cluster: broken, user: bench, namespace: bench}}
current-context: broken
"""


def setup_code(clusters: int, tmp: Path, port: int) -> str:
    return f"""
from apps.alerts.models import AlertRule
from apps.catalog.models import Case, CaseTemplate, RenderConfig
from apps.clusters.models import Cluster
from apps.scheduling.models import Binding

def template(name, **kw):
    return CaseTemplate.objects.create(name=name, image="bench", timeout_seconds=30, **kw)

passing = template("bench-pass", command=["python", {str(tmp / "pass_case.py")!r}])
flipping = template("bench-flip", command=["python", {str(tmp / "flip_case.py")!r}])
pod = template("bench-pod", command=["true"])
healthy = [Cluster.objects.create(name=f"healthy-{{i:02d}}", executor="local")
           for i in range({clusters})]
broken = Cluster.objects.create(name="broken", executor="kubernetes", namespace="bench",
                                kubeconfig={kubeconfig(port)!r})
pass_cases = [Case.objects.create(name=f"pass-{{c}}", template=passing) for c in "abc"]
flip = Case.objects.create(name="flip", template=flipping)
RenderConfig.objects.create(case=flip, name="flip", env={{"BENCH_STATE_DIR": {str(tmp / "state")!r}}})
pod_cases = [Case.objects.create(name=f"pod-{{i}}", template=pod) for i in range(4)]
AlertRule.objects.create(name="bench-flip", case=flip, consecutive_failures=1,
                         resolve_after_successes=1, flap_threshold=1000)

def bind(name, seconds, clusters, cases):
    binding = Binding(name=name, interval_seconds=seconds)
    binding.save()
    binding.clusters.set(clusters)
    binding.cases.set(cases)

bind("healthy-10s", 10, healthy, pass_cases[:2])
bind("healthy-5s", 5, healthy, pass_cases[2:])
bind("flip-5s", 5, healthy[: max(1, {clusters} // 2)], [flip])
bind("broken-10s", 10, [broken], pod_cases)
"""


# Runs in `manage.py shell` after beat stopped: waits for the runs to settle, prints JSON.
ANALYSIS = """
import json, time
from collections import defaultdict
from datetime import datetime, UTC
from apps.alerts.models import Alert, AlertFlip
from apps.clusters.models import Cluster
from apps.runs.models import ProbeRun
from apps.scheduling.models import Binding

ACTIVE = ("pending", "dispatched", "running")
deadline = time.monotonic() + 40
while ProbeRun.objects.filter(state__in=ACTIVE).exists() and time.monotonic() < deadline:
    time.sleep(0.2)
# The last finished runs' flips: evaluation is handed off every 0.1 s.
while time.monotonic() < deadline:
    latest = {(r["case_id"], r["cluster_id"]): r["id"] for r in ProbeRun.objects
              .filter(case__name="flip", finished_at__isnull=False)
              .order_by("finished_at").values("case_id", "cluster_id", "id")}
    seen = {(a.case_id, a.cluster_id): a.latest_run_id for a in Alert.objects.filter(case__name="flip")}
    if all(seen.get(k) == v for k, v in latest.items()):
        break
    time.sleep(0.2)

out = {"left_active": ProbeRun.objects.filter(state__in=ACTIVE).count()}
beat_stop = datetime.fromtimestamp(BEAT_STOP, UTC)
ticks = {}
for binding in Binding.objects.all():
    keys = ProbeRun.objects.filter(binding=binding, trigger="schedule").values_list(
        "idempotency_key", "created_at")
    first = defaultdict(lambda: None)
    for key, created in keys:
        tick = key.rsplit(":", 2)[0]
        if first[tick] is None or created < first[tick]:
            first[tick] = created
    times = sorted(first.values())
    ticks[binding.name] = {
        "interval": binding.interval_seconds,
        "times": [(t - beat_stop).total_seconds() for t in times],
        "skipped": binding.skipped_count,
    }
out["ticks"] = ticks

runs = list(ProbeRun.objects.values(
    "id", "case__name", "cluster__name", "state", "created_at", "dispatched_at", "finished_at",
    "reason"))
def secs(a, b):
    return (a - b).total_seconds() if a and b else None
out["runs"] = [
    {"case": r["case__name"], "cluster": r["cluster__name"], "state": r["state"],
     "queued": secs(r["dispatched_at"], r["created_at"]),
     "dispatch": secs(r["finished_at"], r["dispatched_at"]) if r["cluster__name"] == "broken" else None,
     "total": secs(r["finished_at"], r["created_at"]),
     "dispatched_at": secs(r["dispatched_at"], beat_stop),
     "reason": r["reason"][:120]}
    for r in runs
]
out["flips"] = [
    {"case": f.alert.case.name, "cluster": f.alert.cluster.name, "event": f.event,
     "latency": secs(f.created_at, f.run.finished_at) if f.run and f.run.finished_at else None}
    for f in AlertFlip.objects.select_related("alert__case", "alert__cluster", "run")
]
out["alerts"] = [
    {"case": a.case.name, "cluster": a.cluster.name, "state": a.state}
    for a in Alert.objects.select_related("case", "cluster")
]
broken = Cluster.objects.get(name="broken")
out["breaker"] = {
    "open_since": secs(broken.breaker_open_since, beat_stop),
    "failures": broken.breaker_failures,
    "last_error": broken.breaker_last_error,
}
print(json.dumps(out))
"""

CELERY_DONE = re.compile(r"Task (\S+)\[[^\]]+\] succeeded in ([0-9.]+)s: (.*)$")


def worker(queues: list[str], name: str, concurrency: int, loglevel: str) -> list[str]:
    return [
        sys.executable, "-m", "celery", "-A", "kubeprobe_site", "worker",
        "-Q", ",".join(queues), "-c", str(concurrency), "-n", f"{name}@%h",
        "--loglevel", loglevel, "--without-gossip", "--without-mingle",
    ]  # fmt: skip


def wait_ready(logs: list[Path], seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while not all(" ready." in log.read_text(errors="replace") for log in logs):
        if time.monotonic() > deadline:
            sys.exit(f"workers not ready after {seconds:.0f} s (logs: {logs[0].parent})")
        time.sleep(0.2)  # polling the logs for the condition


def beat(tmp: Path) -> list[str]:
    return [
        sys.executable, "-m", "celery", "-A", "kubeprobe_site", "beat",
        "--loglevel", "WARNING", "--pidfile", str(tmp / "beat.pid"),
    ]  # fmt: skip


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def ms(values: list[float]) -> str:
    if not values:
        return "none"
    return (
        f"p50 {pct(values, 50) * 1000:.0f} ms  p99 {pct(values, 99) * 1000:.0f} ms  "
        f"max {max(values) * 1000:.0f} ms  (n={len(values)})"
    )


def cleanup_passes(log: Path) -> list[tuple[float, str]]:
    passes = []
    for line in log.read_text(errors="replace").splitlines():
        found = CELERY_DONE.search(line)
        if found and found.group(1) == "apps.runs.tasks.cleanup_runs":
            passes.append((float(found.group(2)), found.group(3)))
    return passes


def report(data: dict[str, Any], seconds: float, passes: list[tuple[float, str]]) -> list[str]:
    """Print the numbers; return the missed targets."""
    missed: list[str] = []
    runs = data["runs"]
    print(f"\nruns: {len(runs)} in {seconds:.0f} s = {len(runs) / seconds:.1f} runs/s")
    if data["left_active"]:
        missed.append(f"{data['left_active']} runs still active after the drain")

    print("\nticks on the healthy bindings (fired / expected, largest gap):")
    for name, tick in sorted(data["ticks"].items()):
        times, interval = tick["times"], tick["interval"]
        if name.startswith("broken"):
            print(f"  {name}: {len(times)} ticks (for the dispatch load)")
            continue
        # Ticks from the first one to beat's stop, half a second of slack for jitter.
        expected = int((-times[0] - 0.5) // interval) + 1 if times else 0
        gaps = [b - a for a, b in itertools.pairwise(times)]
        gap = max(gaps, default=0.0)
        at = times[gaps.index(gap)] if gaps else 0.0
        print(
            f"  {name} (every {interval}s): {len(times)} / {expected}, largest gap {gap:.1f} s ({-at:.0f} s before the end),"
            f" runs skipped (previous still active): {tick['skipped']}"
        )
        if not times or len(times) < expected:
            missed.append(f"{name}: {len(times)} of {expected} ticks")
        if gap > GAP_FACTOR * interval:
            missed.append(f"{name}: a gap of {gap:.1f} s between ticks")

    healthy = [r for r in runs if r["cluster"] != "broken"]
    passing = [r for r in healthy if r["case"] != "flip"]
    states: dict[str, int] = {}
    for r in passing:
        states[r["state"]] = states.get(r["state"], 0) + 1
    print(f"\nhealthy pairs' runs: {states}")
    print(f"  tick -> dispatched: {ms([r['queued'] for r in healthy if r['queued'] is not None])}")
    print(f"  tick -> finished:   {ms([r['total'] for r in passing if r['total'] is not None])}")
    bad = [r for r in passing if r["state"] != "succeeded"]
    for r in bad[:5]:
        print(f"    {r['case']}@{r['cluster']}: {r['state']} {r['reason']}")
    if bad:
        missed.append(f"{len(bad)} runs of passing pairs did not succeed")

    all_ok: dict[tuple[str, str], bool] = {}
    for r in passing:
        key = (r["case"], r["cluster"])
        all_ok[key] = all_ok.get(key, True) and r["state"] == "succeeded"
    clean = {k for k, ok in all_ok.items() if ok}
    false_flips = [f for f in data["flips"] if (f["case"], f["cluster"]) in clean]
    false_alerts = [
        a for a in data["alerts"] if (a["case"], a["cluster"]) in clean and a["state"] != "ok"
    ]
    print(
        f"false alerts on {len(clean)} pairs whose runs all succeeded: "
        f"{len(false_flips)} flips, {len(false_alerts)} alerts not ok (target 0)"
    )
    if false_flips or false_alerts:
        missed.append(f"{len(false_flips)} false flips, {len(false_alerts)} false alerts")

    flips = [f for f in data["flips"] if f["case"] == "flip" and f["latency"] is not None]
    flip_runs = [
        r for r in healthy if r["case"] == "flip" and r["state"] in ("succeeded", "failed")
    ]
    print(
        f"\nflip pairs: {len(flip_runs)} finished runs, {len(flips)} flips "
        f"({sum(f['event'] == 'firing' for f in flips)} firing, "
        f"{sum(f['event'] == 'resolved' for f in flips)} resolved)"
    )
    latencies = [f["latency"] for f in flips]
    print(f"  run finished -> flip: {ms(latencies)}")
    print(f"    firing only:        {ms([f['latency'] for f in flips if f['event'] == 'firing'])}")
    if len(flips) < len(flip_runs):
        missed.append(f"{len(flip_runs) - len(flips)} flip-pair runs changed no alert")
    if not latencies or pct(latencies, 99) * 1000 >= P99_TARGET_MS:
        missed.append("run finished -> flip p99 not under 2 s")

    broken = [r for r in runs if r["cluster"] == "broken"]
    breaker = data["breaker"]
    print(f"\nbroken cluster: {len(broken)} runs, states {_count(broken, 'state')}")
    print(f"  last error: {breaker['last_error'][:150]}")
    first = min(
        (r["dispatched_at"] for r in broken if r["dispatched_at"] is not None), default=None
    )
    opened = breaker["open_since"]
    if opened is None or first is None:
        print("  breaker: never opened")
        missed.append("the broken cluster's breaker never opened")
    else:
        print(f"  breaker opened {opened - first:.2f} s after its first dispatch")
        before = [
            r["dispatch"]
            for r in broken
            if r["dispatch"] is not None and r["dispatched_at"] < opened
        ]
        after = [
            r["dispatch"]
            for r in broken
            if r["dispatch"] is not None and r["dispatched_at"] >= opened
        ]
        print(f"  dispatch (claimed -> run ended) before it opened: {ms(before)}")
        print(f"  dispatch while open:                              {ms(after)}")

    durations = [d for d, _ in passes]
    print(f"\ncleanup passes: {len(passes)}, {ms(durations)}")
    print("  " + ", ".join(f"{d * 1000:.0f} ms ({n} cleaned)" for d, n in passes))
    return missed


def _count(rows: list[dict[str, Any]], field: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row[field]] = counts.get(row[field], 0) + 1
    return counts


def drop_everything(env: dict[str, str], queue: str) -> None:
    """The bench's database and Redis keys go; nothing of it stays behind."""
    try:
        run(
            ["psql", PG + "/postgres", "-q", "-c", f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)"],
            env,
        )
    except Exception as exc:  # cleanup reports and goes on
        print(f"could not drop {DB}: {exc}", file=sys.stderr)
    keys = [queue, *(f"{queue}.{kind}" for kind in ("ticks", "dispatch", "alerts", "housekeeping"))]
    code = (
        "import redis, sys\n"
        "r = redis.Redis.from_url(sys.argv[1])\n"
        "names = sys.argv[2:]\n"
        "r.delete(*names, *(p + n for n in names for p in ('_kombu.binding.',"
        " '_kombu.binding_permanent.')))\n"
        "for k in r.scan_iter(sys.argv[2] + ':*'): r.delete(k)\n"
    )
    try:
        run([sys.executable, "-c", code, env["REDIS_URL"], *keys], env)
    except Exception as exc:
        print(f"could not delete the bench's Redis keys: {exc}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--clusters", type=int, default=10, help="healthy clusters")
    parser.add_argument("--broken", choices=("close", "silent"), default="close")
    opts = parser.parse_args()
    # Ctrl-C and a plain kill both unwind through the finally blocks below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    tmp = Path(tempfile.mkdtemp(prefix="kubeprobe-noisy-bench-"))
    (tmp / "state").mkdir()
    (tmp / "pass_case.py").write_text(PASS_CASE)
    (tmp / "flip_case.py").write_text(FLIP_CASE)
    queue = f"kubeprobe-noisy-bench-{os.getpid()}"
    base = f"http://127.0.0.1:{PORT}"
    env = {
        **bench_env(DB, REDIS_DB, queue),
        "KUBEPROBE_LOCAL_EXECUTOR_ENABLED": "true",
        "KUBEPROBE_LOCAL_RUN_DIR": str(tmp / "runs"),
        "KUBEPROBE_PUBLIC_URL": base,
        # Cache keys and pod labels of this bench only (the Redis cleanup deletes by it).
        "KUBEPROBE_INSTALLATION": queue,
    }
    broken = BrokenApiServer(opts.broken)
    missed: list[str] = []
    ok = False
    try:
        print(f"preparing {DB} ...", flush=True)
        fresh_database(env, DB)
        django_shell(env, setup_code(opts.clusters, tmp, broken.port))
        ticks_q, dispatch, alerts, housekeeping = (
            f"{queue}.{k}" for k in ("ticks", "dispatch", "alerts", "housekeeping")
        )
        stack = {
            "server": gunicorn(PORT),
            # INFO: the logs say when a worker is ready and how long each task took.
            "ticks": worker([ticks_q], "ticks", 1, "INFO"),
            "dispatch": worker([dispatch], "dispatch", 4, "INFO"),
            "alerts": worker([alerts], "alerts", 2, "INFO"),
            "housekeeping": worker([housekeeping, queue], "housekeeping", 2, "INFO"),
        }
        with processes(env, tmp, **stack):
            wait_http_up(base + "/livez", 30)
            # Ticks sent before the workers listen would start the clock with a backlog.
            wait_ready(
                [tmp / f"{name}.log" for name in ("ticks", "dispatch", "alerts", "housekeeping")]
            )
            print(
                f"running {opts.seconds:.0f} s: {opts.clusters} healthy clusters, "
                f"broken API server ({opts.broken}) on port {broken.port}",
                flush=True,
            )
            with processes(env, tmp, beat=beat(tmp)):
                time.sleep(opts.seconds)  # the scenario's length, not a synchronisation
                beat_stop = time.time()
            print("beat stopped; letting the runs finish ...", flush=True)
            analysis = f"BEAT_STOP = {beat_stop!r}\n" + ANALYSIS
            data = json.loads(django_shell(env, analysis).strip().splitlines()[-1])
        passes = cleanup_passes(tmp / "housekeeping.log")
        load = os.getloadavg()
        print(
            f"\nmachine: {os.cpu_count()} cores, load average {load[0]:.1f}/{load[1]:.1f}/"
            f"{load[2]:.1f}; gunicorn 2x4, workers ticks -c 1, dispatch -c 4, alerts -c 2, "
            f"housekeeping -c 2, beat; Postgres + Redis local"
        )
        missed = report(data, opts.seconds, passes)
        ok = True
    finally:
        broken.close()
        if not os.environ.get("BENCH_KEEP_DATABASE"):
            drop_everything(env, queue)
        if ok and not missed:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"logs kept in {tmp}", file=sys.stderr)
    if missed:
        print("\ntargets missed:\n  " + "\n  ".join(missed))
        sys.exit(1)
    print("\nall targets met")


if __name__ == "__main__":
    main()
