"""Report ingestion, end to end over real HTTP against the real stack.

Starts the portal's production HTTP server (gunicorn, 2 processes per core
x 8 threads, as docs/operating.md advises) on Postgres and Redis, creates N dispatched
runs with known tokens, warms both endpoints up, then drives 50 concurrent keep-alive clients with wrk, in
rounds: first against /livez (a trivial view, through Django as every
non-report request), then against the report endpoint, each run reporting
once (every round has its own runs). Prints, per round and as the median of
the rounds, reports/s, p50/p99 latency, and ingestion's rate as a share of
the trivial rate (target: at least 50%), and the CPU time per request the
server and Postgres spent in each phase (read from /proc; less moved by
noise than rates). The machine is shared and noisy, so the two rates are
compared within a round, phases alternate, and the median round counts.
Every 200 must be a stored run: the script checks the database afterwards.
wrk's script sends reports only: a wrk thread that has used up its runs stops
and says so, and that phase fails (give more --runs or fewer --seconds).

    python bench/ingest.py [--seconds 10] [--rounds 3] [--connections 50] [--runs 100000]

Needs: wrk (apt-get install wrk), Postgres and Redis on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from _stack import fresh_database

ROOT = Path(__file__).resolve().parents[1]
DB = os.environ.get("BENCH_DATABASE", "kubeprobe_bench")
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
PORT = int(os.environ.get("BENCH_PORT", "8765"))

LUA = r"""
local runs = {}
local counter = 0
-- Globals, not locals: setup() sets thread_index and done() reads out_of_runs and
-- sent through each thread's handle (thread:get sees only globals).
thread_count = 1
out_of_runs = false
sent = 0
local body = '{"ok": false, "errors": ["etcd: context deadline exceeded"], "steps": [{"name": "put", "ok": true, "duration_ms": 3}, {"name": "get", "ok": false, "duration_ms": 5000, "error": "timeout"}], "metrics": {"put_ms": 3}}'
local next_thread = 0
local threads = {}

function setup(thread)
  thread:set("thread_index", next_thread)
  next_thread = next_thread + 1
  table.insert(threads, thread)
end

function init(args)
  thread_count = tonumber(args[2])
  for line in io.lines(args[1]) do
    local id, token = line:match("(%d+) (%S+)")
    table.insert(runs, {id = id, token = token})
  end
end

-- wrk calls request() once in thread 0 to check the script before any thread runs:
-- that first run is never sent (nor reported). No response() on purpose: with one,
-- wrk copies every answer's headers and body into Lua, client CPU the server's rate
-- would pay for on this shared machine.
function request()
  -- Each wrk thread takes every thread_count-th run, starting at its index.
  if counter == 0 then counter = thread_index + 1 end
  local r = runs[counter]
  if r == nil then
    -- This thread's runs are used up: it stops (answers still in flight go
    -- uncounted; the phase fails anyway) and sends nothing else. An empty request
    -- writes no bytes, so no answer to anything but a report is ever counted.
    out_of_runs = true
    wrk.thread:stop()
    return ""
  end
  counter = counter + thread_count
  sent = sent + 1
  return wrk.format("POST", "/api/v1/runs/" .. r.id .. "/report",
    {["Authorization"] = "Bearer " .. r.token, ["Content-Type"] = "application/json"}, body)
end

function done(summary, latency, requests)
  io.write(string.format("p50_ms=%.2f p99_ms=%.2f\n", latency:percentile(50) / 1000, latency:percentile(99) / 1000))
  for _, thread in ipairs(threads) do
    io.write(string.format("thread=%d sent=%d out_of_runs=%s\n",
      thread:get("thread_index"), thread:get("sent"), tostring(thread:get("out_of_runs"))))
  end
end
"""


def sh(*args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(
        args, check=True, capture_output=True, text=True, env=env, cwd=ROOT
    ).stdout


def manage(env: dict[str, str], *args: str) -> str:
    return sh(sys.executable, "manage.py", *args, env=env)


def prepare(env: dict[str, str], runs: int, tokens_file: Path) -> None:
    fresh_database(env, DB)
    tokens = [secrets.token_urlsafe(32) for _ in range(runs)]
    code = f"""
import hashlib
from datetime import timedelta
from django.utils import timezone
from apps.catalog.models import Case, CaseTemplate
from apps.clusters.models import Cluster
from apps.runs.models import ProbeRun
tokens = open({str(tokens_file) + ".raw"!r}).read().split()
cluster = Cluster.objects.create(name="bench", executor="local")
case = Case.objects.create(name="bench", template=CaseTemplate.objects.create(name="bench", image="x"))
now = timezone.now()
ProbeRun.objects.bulk_create([
    ProbeRun(case=case, cluster=cluster, trigger="manual", state="running", dispatched_at=now,
             deadline=now + timedelta(hours=2), token_hash=hashlib.sha256(t.encode()).hexdigest(),
             idempotency_key=f"bench:{{i}}")
    for i, t in enumerate(tokens)], batch_size=5000)
# A live table has planner statistics (autovacuum analyzes it); a table
# filled a second ago has none, and the planner would walk every active run.
from django.db import connection
connection.cursor().execute("ANALYZE runs_proberun")
ids = list(ProbeRun.objects.order_by("idempotency_key").values_list("id", "idempotency_key"))
by_key = {{k: i for i, k in ids}}
with open({str(tokens_file)!r}, "w") as out:
    for i, t in enumerate(tokens):
        out.write(f"{{by_key[f'bench:{{i}}']}} {{t}}\\n")
"""
    Path(str(tokens_file) + ".raw").write_text("\n".join(tokens))
    manage(env, "shell", "-c", code)
    assert sum(1 for _ in tokens_file.open()) == runs


def wrk(
    url: str,
    seconds: int,
    connections: int,
    script: Path | None = None,
    args: list[str] | None = None,
) -> dict[str, float]:
    cmd = ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--latency"]
    if script:
        cmd += ["-s", str(script), url, "--", *(args or [])]
    else:
        cmd += [url]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr or done.stdout}")
    out = done.stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    result = {"rate": rate, "requests": float(re.search(r"(\d+) requests in", out).group(1))}  # type: ignore[union-attr]
    if m := re.search(r"p50_ms=([\d.]+) p99_ms=([\d.]+)", out):
        result["p50_ms"], result["p99_ms"] = float(m.group(1)), float(m.group(2))
    else:
        p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
        p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
        result["p50_ms"] = float(p50.group(1)) * scale[p50.group(2)]  # type: ignore[union-attr]
        result["p99_ms"] = float(p99.group(1)) * scale[p99.group(2)]  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["non_2xx"] = float(non2xx.group(1)) if non2xx else 0.0
    if script:
        threads = re.findall(r"thread=\d+ sent=\d+ out_of_runs=(true|false)", out)
        result["threads"] = float(len(threads))
        result["threads_out_of_runs"] = float(threads.count("true"))
    return result


def phase_failure(result: dict[str, float], phase: str, runs: int) -> str | None:
    """Why a report phase measured nothing worth keeping, or None.

    A wrk thread that used up its runs stops sending while the others go on,
    so the phase's rate would mix full and idle threads: every thread must still
    have had runs when the time was up.
    """
    if not result.get("threads"):
        return f"{phase}: the wrk script did not say how its threads fared"
    if result.get("threads_out_of_runs"):
        return (
            f"{phase}: {result['threads_out_of_runs']:.0f} of {result['threads']:.0f} wrk"
            f" threads ran out of runs; give more --runs than {runs} or fewer --seconds"
        )
    return None


def _cpu_seconds(pids: list[int]) -> dict[int, float]:
    """CPU seconds used so far by each of these processes that is still alive."""
    used = {}
    for pid in pids:
        try:  # fields after the command name: utime and stime are the 12th and 13th
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return used


def cpu_usage(server: int, database: str = DB) -> tuple[dict[int, float], dict[int, float]]:
    """CPU seconds used so far by the server's processes and by Postgres', per process."""
    children = Path(f"/proc/{server}/task/{server}/children").read_text().split()
    return _cpu_seconds([server, *map(int, children)]), _cpu_seconds(_postgres_pids(database))


def _spent(before: dict[int, float], after: dict[int, float]) -> float:
    # A process that exited in between (a backend past CONN_MAX_AGE) drops out;
    # one that started counts whole.
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def measured(
    server: int, run: Callable[[], dict[str, float]], database: str = DB
) -> dict[str, float]:
    """A wrk phase, with the CPU milliseconds per request it cost the server and Postgres
    (the backends of `database`, the one the server uses)."""
    before = cpu_usage(server, database)
    result = run()
    after = cpu_usage(server, database)
    result["server_ms"] = _spent(before[0], after[0]) * 1000 / result["requests"]
    result["postgres_ms"] = _spent(before[1], after[1]) * 1000 / result["requests"]
    return result


def _postgres_pids(database: str) -> list[int]:
    """Postgres' own processes (WAL writer, checkpointer...) and the bench database's
    backends; not other databases' backends (the machine may be shared)."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if (proc / "comm").read_text().strip() != "postgres":
                continue
            title = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        # A backend's title: "postgres: user database host(port) state".
        backend = "(" in title or "[local]" in title
        if not backend or f" {database} " in title:
            pids.append(int(proc.name))
    return pids


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10, help="per phase")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--runs", type=int, default=100000)
    opts = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk")
    tmp = Path(tempfile.mkdtemp(prefix="kubeprobe-bench-"))
    env = {
        **os.environ,
        "DATABASE_URL": f"{PG}/{DB}",
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14"),
        "SECRET_KEY": "bench-" + "x" * 60,
        "KUBEPROBE_ENCRYPTION_KEY": "kTl4gWAX8Qp4NUS7vjUWRFDiRZPp6fz0mPnuV3Gq-dE=",
        "KUBEPROBE_STATIC_MANIFEST": "false",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "CELERY_TASK_DEFAULT_QUEUE": "kubeprobe-bench",
        "LOG_LEVEL": "WARNING",
        "DATABASE_CONN_MAX_AGE": "60",
    }
    # As docs/operating.md ("Running it in production") advises: two processes per core
    # keep the cores busy while threads wait for Postgres.
    workers = int(os.environ.get("BENCH_WORKERS", str(2 * (os.cpu_count() or 1))))
    threads = int(os.environ.get("BENCH_THREADS", "8"))
    tokens = tmp / "tokens.txt"
    print(f"preparing {opts.runs} dispatched runs in {DB} ...", flush=True)
    prepare(env, opts.runs, tokens)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "kubeprobe_site.wsgi:application",
            "-b",
            f"127.0.0.1:{PORT}",
            "-w",
            str(workers),
            "--threads",
            str(threads),
            "-k",
            "gthread",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "server.log").open("w"),
    )
    base = f"http://127.0.0.1:{PORT}"
    rounds: list[tuple[dict[str, float], dict[str, float]]] = []
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(base + "/livez", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        script = tmp / "report.lua"
        script.write_text(LUA)
        # Each round reports runs of its own, so no report finds its run
        # finished; the last share warms the report path up (connections,
        # prepared statements, imports) before anything is measured.
        lines = tokens.read_text().splitlines(keepends=True)
        share = len(lines) // (opts.rounds + 1)
        warm_part = tmp / "tokens-warm-up.txt"
        warm_part.write_text("".join(lines[opts.rounds * share :]))
        wrk(base + "/livez", 3, opts.connections)
        warm = wrk(base + "/", 3, opts.connections, script, [str(warm_part), "2"])
        if failure := phase_failure(warm, "warm-up", opts.runs):
            sys.exit(failure)
        for n in range(opts.rounds):
            part = tmp / f"tokens-{n}.txt"
            part.write_text("".join(lines[n * share : (n + 1) * share]))
            trivial = measured(
                server.pid, lambda: wrk(base + "/livez", opts.seconds, opts.connections)
            )
            ingest = measured(
                server.pid,
                lambda part=part: wrk(
                    base + "/", opts.seconds, opts.connections, script, [str(part), "2"]
                ),
            )
            if failure := phase_failure(ingest, f"round {n + 1}", opts.runs):
                sys.exit(failure)
            rounds.append((trivial, ingest))
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    stored = (
        manage(
            env,
            "shell",
            "-v",
            "0",
            "-c",
            "from apps.runs.models import ProbeRun; print(ProbeRun.objects.filter(state='failed').count())",
        )
        .strip()
        .splitlines()[-1]
    )
    phases = [warm, *(i for _, i in rounds)]
    reports = int(sum(i["requests"] - i["non_2xx"] for i in phases))
    non_2xx = int(sum(i["non_2xx"] for i in phases))
    cpu = os.cpu_count()
    print(
        f"machine: {cpu} cores; server: gunicorn {workers}x{threads} gthread;"
        f" clients: wrk, {opts.connections} connections"
    )
    for n, (trivial, ingest) in enumerate(rounds, 1):
        print(
            f"round {n}: /livez {trivial['rate']:6.0f} req/s (p50 {trivial['p50_ms']:.1f} ms"
            f" p99 {trivial['p99_ms']:.1f} ms) | reports {ingest['rate']:6.0f}/s"
            f" (p50 {ingest['p50_ms']:.1f} ms p99 {ingest['p99_ms']:.1f} ms)"
            f" | ratio {ingest['rate'] / trivial['rate']:.0%}"
            f" | CPU per request: /livez {trivial['server_ms']:.2f} ms,"
            f" report {ingest['server_ms']:.2f} ms + Postgres {ingest['postgres_ms']:.2f} ms"
        )
    trivial, ingest = sorted(rounds, key=lambda r: r[1]["rate"] / r[0]["rate"])[len(rounds) // 2]
    print(
        f"median round: /livez {trivial['rate']:.0f} req/s, reports {ingest['rate']:.0f}/s,"
        f" p50 {ingest['p50_ms']:.1f} ms, p99 {ingest['p99_ms']:.1f} ms,"
        f" ratio ingestion/trivial {ingest['rate'] / trivial['rate']:.0%} (target >= 50%)"
    )
    print(f"reports answered 2xx: {reports}; runs stored as failed: {stored}; non-2xx: {non_2xx}")
    if int(stored) < reports:
        sys.exit("LOST DATA: fewer stored runs than accepted reports")
    if non_2xx:
        sys.exit("some reports were refused: their rate is not an ingestion rate")


if __name__ == "__main__":
    main()
