"""Hourly rollups of finished runs (apps/runs/rollups.py) against raw aggregation."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.runs import rollups
from apps.runs.models import ProbeRun, RunRollup, RunWatermark
from apps.runs.rollups import BOUNDS, bucket, histogram_percentile, hour_of
from tests.factories import CaseFactory, ClusterFactory, ProbeRunFactory

pytestmark = pytest.mark.django_db

STATES = ("succeeded", "succeeded", "succeeded", "failed", "error", "timed_out")


def _run(
    case: Any, cluster: Any, created: Any, finished: Any, state: str, ms: int | None
) -> ProbeRun:
    run = ProbeRunFactory(case=case, cluster=cluster, state=state, duration_ms=ms)
    ProbeRun.objects.filter(pk=run.pk).update(created_at=created, finished_at=finished)
    return run


def _raw() -> dict[tuple[int, int, Any], dict[str, Any]]:
    """The rollups computed here from the finished runs, the slow obvious way."""
    out: dict[tuple[int, int, Any], dict[str, Any]] = defaultdict(
        lambda: {
            "runs": 0,
            "succeeded": 0,
            "failed": 0,
            "errored": 0,
            "timed_out": 0,
            "timed": 0,
            "duration_sum": 0,
            "duration_max": None,
            "histogram": {},
        }
    )
    finished = ProbeRun.objects.filter(finished_at__isnull=False)
    for run in finished:
        row = out[(run.case_id, run.cluster_id, hour_of(run.created_at))]
        row["runs"] += 1
        key = {"succeeded": "succeeded", "failed": "failed", "error": "errored"}.get(
            run.state, "timed_out"
        )
        row[key] += 1
        if run.duration_ms is not None:
            row["timed"] += 1
            row["duration_sum"] += run.duration_ms
            row["duration_max"] = max(row["duration_max"] or 0, run.duration_ms)
            b = str(bucket(run.duration_ms))
            row["histogram"][b] = row["histogram"].get(b, 0) + 1
    return dict(out)


def _stored() -> dict[tuple[int, int, Any], dict[str, Any]]:
    fields = (
        "runs",
        "succeeded",
        "failed",
        "errored",
        "timed_out",
        "timed",
        "duration_sum",
        "duration_max",
        "histogram",
    )
    return {
        (r.case_id, r.cluster_id, r.hour): {f: getattr(r, f) for f in fields}
        for r in RunRollup.objects.all()
    }


@pytest.fixture
def history() -> list[ProbeRun]:
    """Runs of 2 cases × 2 clusters over 30 hours, all outcomes, some without a duration."""
    rng = random.Random(18)  # noqa: S311 (test data)
    cases, clusters = [CaseFactory(), CaseFactory()], [ClusterFactory(), ClusterFactory()]
    now = timezone.now()
    runs = []
    for _ in range(160):
        created = now - timedelta(minutes=rng.randint(5, 30 * 60))
        ms = None if rng.random() < 0.1 else rng.choice([0, 1, 7, 120, 999, 1000, 4321, 90_000])
        runs.append(
            _run(
                rng.choice(cases),
                rng.choice(clusters),
                created,
                created + timedelta(seconds=rng.randint(1, 120)),
                rng.choice(STATES),
                ms,
            )
        )
    return runs


def test_incremental_rollups_equal_raw_aggregation(history: list[ProbeRun]) -> None:
    # Small batches: many upserts into the same rows.
    added = rollups.rollups_advance(batch=7, max_batches=1000)
    assert added == len(history)
    assert _stored() == _raw()
    # Passing again adds nothing: the watermark moved with each batch.
    assert rollups.rollups_advance() == 0
    assert _stored() == _raw()


def test_a_late_finish_is_counted_once_in_the_hour_the_run_was_created(
    history: list[ProbeRun],
) -> None:
    case, cluster = history[0].case, history[0].cluster
    now = timezone.now()
    late = _run(case, cluster, now - timedelta(hours=5), None, "running", None)
    rollups.rollups_advance()
    before = _stored()
    ProbeRun.objects.filter(pk=late.pk).update(
        state="timed_out", finished_at=now - timedelta(minutes=2), duration_ms=300_000
    )
    assert rollups.rollups_advance() == 1
    key = (case.pk, cluster.pk, hour_of(now - timedelta(hours=5)))
    assert _stored()[key]["timed_out"] == before.get(key, {"timed_out": 0})["timed_out"] + 1
    assert _stored() == _raw()
    assert rollups.rollups_advance() == 0


def test_runs_inside_the_settle_time_wait_for_the_next_pass(history: list[ProbeRun]) -> None:
    rollups.rollups_advance()
    now = timezone.now()
    fresh = _run(history[0].case, history[0].cluster, now, now, "succeeded", 5)
    assert rollups.rollups_advance(now=now) == 0  # may still be committing (settle time)
    assert rollups.rollups_advance(now=now + timedelta(minutes=2)) == 1
    assert _stored() == _raw()
    assert fresh.pk


def test_a_batch_that_fails_is_rolled_back_whole_and_counted_once_later(
    history: list[ProbeRun],
) -> None:
    with (
        mock.patch.object(RunWatermark, "save", side_effect=RuntimeError("worker died")),
        pytest.raises(RuntimeError),
    ):
        rollups.rollups_advance(batch=50)
    assert not RunRollup.objects.exists()  # the upsert went with the watermark's move
    assert rollups.rollups_advance(batch=50) == len(history)
    assert _stored() == _raw()


def test_rebuild_equals_incremental_and_backfills_from_scratch(history: list[ProbeRun]) -> None:
    call_command("runs_rollup_backfill")  # first: watermark put at the horizon
    assert _stored() == _raw()
    assert rollups.rollups_advance() == 0  # nothing counted twice afterwards
    # A rebuild of the last hours after more runs: same as raw again.
    now = timezone.now()
    _run(
        history[0].case,
        history[0].cluster,
        now - timedelta(minutes=30),
        now - timedelta(minutes=20),
        "failed",
        250,
    )
    rollups.rollups_advance()
    RunRollup.objects.filter(hour__gte=hour_of(now - timedelta(hours=3))).update(runs=0)
    rollups.rollups_rebuild(since=now - timedelta(hours=3))
    assert _stored() == _raw()
    with pytest.raises(CommandError, match="--hours"):
        call_command("runs_rollup_backfill", "--hours", "0")


def test_percentiles_from_the_histogram_are_within_one_bucket_of_the_exact_ones() -> None:
    rng = random.Random(5)  # noqa: S311 (test data)
    values = [int(rng.lognormvariate(6, 1.2)) for _ in range(2000)]
    histogram: dict[str, int] = defaultdict(int)
    for v in values:
        histogram[str(bucket(v))] += 1
    ordered = sorted(values)
    for fraction in (0.5, 0.95):
        exact = ordered[int(fraction * (len(ordered) - 1))]
        estimate = histogram_percentile(histogram, fraction, max(values))
        b = bucket(exact)
        low = BOUNDS[b - 1] if b else 0
        high = BOUNDS[b] if b < len(BOUNDS) else max(values)
        assert estimate is not None and low <= estimate <= high, (fraction, exact, estimate)
    assert histogram_percentile({}, 0.5, None) is None
