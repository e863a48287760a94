"""`POST /api/v1/resident/samples`: every answer of the protocol, storage, idempotency, partitions."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from apps.resident import storage
from apps.resident.models import ResidentProbe, ResidentTarget
from apps.resident.services import resident_probe_rotate_token, resident_samples_ingest
from tests.factories import ClusterFactory, ClusterGroupFactory
from tests.resident.helpers import batch, make_probe, post_samples, windows


def rows(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cur:
        cur.execute(sql, params or [])
        return list(cur.fetchall())


@pytest.fixture
def setup(db: None) -> dict[str, Any]:
    cluster = ClusterFactory(name="prod-1")
    probe, token = make_probe(clusters=[cluster])
    return {"cluster": cluster, "probe": probe, "token": token}


def now_minute() -> datetime:
    return timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=2)


def test_a_batch_is_stored_with_rollups_and_target_state(setup: dict[str, Any]) -> None:
    start = now_minute() + timedelta(seconds=58)  # the batch spans two minutes
    wins = windows(start, 4, count=10, failures=1, p50=2.0, p99=8.0, top=20.0)
    wins[-1]["state"] = "down"
    wins[-1]["latency_ms"]["max"] = 50.0
    wins[1]["errors"] = [{"step": "get", "error": "connection refused", "count": 1}]
    answer = post_samples(
        Client(), batch("etcd-resident", "prod-1", wins, dropped=7), setup["token"]
    )
    assert answer.status_code == 202, answer.content
    assert answer.json() == {"stored": 4}

    stored = rows("SELECT count, failures, up, errors FROM resident_window ORDER BY start")
    assert [r[:3] for r in stored] == [(10, 1, True)] * 3 + [(10, 1, False)]
    assert json.loads(stored[1][3]) == [{"step": "get", "error": "connection refused", "count": 1}]
    minutes = rows(
        "SELECT minute, count, failures, p50_sum, p99_sum, max_ms FROM resident_minute ORDER BY minute"
    )
    # 58 s and 59 s in the first minute, 0 s and 1 s in the next.
    assert [(m[1], m[2], m[3], m[4], m[5]) for m in minutes] == [
        (20, 2, 40.0, 160.0, 20.0),
        (20, 2, 40.0, 160.0, 50.0),
    ]
    target = ResidentTarget.objects.get(probe=setup["probe"], cluster=setup["cluster"])
    assert target.samples_dropped == 7
    assert target.state == "down"
    assert target.last_sample_at == start + timedelta(seconds=4)
    assert target.last_report_at is not None


def test_a_retried_batch_is_stored_once(setup: dict[str, Any]) -> None:
    body = batch("etcd-resident", "prod-1", windows(now_minute(), 3))
    first = post_samples(Client(), body, setup["token"])
    again = post_samples(Client(), body, setup["token"])
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json() == {"duplicate": True}
    assert rows("SELECT count(*) FROM resident_window") == [(3,)]
    assert rows("SELECT sum(count) FROM resident_minute") == [(30,)]


@pytest.mark.django_db(transaction=True)
def test_concurrent_copies_of_a_batch_store_it_once() -> None:
    """The batch id's primary key decides, not a read before the write."""
    cluster = ClusterFactory(name="prod-1")
    probe, token = make_probe(clusters=[cluster])
    body = batch("etcd-resident", "prod-1", windows(now_minute(), 5))
    raw = json.dumps(body).encode()
    answers: list[dict[str, Any]] = []
    barrier = threading.Barrier(6)

    def send() -> None:
        barrier.wait()
        try:
            answers.append(resident_samples_ingest(token=token, body=raw))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(map(str, answers)) == sorted(
        [str({"stored": 5})] + [str({"duplicate": True})] * 5
    )
    # Partitioned tables outlive other tests' flushes: count this probe's rows only.
    count = "SELECT count(*) FROM resident_window WHERE probe_id = %s"
    assert rows(count, [probe.pk]) == [(5,)]


def test_a_later_retry_of_an_older_batch_keeps_the_newer_state(setup: dict[str, Any]) -> None:
    base = now_minute()
    older = batch("etcd-resident", "prod-1", windows(base, 2, state="down"))
    newer = batch("etcd-resident", "prod-1", windows(base + timedelta(seconds=10), 2, state="up"))
    assert post_samples(Client(), newer, setup["token"]).status_code == 202
    assert post_samples(Client(), older, setup["token"]).status_code == 202
    target = ResidentTarget.objects.get(probe=setup["probe"])
    assert target.state == "up"
    assert target.last_sample_at == base + timedelta(seconds=12)


def test_tokens(setup: dict[str, Any]) -> None:
    body = batch("etcd-resident", "prod-1", windows(now_minute(), 1))
    missing = post_samples(Client(), body, None)
    assert missing.status_code == 401
    assert missing["WWW-Authenticate"].startswith("Bearer")
    assert post_samples(Client(), body, "kpr_not-a-token").status_code == 401
    new = resident_probe_rotate_token(probe=setup["probe"])
    assert post_samples(Client(), body, setup["token"]).status_code == 401  # rotated away
    assert post_samples(Client(), body, new).status_code == 202
    # Only the hash is kept.
    setup["probe"].refresh_from_db()
    assert new not in str(vars(setup["probe"]))


def test_a_token_that_worked_is_refused_at_once_when_rotated_or_deleted(
    setup: dict[str, Any],
) -> None:
    """Each process remembers tokens for a few seconds; the store itself re-checks them."""
    first = batch("etcd-resident", "prod-1", windows(now_minute(), 1))
    assert post_samples(Client(), first, setup["token"]).status_code == 202  # now cached
    new = resident_probe_rotate_token(probe=setup["probe"])
    late = batch("etcd-resident", "prod-1", windows(now_minute() + timedelta(seconds=5), 1))
    answer = post_samples(Client(), late, setup["token"])
    assert answer.status_code == 401
    assert "rotated" in answer.json()["detail"]
    assert post_samples(Client(), late, new).status_code == 202  # cached in turn
    ResidentProbe.objects.filter(pk=setup["probe"].pk).delete()
    gone = batch("etcd-resident", "prod-1", windows(now_minute() + timedelta(seconds=9), 1))
    assert post_samples(Client(), gone, new).status_code == 401
    count = "SELECT count(*) FROM resident_window WHERE probe_id = %s"
    assert rows(count, [setup["probe"].pk]) == [(2,)]


def test_a_cluster_added_to_a_probe_may_report_at_once(setup: dict[str, Any]) -> None:
    """Each process remembers a probe's clusters for a few seconds, but not against a new one."""
    first = batch("etcd-resident", "prod-1", windows(now_minute(), 1))
    assert post_samples(Client(), first, setup["token"]).status_code == 202  # now cached
    setup["probe"].clusters.add(ClusterFactory(name="prod-9"))
    added = batch("etcd-resident", "prod-9", windows(now_minute(), 1))
    assert post_samples(Client(), added, setup["token"]).status_code == 202


def test_rollup_minutes_are_utc_minutes_whatever_the_offset(setup: dict[str, Any]) -> None:
    wins = windows(now_minute(), 1, count=4)
    moment = now_minute().astimezone(timezone.get_fixed_timezone(330)) + timedelta(seconds=30)
    wins[0]["start"] = moment.isoformat()
    wins[0]["end"] = (moment + timedelta(seconds=1)).isoformat()
    answer = post_samples(Client(), batch("etcd-resident", "prod-1", wins), setup["token"])
    assert answer.status_code == 202, answer.content
    assert rows("SELECT minute, count FROM resident_minute") == [(now_minute(), 4)]


def test_forbidden(setup: dict[str, Any]) -> None:
    other_cluster = ClusterFactory(name="prod-2")
    _, other_token = make_probe("other", clusters=[other_cluster])
    # Another probe's token.
    answer = post_samples(
        Client(), batch("etcd-resident", "prod-1", windows(now_minute(), 1)), other_token
    )
    assert answer.status_code == 403
    assert "other" in answer.json()["probe"][0]
    # A cluster that exists but is not a target of this probe.
    answer = post_samples(
        Client(), batch("etcd-resident", "prod-2", windows(now_minute(), 1)), setup["token"]
    )
    assert answer.status_code == 403
    assert "prod-2" in answer.json()["cluster"][0]
    # A disabled probe.
    setup["probe"].__class__.objects.filter(pk=setup["probe"].pk).update(enabled=False)
    answer = post_samples(
        Client(), batch("etcd-resident", "prod-1", windows(now_minute(), 1)), setup["token"]
    )
    assert answer.status_code == 403
    assert "disabled" in answer.json()["probe"][0]


def test_a_cluster_of_a_target_group_may_report(db: None) -> None:
    member = ClusterFactory(name="eu-1", labels={"env": "prod"})
    group = ClusterGroupFactory(name="prod", selector={"env": "prod"})
    _, token = make_probe(groups=[group])
    answer = post_samples(
        Client(), batch("etcd-resident", member.name, windows(now_minute(), 2)), token
    )
    assert answer.status_code == 202, answer.content


def _window_with(**changes: Any) -> list[dict[str, Any]]:
    win = windows(now_minute(), 1)[0]
    for key, value in changes.items():
        if value is None:
            win.pop(key)
        else:
            win[key] = value
    return [win]


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b.pop("batch_id"), "batch_id"),
        (lambda b: b.update(batch_id="not-a-uuid"), "batch_id"),
        (lambda b: b.update(windows=[]), "windows"),
        (lambda b: b.update(windows=windows(now_minute(), 101)), "windows"),
        (lambda b: b.update(dropped=-1), "dropped"),
        (lambda b: b.update(dropped="3"), "dropped"),
        (lambda b: b.update(extra=1), "extra"),
        (lambda b: b.update(windows=_window_with(start="yesterday")), "windows[0].start"),
        (lambda b: b.update(windows=_window_with(start="2026-01-01T00:00:00")), "windows[0].start"),
        (lambda b: b.update(windows=_window_with(count=None)), "windows[0].count"),
        (lambda b: b.update(windows=_window_with(failures=11)), "windows[0].failures"),
        (lambda b: b.update(windows=_window_with(state="sideways")), "windows[0].state"),
        (
            lambda b: b.update(
                windows=_window_with(latency_ms={"p50": 1, "p99": "slow", "max": 2})
            ),
            "windows[0].latency_ms.p99",
        ),
        (
            lambda b: b.update(windows=_window_with(errors=[{"step": "x", "error": 5}])),
            "windows[0].errors[0].error",
        ),
        (
            lambda b: b.update(windows=_window_with(errors=[{"error": "e"}] * 6)),
            "windows[0].errors",
        ),
        (lambda b: b.update(windows=list(reversed(windows(now_minute(), 2)))), "windows[1].start"),
        (
            lambda b: b.update(windows=_window_with(start="2000-01-01T00:00:00Z")),
            "windows[0].start",
        ),
    ],
)
def test_bad_batches_answer_400_naming_the_field(
    setup: dict[str, Any], mutate: Any, field: str
) -> None:
    body = batch("etcd-resident", "prod-1", windows(now_minute(), 1))
    mutate(body)
    answer = post_samples(Client(), body, setup["token"])
    assert answer.status_code == 400, answer.content
    assert field in answer.json(), answer.json()
    assert rows("SELECT count(*) FROM resident_window") == [(0,)]


def test_not_json_and_too_large(setup: dict[str, Any]) -> None:
    answer = post_samples(Client(), None, setup["token"], raw=b"{nope")
    assert answer.status_code == 400
    assert "not valid JSON" in answer.json()["non_field_errors"][0]
    big = b'{"pad": "' + b"x" * (1024 * 1024) + b'"}'
    assert post_samples(Client(), None, setup["token"], raw=big).status_code == 413
    assert Client().get("/api/v1/resident/samples").status_code == 405


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_partitions_ahead_retention_and_the_default_partition(setup: dict[str, Any]) -> None:
    today = datetime.now(UTC).date()
    # Rows of today land in the default partition while no day partition exists...
    body = batch("etcd-resident", "prod-1", windows(now_minute(), 3))
    assert post_samples(Client(), body, setup["token"]).status_code == 202
    assert rows("SELECT count(*) FROM resident_window_default") == [(3,)]
    # ...and move into the day's partition when housekeeping creates it.
    created = storage.partitions_ensure(days_ahead=2, today=today)
    assert f"resident_window_p{today:%Y%m%d}" in created
    assert len(created) == 3 * 3  # three tables, today and two days ahead
    assert rows("SELECT count(*) FROM resident_window_default") == [(0,)]
    day_table = f"resident_window_p{today:%Y%m%d}"
    assert rows(f"SELECT count(*) FROM {day_table}") == [(3,)]  # noqa: S608
    assert storage.partitions_ensure(days_ahead=2, today=today) == []  # idempotent
    # A retry still meets its key once the rows sit in a day partition.
    assert post_samples(Client(), body, setup["token"]).json() == {"duplicate": True}
    # Retention drops whole days: the window and batch days go after 1 day, rollups stay.
    later = today + timedelta(days=2)
    dropped = storage.partitions_drop(keep_days=1, rollup_keep_days=30, today=later)
    assert f"resident_window_p{today:%Y%m%d}" in dropped
    assert f"resident_batch_p{today:%Y%m%d}" in dropped
    assert not any(name.startswith("resident_minute") for name in dropped)
    assert rows("SELECT count(*) FROM resident_window") == [(0,)]
    assert rows("SELECT sum(count) FROM resident_minute") == [(30,)]
