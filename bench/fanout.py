"""One schedule tick over 10,000 clusters × 20 cases (200,000 runs): time, memory, no loss.

Creates a scratch database on Postgres (dropped and migrated first), 10,000
clusters matched by one cluster group's label selector, 20 cases and one
binding over both. Then, each in a process of its own (the tick is what a
`fire_binding` worker does: `binding_fire_schedule`):

1. one tick, timed end to end: planning (targets expanded), storing (the runs
   inserted and committed) and handing to dispatch (the wake-up messages
   published to Redis; the runs are claimable once committed), with the
   process's peak RSS (getrusage) before and after;
2. the same tick delivered twice more, at once (two processes): nothing new;
3. a worker killed (SIGKILL) mid-tick, while one of its INSERTs runs (some
   slices committed, the tick left open), then the tick delivered again (a
   later clock, as a redelivered message has): the missing runs are added,
   every run of that tick exactly once.

Then it checks that every (case, cluster) pair has exactly one run per tick,
that each tick's runs are pending and claimable, and prints the numbers.
Targets: tick ≤ 10 s, peak RSS ≤ 500 MB, no duplicate, no lost run.

    python bench/fanout.py [--clusters 10000] [--cases 20] [--keep]

Needs Postgres on 127.0.0.1 (BENCH_PG, BENCH_DATABASE) and Redis (REDIS_URL,
default db 14; the wake-ups go to a queue of the bench's own, purged after).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

from _stack import PG, ROOT, bench_env, run

DB = os.environ.get("BENCH_DATABASE", "kubeprobe_bench_fanout")
QUEUE = "bench-fanout"
TICK1 = datetime(2026, 12, 7, 12, 0, 0, 250000, tzinfo=UTC)
TICK2 = TICK1 + timedelta(minutes=1)


def env() -> dict[str, str]:
    return bench_env(DB, 14, QUEUE)


def setup_django() -> None:
    os.environ.update(env())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kubeprobe_site.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def prepare(clusters: int, cases: int) -> int:
    """A fresh database with the fleet and one binding; returns the binding's id."""
    drop, create = f"DROP DATABASE IF EXISTS {DB}", f"CREATE DATABASE {DB}"
    run(["psql", PG + "/postgres", "-q", "-c", drop, "-c", create], env())
    run([sys.executable, "manage.py", "migrate", "-v", "0"], env())
    code = f"""
from apps.catalog.models import Case, CaseTemplate
from apps.clusters.models import Cluster, ClusterGroup
from apps.scheduling.models import Binding
Cluster.objects.bulk_create(
    [Cluster(name=f"c-{{i:05d}}", executor="kubernetes", labels={{"fleet": "bench"}})
     for i in range({clusters})], batch_size=2000)
group = ClusterGroup.objects.create(name="fleet", selector={{"fleet": "bench"}})
template = CaseTemplate.objects.create(name="bench", image="x", timeout_seconds=60)
cases = Case.objects.bulk_create([Case(name=f"case-{{i:02d}}", template=template)
                                  for i in range({cases})])
binding = Binding.objects.create(name="fleet-every-minute", interval_seconds=60)
binding.groups.set([group])
binding.cases.set(cases)
print(binding.pk)
"""
    out = run([sys.executable, "manage.py", "shell", "-c", code], env())
    run(["psql", f"{PG}/{DB}", "-q", "-c", "VACUUM ANALYZE"], env())
    return int(out.strip().splitlines()[-1])


def tick_child(binding_id: int, tick: str) -> None:
    """What a ticks worker does for one tick, measured: prints one JSON line."""
    setup_django()
    from django.db import connection
    from django.utils.dateparse import parse_datetime

    from apps.scheduling.services import binding_fire_schedule

    connection.ensure_connection()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"phase": "start", "pid": os.getpid()}), flush=True)
    started = time.perf_counter()
    result = binding_fire_schedule(binding_id=binding_id, now=parse_datetime(tick))
    elapsed = time.perf_counter() - started  # includes the commit and the published wake-ups
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "phase": "done",
                "created": len(result.created),
                "skipped": result.skipped,
                "seconds": elapsed,
                "rss_before_mb": rss_before / 1024,
                "peak_rss_mb": peak / 1024,
            }
        ),
        flush=True,
    )


def spawn_tick(binding_id: int, tick: datetime) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, "--child", str(binding_id), tick.isoformat()],
        cwd=ROOT,
        env=env(),
        stdout=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> dict[str, float]:
    out, _ = process.communicate(timeout=600)
    if process.returncode:
        raise SystemExit(f"tick process failed ({process.returncode})")
    return json.loads(out.strip().splitlines()[-1])


def psql(sql: str) -> str:
    return run(["psql", f"{PG}/{DB}", "-At", "-c", sql], env()).strip()


def kill_mid_tick(binding_id: int, tick: datetime) -> float:
    """Start a tick, SIGKILL it while its INSERT runs; returns how far in it was killed."""
    process = spawn_tick(binding_id, tick)
    assert process.stdout is not None
    started = time.monotonic()
    pid = json.loads(process.stdout.readline())["pid"]
    query = (
        "SELECT pid FROM pg_stat_activity WHERE state = 'active'"
        " AND query LIKE 'WITH p AS (SELECT c.id AS case_id%'"
    )
    backend = ""
    while not backend:
        if process.poll() is not None:
            raise SystemExit("the tick finished before it could be killed")
        backend = psql(query)
    killed_at = time.monotonic() - started
    os.kill(pid, signal.SIGKILL)
    process.wait()
    # Postgres notices the lost client when a statement ends, and rolls it back:
    # wait for every backend of the killed tick, so the redelivery is timed alone.
    while (
        psql(query.replace("SELECT pid", "SELECT count(*)") + " AND datname = current_database()")
        != "0"
    ):
        time.sleep(0.05)
    return killed_at


def check(binding_id: int, tick: datetime, pairs: int) -> dict[str, int]:
    prefix = f"schedule:{binding_id}:{tick.isoformat()}:"
    row = psql(
        "SELECT count(*), count(DISTINCT (case_id, cluster_id)), count(DISTINCT idempotency_key),"
        " count(*) FILTER (WHERE state = 'pending' AND enqueued_at <= now())"
        f" FROM runs_proberun WHERE idempotency_key LIKE '{prefix}%'"
    )
    runs, distinct_pairs, keys, claimable = (int(x) for x in row.split("|"))
    return {
        "runs": runs,
        "pairs": distinct_pairs,
        "keys": keys,
        "claimable": claimable,
        "lost": pairs - distinct_pairs,
        "duplicates": runs - distinct_pairs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clusters", type=int, default=10_000)
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    parser.add_argument("--first-tick-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        tick_child(int(args.child[0]), args.child[1])
        return
    import redis

    pairs = args.clusters * args.cases
    started = time.monotonic()
    binding_id = prepare(args.clusters, args.cases)
    print(f"fleet: {args.clusters} clusters × {args.cases} cases = {pairs} runs per tick,")
    print(f"  database ready in {time.monotonic() - started:.0f} s; load: {os.getloadavg()}")
    broker = redis.Redis.from_url(env()["REDIS_URL"])
    broker.delete(f"{QUEUE}.dispatch")

    first = finish(spawn_tick(binding_id, TICK1))
    wakes = broker.llen(f"{QUEUE}.dispatch")
    print(
        f"tick 1: {first['created']} runs planned, stored and handed to dispatch in"
        f" {first['seconds']:.2f} s ({first['created'] / first['seconds']:,.0f} runs/s);"
        f" peak RSS {first['peak_rss_mb']:.0f} MB (before the tick {first['rss_before_mb']:.0f}"
        f" MB); {wakes} wake-up messages"
    )
    if args.first_tick_only:
        return
    twins = [finish(p) for p in [spawn_tick(binding_id, TICK1), spawn_tick(binding_id, TICK1)]]
    print(f"tick 1 delivered twice more, at once: created {[t['created'] for t in twins]}")
    one = check(binding_id, TICK1, pairs)
    print(f"  check: {one}")

    # The next tick would skip every pair still pending: finish tick 1's runs first.
    psql("UPDATE runs_proberun SET state = 'succeeded', finished_at = now()")
    psql("VACUUM ANALYZE runs_proberun")
    killed_after = kill_mid_tick(binding_id, TICK2)
    left = check(binding_id, TICK2, pairs)["runs"]
    print(
        f"tick 2: worker SIGKILLed {killed_after:.2f} s in, during an INSERT;"
        f" {left} runs of its committed slices stored, the tick left open"
    )
    # The redelivered message runs later, on its own clock: it completes the open tick.
    again = finish(spawn_tick(binding_id, TICK2 + timedelta(seconds=2)))
    two = check(binding_id, TICK2, pairs)
    print(
        f"tick 2 delivered again: the {again['created']} missing runs in {again['seconds']:.2f} s,"
        f" peak RSS {again['peak_rss_mb']:.0f} MB"
    )
    print(f"  check: {two}")
    broker.delete(*(f"{QUEUE}.{kind}" for kind in ("dispatch", "ticks")))
    if not args.keep:
        run(["psql", PG + "/postgres", "-q", "-c", f"DROP DATABASE IF EXISTS {DB}"], env())
    ok = (
        first["seconds"] <= 10
        and max(first["peak_rss_mb"], again["peak_rss_mb"]) <= 500
        and all(c["lost"] == 0 and c["duplicates"] == 0 for c in (one, two))
        and one["runs"] == two["runs"] == pairs
        and left + again["created"] == pairs
    )
    print(f"load after: {os.getloadavg()}; targets {'met' if ok else 'MISSED'}")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
