"""bench/metrics_scrape.py at a small size: it loads its rows and reports the scrape."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_the_scrape_bench_loads_the_pairs_and_measures_them() -> None:
    database = f"kubeprobe_bench_metrics_test_{os.getpid()}"
    env = {**os.environ, "BENCH_DATABASE": database}
    try:
        done = subprocess.run(
            [
                sys.executable,
                "metrics_scrape.py",
                *("--clusters", "30", "--cases", "4", "--repeat", "1"),
            ],
            cwd=BENCH,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        subprocess.run(
            [
                "psql",
                "postgres://postgres@127.0.0.1:5432/postgres",
                "-q",
                "-c",
                f"DROP DATABASE IF EXISTS {database}",
            ],
            capture_output=True,
            timeout=60,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "loaded 30 clusters x 4 cases" in done.stdout
    # 120 pairs: success, duration and alert state each, plus 30 clusters x 2, plus aggregates.
    series = int(re.search(r"series: ([\d,]+)", done.stdout).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert 120 * 3 + 30 * 2 < series < 120 * 3 + 30 * 2 + 200
    assert re.search(r"/metrics gzip: median \d+ ms, max \d+ ms, [\d.]+ MB", done.stdout)
