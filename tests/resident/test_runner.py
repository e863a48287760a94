"""The resident runner (`python -m probe_sdk.resident`): its pure parts with a fake
clock, then the real process against a real HTTP server playing the center
(tests/resident/center.py, the protocol of POST /api/v1/resident/samples)."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from probe_sdk.resident.bucket import TokenBucket
from probe_sdk.resident.denoise import DOWN, UP, Denoiser
from probe_sdk.resident.runner import Config, ConfigError
from probe_sdk.resident.sender import MAX_BATCH_WINDOWS, Outbox
from probe_sdk.resident.windows import Sample, Window, iso
from tests.portal import ROOT
from tests.resident.center import TOKEN, Center
from tests.utils import wait_for

SCRIPTED = Path(__file__).with_name("scripted_case.py")


# ---- pure parts


def test_one_failed_sample_among_successes_changes_nothing_k_of_n_does() -> None:
    denoiser = Denoiser(k=3, n=5)
    outcomes = [True] * 5 + [False] + [True] * 5
    assert [denoiser.add(ok) for ok in outcomes] == [False] * 11
    assert denoiser.state == UP
    # Two failures in five: still noise. The third within the last five flips.
    assert [denoiser.add(ok) for ok in (False, True, False)] == [False, False, False]
    assert denoiser.add(False) is True and denoiser.state == DOWN
    # Back up only when three of the last five succeed: [T F T F F] + T is two ...
    assert denoiser.add(True) is False and denoiser.state == DOWN
    # ... [T F F T T] is three.
    assert denoiser.add(True) is True and denoiser.state == UP
    with pytest.raises(ValueError, match="k <= n"):
        Denoiser(k=4, n=3)


def test_k_equal_one_follows_every_sample() -> None:
    denoiser = Denoiser(k=1, n=1)
    assert [denoiser.add(ok) for ok in (True, False, False, True)] == [False, True, False, True]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_token_bucket_allows_a_burst_then_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2, burst=3, clock=clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    assert bucket.wait_time() == pytest.approx(0.5)
    clock.now += 0.25
    assert bucket.take() is False and bucket.wait_time() == pytest.approx(0.25)
    clock.now += 0.25
    assert bucket.take() is True and bucket.take() is False
    # A long quiet time refills to the burst, never beyond.
    clock.now += 3600
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    # Over any span, at most burst + rate * span batches.
    taken = 0
    for _ in range(1000):
        clock.now += 0.01
        taken += bucket.take()
    assert taken <= 3 + 2 * 10


def test_a_window_aggregates_counts_percentiles_and_the_first_distinct_errors() -> None:
    window = Window(start=1_800_000_000.0)
    for latency in range(1, 101):
        window.add(Sample(True, float(latency)))
    for number in range(8):
        window.add(Sample(False, 500.0, "get", f"refused {number % 6}"))
    closed = window.close(1_800_000_001.5, DOWN)
    assert closed["start"] == "2027-01-15T08:00:00.000Z"
    assert closed["end"] == "2027-01-15T08:00:01.500Z"
    assert (closed["count"], closed["failures"], closed["state"]) == (108, 8, "down")
    assert closed["latency_ms"] == {"p50": 54.0, "p99": 500.0, "max": 500.0}
    assert closed["errors"] == [
        {"step": "get", "error": "refused 0", "count": 2},
        {"step": "get", "error": "refused 1", "count": 2},
        {"step": "get", "error": "refused 2", "count": 1},
        {"step": "get", "error": "refused 3", "count": 1},
        {"step": "get", "error": "refused 4", "count": 1},
    ]
    assert iso(0.9996) == "1970-01-01T00:00:00.999Z"


def window(count: int) -> dict[str, Any]:
    return {"count": count}


def test_the_outbox_keeps_order_a_stable_batch_id_and_counts_what_it_drops() -> None:
    outbox = Outbox("p", "c", max_windows=150)
    for number in range(160):
        outbox.put(window(number))
    # The ten oldest windows went: their samples are counted as dropped.
    assert outbox.dropped == sum(range(10))
    first = outbox.batch(timeout=0)
    assert first is not None and len(first.windows) == MAX_BATCH_WINDOWS
    assert [w["count"] for w in first.windows] == list(range(10, 110))
    body = json.loads(first.body)
    assert body["dropped"] == sum(range(10)) and body["batch_id"] == first.id
    # Until delivered, the same batch (same id, same bytes) comes back.
    outbox.put(window(1000))
    again = outbox.batch(timeout=0)
    assert again is first
    outbox.delivered(first)
    second = outbox.batch(timeout=0)
    assert second is not None and second.id != first.id
    assert [w["count"] for w in second.windows] == [*range(110, 160), 1000]
    # A batch the center refuses for good is dropped and counted.
    outbox.discard(second)
    assert outbox.dropped == sum(range(10)) + sum(range(110, 160)) + 1000
    assert outbox.empty() and outbox.batch(timeout=0) is None


def test_the_config_names_what_is_wrong() -> None:
    base = {
        "KUBEPROBE_RESIDENT_URL": "https://center",
        "KUBEPROBE_TOKEN": "t",
        "KUBEPROBE_RESIDENT_PROBE": "p",
        "KUBEPROBE_CLUSTER": "c",
        "KUBEPROBE_CASE": "etcd",
    }
    assert Config(base).interval == 1.0
    for change, message in [
        ({"KUBEPROBE_TOKEN": ""}, "KUBEPROBE_TOKEN is required"),
        ({"KUBEPROBE_CASE": "nope"}, "KUBEPROBE_CASE must be one of"),
        ({"KUBEPROBE_SAMPLE": "x"}, "exactly one of KUBEPROBE_CASE or KUBEPROBE_SAMPLE"),
        ({"KUBEPROBE_INTERVAL_MS": "fast"}, "KUBEPROBE_INTERVAL_MS must be a number"),
        ({"KUBEPROBE_DENOISE_K": "6"}, "must not be greater than KUBEPROBE_DENOISE_N"),
        ({"KUBEPROBE_RESIDENT_URL": "center"}, "must be an http(s) URL"),
    ]:
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
            Config({**base, **change})


# ---- the runner as a process


@contextmanager
def runner(
    center: Center | Any, tmp_path: Path, script: str = "", token: str = TOKEN, **env: str
) -> Iterator[tuple[subprocess.Popen[bytes], Path, Path]]:
    """`python -m probe_sdk.resident` running the scripted case, reporting to `center.url`
    (the recording center, or the real portal); killed if a test left it running."""
    samples = tmp_path / "samples"
    log = tmp_path / "runner.log"
    full = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(ROOT),
        "KUBEPROBE_RESIDENT_URL": center.url,
        "KUBEPROBE_TOKEN": token,
        "KUBEPROBE_RESIDENT_PROBE": "scripted",
        "KUBEPROBE_CLUSTER": "prod-1",
        "KUBEPROBE_SAMPLE": str(SCRIPTED),
        "KUBEPROBE_INTERVAL_MS": "50",
        "KUBEPROBE_BATCH_WINDOW_MS": "200",
        "KUBEPROBE_REPORT_RATE": "50",
        "KUBEPROBE_REPORT_BURST": "50",
        "KUBEPROBE_RETRY_MAX_MS": "500",
        "SCRIPT": script,
        "SAMPLES_FILE": str(samples),
        **env,
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "probe_sdk.resident"],
            cwd=tmp_path,
            env=full,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process, samples, log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        print("---- runner log (tail)\n" + log.read_text()[-3000:])


def samples_run(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=30)


def assert_gapless(windows: list[dict[str, Any]]) -> None:
    """Each window starts where the previous one ended: nothing missing, nothing twice."""
    for before, after in itertools.pairwise(windows):
        assert after["start"] == before["end"], (before, after)


def test_the_runner_denoises_reports_windows_and_flushes_on_sigterm(tmp_path: Path) -> None:
    center = Center()
    script = "ok*12,fail,ok*12,fail*3,ok*12"
    with runner(center, tmp_path, script, KUBEPROBE_DENOISE_K="3") as (process, samples, _):
        wait_for(lambda: len(samples_run(samples)) >= 45, timeout=30, what="45 samples")
        assert stop(process) == 0
    ran = samples_run(samples)
    windows = center.windows()
    # Every sample that ran was delivered (the last window on SIGTERM), in gapless windows.
    assert sum(w["count"] for w in windows) == len(ran)
    assert sum(w["failures"] for w in windows) == ran.count("fail") == 4
    assert_gapless(windows)
    # The single failure changed no state; the three in a row did, and recovery did.
    states = [w["state"] for w in windows]
    collapsed = [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]
    assert collapsed == ["up", "down", "up"]
    single = next(w for w in windows if w["failures"] == 1 and w["state"] == "up")
    assert single["errors"] == [
        {"step": "connect", "error": "RuntimeError: scripted failure 13", "count": 1}
    ]
    body = json.loads(center.attempts[0].body)
    assert (body["probe"], body["cluster"], body["dropped"]) == ("scripted", "prod-1", 0)
    assert all(0 < w["latency_ms"]["p50"] <= w["latency_ms"]["max"] for w in windows)


def test_the_report_rate_stays_within_the_bucket_under_a_burst_of_state_changes(
    tmp_path: Path,
) -> None:
    center = Center()
    # k=1: every sample flips the state and closes a window, 40 of them in about 1 s.
    script = ",".join(["fail", "ok"] * 20)
    rate, burst = 2.0, 3
    env = {
        "KUBEPROBE_DENOISE_K": "1",
        "KUBEPROBE_DENOISE_N": "1",
        "KUBEPROBE_INTERVAL_MS": "25",
        "KUBEPROBE_REPORT_RATE": str(rate),
        "KUBEPROBE_REPORT_BURST": str(burst),
    }
    with runner(center, tmp_path, script, **env) as (process, samples, _):
        wait_for(lambda: len(samples_run(samples)) >= 40, timeout=30, what="the burst")
        wait_for(
            lambda: sum(w["count"] for w in center.windows()) >= 40,
            timeout=30,
            what="the burst delivered",
        )
        assert stop(process) == 0
    times = [a.at for a in center.attempts]
    # In every span, no more batches than the bucket allows. The times are arrivals at
    # the server, so 100 ms of slack for the requests' own latency on a busy machine.
    for i in range(len(times)):
        for j in range(i, len(times)):
            assert j - i + 1 <= burst + rate * (times[j] - times[i] + 0.1), (i, j, times)
    # Sent back to back at the bucket's pace, not faster: after the burst, >= ~0.5 s apart.
    gaps = [b - a for a, b in itertools.pairwise(times[burst:])]
    assert gaps and min(gaps) >= 1 / rate - 0.1, gaps
    windows = center.windows()
    flips = [w["state"] for w in windows[:40]]
    assert flips[:4] == ["down", "up", "down", "up"]
    # Far fewer batches than windows: the changes waited for tokens and went together.
    assert len(center.attempts) < len(windows) / 3
    assert_gapless(windows)
    assert sum(w["count"] for w in windows) == len(samples_run(samples))


def test_a_center_outage_leaves_no_gap_once_it_returns(tmp_path: Path) -> None:
    center = Center()
    with runner(center, tmp_path) as (process, samples, log):
        wait_for(lambda: len(center.order) >= 3, timeout=30, what="three batches")
        center.stop()
        down_at, stored_before = time.monotonic(), len(center.order)

        def outage_long_enough() -> bool:
            failed = log.read_text().count("not delivered")
            return failed >= 5 and time.monotonic() - down_at >= 5

        wait_for(outage_long_enough, timeout=30, what="a 5 s outage with retries")
        center.start()
        samples_at_return = len(samples_run(samples))
        wait_for(lambda: center.samples() >= samples_at_return, timeout=30, what="the backlog")
        assert stop(process) == 0
    windows = center.windows()
    assert len(center.order) > stored_before
    assert len(set(center.order)) == len(center.order)  # no batch stored twice
    assert_gapless(windows)  # in order, nothing lost across the outage
    assert sum(w["count"] for w in windows) == len(samples_run(samples))
    # The windows of the outage came in batches of several once the center was back.
    assert any(len(b["windows"]) >= 5 for b in center.stored.values())
    assert json.loads(center.attempts[-1].body)["dropped"] == 0


def test_a_retried_batch_keeps_its_id_and_is_stored_once(tmp_path: Path) -> None:
    center = Center()
    with runner(center, tmp_path) as (process, samples, _):
        wait_for(lambda: len(center.order) >= 2, timeout=30)
        center.lose_answers = 2  # the next two batches: stored, but the answer says 503
        wait_for(lambda: len(center.order) >= 6, timeout=30)
        assert stop(process) == 0
    lost = [a for a in center.attempts if a.status == 503]
    assert len(lost) == 2
    for attempt in lost:
        retries = [a for a in center.attempts if a.batch_id == attempt.batch_id]
        # The retry carries the same id and the very same bytes; the center answered
        # "duplicate" and stored it once.
        assert [a.status for a in retries] == [503, 200]
        assert retries[0].body == retries[1].body
    assert len(set(center.order)) == len(center.order)
    assert_gapless(center.windows())
    assert center.samples() == len(samples_run(samples))


def test_a_bad_config_exits_naming_the_variable(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "probe_sdk.resident"],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "KUBEPROBE_RESIDENT_URL": "https://c"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "probe_sdk.resident: KUBEPROBE_TOKEN is required"
