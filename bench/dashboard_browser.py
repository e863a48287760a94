"""The overview in headless Chromium: time to an interactive matrix, and 1,000 live cells a second.

Uses the database of bench/dashboard.py (run that first, same --clusters and
--cases; BENCH_DATABASE) and the real stack: daphne (HTTP and websockets, one
process) on Postgres and the Redis channel layer. Chromium (Debian's chromium
and chromedriver, through selenium) logs in with a viewer's session and opens
/dashboard/; it prints, per load, the time from navigation start to the page's
performance.mark("matrix-ready") (grid.js: grid.json fetched, decoded, the rows
in view drawn), then clicks a cell and checks that its run page opens.

Then the live phase: this process pushes --rate changed cells a second for
--seconds through the real push path (apps.dashboard.push.push_pair, as the
post-run pipeline calls it: coalesced per window, Redis, daphne's consumer,
the websocket) to random pairs of the whole fleet, and the page reports the
cells it applied per second, the longest gap of a 50 ms timer (event-loop lag)
and the long tasks (PerformanceObserver "longtask") meanwhile; afterwards the
cells in view are checked against the last value pushed for them.

    python bench/dashboard.py --clusters 10000 --cases 20      # the database, once
    python bench/dashboard_browser.py [--loads 3] [--rate 1000] [--seconds 10]

Targets: matrix ready < 2 s; every pushed cell applied, the tab responsive.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _stack import PG, ROOT, daphne, processes, wait_http

DB = os.environ.get("BENCH_DATABASE", "kubeprobe_bench_dashboard")
PORT = int(os.environ.get("BENCH_PORT", "8769"))
REDIS = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/13")

OBSERVE = """
window.benchLag = 0; window.benchLong = [];
let last = performance.now();
setInterval(() => { const now = performance.now(); window.benchLag = Math.max(window.benchLag, now - last - 50); last = now; }, 50);
new PerformanceObserver((list) => { for (const e of list.getEntries()) window.benchLong.push(e.duration); })
  .observe({ type: "longtask", buffered: true });
"""


def load_average() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def setup_django() -> None:
    os.environ["DATABASE_URL"] = f"{PG}/{DB}"
    os.environ["REDIS_URL"] = REDIS
    os.environ.setdefault(
        "SECRET_KEY", "bench-secret-key-not-for-production-0123456789abcdefghijklmnop"
    )
    os.environ.setdefault(
        "KUBEPROBE_ENCRYPTION_KEY", "kTl4gWAX8Qp4NUS7vjUWRFDiRZPp6fz0mPnuV3Gq-dE="
    )
    os.environ["ALLOWED_HOSTS"] = "127.0.0.1,localhost"
    os.environ["KUBEPROBE_STATIC_MANIFEST"] = "false"
    os.environ.setdefault("KUBEPROBE_DEBUG", "1")  # static files from static/, as in the tests
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kubeprobe_site.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def session_cookie() -> str:
    from django.contrib.auth.models import Group, User
    from django.test import Client

    user, created = User.objects.get_or_create(username="bench-viewer", is_staff=True)
    if created:
        user.groups.add(Group.objects.get(name="viewer"))
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def chromium() -> object:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1600,1000",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(60)
    return driver


def wait(driver: object, script: str, seconds: float = 60) -> object:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = driver.execute_script(script)  # type: ignore[attr-defined]
        if value:
            return value
        time.sleep(0.02)
    raise TimeoutError(script)


def load_overview(driver: object, base: str) -> float:
    driver.get(f"{base}/dashboard/")  # type: ignore[attr-defined]
    wait(driver, "return performance.getEntriesByName('matrix-ready').length")
    return float(
        driver.execute_script(  # type: ignore[attr-defined]
            "return performance.getEntriesByName('matrix-ready')[0].startTime"
        )
    )


def live_phase(driver: object, rate: int, seconds: float) -> None:
    from apps.alerts.models import Alert
    from apps.dashboard import push

    wait(driver, "return document.getElementById('live-status').dataset.state === 'live'")
    wait(driver, "return window.kubeprobeLive && true")
    driver.execute_script(OBSERVE)  # type: ignore[attr-defined]
    pairs = list(Alert.objects.values_list("case_id", "cluster_id", "latest_run_id"))
    rng = random.Random(7)
    states = [("succeeded", "ok"), ("failed", "firing"), ("error", "acknowledged")]
    last: dict[tuple[int, int], tuple[str, str]] = {}
    before = driver.execute_script("return window.kubeprobeLive.applied()")  # type: ignore[attr-defined]
    samples = []
    start = time.monotonic()
    sent = 0
    tick = 0.01  # push in 10 ms slices: rate/100 cells each
    while (now := time.monotonic()) < start + seconds:
        due = int((now - start) * rate)
        while sent < due:
            case_id, cluster_id, run_id = pairs[rng.randrange(len(pairs))]
            run_state, alert_state = states[rng.randrange(3)]
            push.push_pair(
                case_id=case_id,
                cluster_id=cluster_id,
                state=alert_state,
                severity="warning",
                latest_state=run_state,
                latest_run_id=run_id,
            )
            last[(case_id, cluster_id)] = (run_state, alert_state)
            sent += 1
        if int(now - start) > len(samples):
            samples.append(
                (now, driver.execute_script("return window.kubeprobeLive.applied()"))  # type: ignore[attr-defined]
            )
        time.sleep(tick)
    push.flush_pairs()
    took = time.monotonic() - start
    time.sleep(1.0)  # the consumer's flush window and the page's next frame
    after = driver.execute_script("return window.kubeprobeLive.applied()")  # type: ignore[attr-defined]
    lag = driver.execute_script("return window.benchLag")  # type: ignore[attr-defined]
    longs = driver.execute_script("return window.benchLong")  # type: ignore[attr-defined]
    marks = [(start, before), *samples]
    per_second = [round((b - a) / (t2 - t1)) for (t1, a), (t2, b) in itertools.pairwise(marks)]
    print(
        f"live: pushed {sent} changed cells in {took:.1f} s ({sent / took:.0f}/s) over "
        f"{len(pairs)} pairs; distinct pairs {len(last)}"
    )
    print(
        f"live: cells applied on the page {after - before} ({(after - before) / took:.0f}/s; "
        f"per second: {', '.join(str(n) for n in per_second)})"
    )
    print(
        f"live: max event-loop lag {lag:.0f} ms; long tasks {len(longs)}"
        + (f" (max {max(longs):.0f} ms, total {sum(longs):.0f} ms)" if longs else "")
    )
    # The cells in view show the last value pushed for them (waiting for the last frames).
    settled = time.monotonic()
    while True:
        checked, wrong = check_in_view(driver, last)
        if not wrong or time.monotonic() - settled > 15:
            break
        time.sleep(0.25)
    print(
        f"live: cells in view that were pushed: {checked}, showing the last value: "
        f"{checked - wrong} ({time.monotonic() - settled + 1:.1f} s after the last push)"
    )
    if wrong:
        sys.exit(f"{wrong} cells in view do not show the last pushed value")


def check_in_view(driver: object, last: dict[tuple[int, int], tuple[str, str]]) -> tuple[int, int]:
    shown = driver.execute_script(  # type: ignore[attr-defined]
        "return Array.from(document.querySelectorAll('#matrix td.cell'))"
        ".map(td => [td.id, td.className])"
    )
    checked = wrong = 0
    for cell_id, classes in shown:
        _, case_id, cluster_id = cell_id.split("-")
        expected = last.get((int(case_id), int(cluster_id)))
        if expected is None:
            continue
        checked += 1
        if not {f"run-{expected[0]}", f"alert-{expected[1]}"} <= set(classes.split()):
            wrong += 1
    return checked, wrong


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=3)
    parser.add_argument("--rate", type=int, default=1000, help="changed cells a second")
    parser.add_argument("--seconds", type=float, default=10.0)
    opts = parser.parse_args()
    setup_django()
    cookie = session_cookie()
    env = {**os.environ, "LOG_LEVEL": "WARNING"}
    logs = Path(tempfile.mkdtemp(prefix="kubeprobe-grid-bench-"))
    base = f"http://127.0.0.1:{PORT}"
    with processes(env, logs, server=daphne(PORT)):
        wait_http(f"{base}/livez", 30)
        driver = chromium()
        try:
            driver.get(f"{base}/livez")  # type: ignore[attr-defined]
            driver.add_cookie({"name": "sessionid", "value": cookie, "path": "/"})  # type: ignore[attr-defined]
            load_overview(driver, base)  # warm: daphne's first requests, the browser's caches
            times = [load_overview(driver, base) for _ in range(opts.loads)]
            rows = driver.execute_script(
                "return document.getElementById('grid-summary').textContent"
            )  # type: ignore[attr-defined]
            in_dom = driver.execute_script(
                "return document.querySelectorAll('#matrix td.cell').length"
            )  # type: ignore[attr-defined]
            print(f"page: {rows.split(' ·')[0]}; cells in the DOM: {in_dom}")
            print(
                f"navigation start -> matrix ready: {', '.join(f'{t:.0f}' for t in times)} ms "
                f"(median {statistics.median(times):.0f} ms); target < 2000 ms: "
                f"{'met' if statistics.median(times) < 2000 else 'NOT met'}; load average "
                f"{load_average()}"
            )
            href = driver.execute_script(  # type: ignore[attr-defined]
                "const a = document.querySelector('#matrix td.cell a'); a.click(); return a.href"
            )
            wait(driver, f"return location.href === {href!r} && document.readyState === 'complete'")
            print(f"click on a cell: opened {href.replace(base, '')}")
            load_overview(driver, base)
            live_phase(driver, opts.rate, opts.seconds)
            print(f"load average {load_average()}")
        finally:
            driver.quit()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
