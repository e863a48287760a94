"""GET /api/v1/resident/<name>/series: availability and latency per step, from windows or rollups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.factories import ClusterFactory
from tests.resident.helpers import batch, iso, make_probe, post_samples, windows

pytestmark = pytest.mark.django_db
# A fixed minute-aligned hour, well within the retention.
T0 = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)


@pytest.fixture
def loaded() -> dict[str, Any]:
    """Ten minutes of 1-second windows on prod-1 (minute 3 all failing, slow in minute 5),
    and one minute on prod-2."""
    one, two = ClusterFactory(name="prod-1"), ClusterFactory(name="prod-2")
    probe, token = make_probe(clusters=[one, two])
    for minute in range(10):
        start = T0 + timedelta(minutes=minute)
        failing = minute == 3
        for half in (0, 30):  # two batches of 30 windows per minute
            wins = windows(
                start + timedelta(seconds=half),
                30,
                count=10,
                failures=10 if failing else 0,
                p50=2.0,
                p99=40.0 if minute == 5 else 8.0,
                top=100.0 if minute == 5 else 12.0,
                state="down" if failing else "up",
            )
            answer = post_samples(Client(), batch(probe.name, "prod-1", wins), token)
            assert answer.status_code == 202, answer.content
    wins = windows(T0, 60, count=5, failures=1, p50=1.0, p99=3.0, top=4.0)
    assert post_samples(Client(), batch(probe.name, "prod-2", wins[:50]), token).status_code == 202
    return {"probe": probe}


def get(api: APIClient, **params: Any) -> Any:
    return api.get("/api/v1/resident/etcd-resident/series", params)


def test_per_minute_from_rollups(admin_api: APIClient, loaded: dict[str, Any]) -> None:
    answer = get(
        admin_api,
        cluster="prod-1",
        step="1m",
        **{"from": iso(T0), "to": iso(T0 + timedelta(minutes=10))},
    )
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["source"] == "rollup" and body["step"] == 60
    assert body["t"][0] == int(T0.timestamp()) and len(body["t"]) == 10
    assert body["count"] == [600] * 10
    assert body["availability"] == [100.0] * 3 + [0.0] + [100.0] * 6
    assert body["p99_ms"][5] == 40.0 and body["p99_ms"][4] == 8.0
    assert body["max_ms"][5] == 100.0
    assert body["p50_ms"] == [2.0] * 10


def test_raw_and_rollup_agree_and_steps_combine(
    admin_api: APIClient, loaded: dict[str, Any]
) -> None:
    span = {"from": iso(T0), "to": iso(T0 + timedelta(minutes=10))}
    raw = get(admin_api, cluster="prod-1", step="30s", **span).json()
    assert raw["source"] == "raw" and len(raw["t"]) == 20
    assert raw["availability"][6:8] == [0.0, 0.0]  # minute 3
    five = get(admin_api, cluster="prod-1", step="5m", **span).json()
    assert five["source"] == "rollup"
    assert five["count"] == [3000, 3000]
    assert five["availability"] == [80.0, 100.0]
    assert five["p99_ms"] == [8.0, pytest.approx((40.0 + 4 * 8.0) / 5)]
    assert five["max_ms"] == [12.0, 100.0]
    # The same buckets from the raw windows (a 150 s step) sum to the same.
    assert sum(get(admin_api, cluster="prod-1", step="150s", **span).json()["count"]) == 6000


def test_all_clusters_combined_and_empty_buckets(
    admin_api: APIClient, loaded: dict[str, Any]
) -> None:
    span = {"from": iso(T0 - timedelta(minutes=2)), "to": iso(T0 + timedelta(minutes=2))}
    body = get(admin_api, step="1m", **span).json()
    assert body["cluster"] is None
    assert body["count"] == [0, 0, 600 + 250, 600]
    assert body["availability"][:2] == [None, None]
    assert body["availability"][2] == pytest.approx(100.0 * (1 - 50 / 850), abs=0.001)


def test_defaults_choose_a_step(admin_api: APIClient, loaded: dict[str, Any]) -> None:
    week = get(admin_api, **{"from": iso(T0 - timedelta(days=7)), "to": iso(T0)}).json()
    assert week["step"] == 600 and week["source"] == "rollup"
    hour = get(admin_api).json()  # the last hour
    assert hour["step"] == 5 and len(hour["t"]) in (720, 721)  # buckets align to the step


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"step": "fast"}, "step"),
        ({"step": "0"}, "step"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-13-01"}, "to"),
        ({"from": "2026-12-07T10:00:00Z", "to": "2026-12-07T09:00:00Z"}, "to"),
        ({"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z", "step": "30s"}, "step"),
        ({"from": "2026-11-01T00:00:00Z", "to": "2026-11-02T12:00:00Z", "step": "5s"}, "step"),
        ({"cluster": "nope"}, "cluster"),
    ],
)
def test_bad_params_answer_400(
    admin_api: APIClient, loaded: dict[str, Any], params: dict[str, str], field: str
) -> None:
    answer = get(admin_api, **params)
    assert answer.status_code == 400, answer.content
    assert field in answer.json()


def test_unknown_probe_is_404(admin_api: APIClient) -> None:
    assert admin_api.get("/api/v1/resident/nope/series").status_code == 404
