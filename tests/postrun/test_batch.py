"""The post-run pipeline's batch path: many pairs judged together, as one by one would."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.alerts import channels, delivery, sending, silences
from apps.alerts.models import Alert, AlertFlip, AlertRule, AlertState, Notification
from apps.dashboard import push
from apps.diagnosis.models import Incident, IncidentMember, RunDiagnosis
from apps.postrun import pipeline
from apps.runs.models import ProbeRun
from tests.alerts.conftest import add_run
from tests.alerts.transports.helpers import Receiver
from tests.factories import CaseFactory, ClusterFactory
from tests.utils import wait_for

Pair = tuple[int, int]


@pytest.fixture
def no_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a batch falls back to the one-by-one path (which would hide a
    broken batch behind correct results)."""

    def refuse(**kwargs: Any) -> None:
        raise AssertionError(f"the batch fell back to one pair at a time: {kwargs}")

    monkeypatch.setattr(pipeline, "finished_pair_process", refuse)


@pytest.fixture
def fires_at_once(db: None) -> AlertRule:
    rule = AlertRule.objects.get(name="default")
    rule.consecutive_failures, rule.resolve_after_successes = 1, 1
    rule.save()
    return rule


def grid(cases: int, clusters: int) -> tuple[list[Any], list[Any], list[Pair]]:
    case_rows = [CaseFactory(name=f"case-{i}") for i in range(cases)]
    cluster_rows = [ClusterFactory(name=f"c-{i:02d}") for i in range(clusters)]
    pairs = [(c.pk, k.pk) for c in case_rows for k in cluster_rows]
    return case_rows, cluster_rows, pairs


def finish_all(case_rows: list[Any], cluster_rows: list[Any], ok: bool) -> None:
    for case in case_rows:
        for cluster in cluster_rows:
            add_run(case, cluster, ok)


def firing_flips() -> list[Pair]:
    return sorted(
        AlertFlip.objects.filter(event="firing").values_list("alert__case_id", "alert__cluster_id")
    )


@pytest.mark.django_db
@pytest.mark.usefixtures("no_fallback")
def test_a_batch_fires_resolves_and_records_the_newest_run_of_every_pair(
    fires_at_once: AlertRule,
) -> None:
    case_rows, cluster_rows, pairs = grid(2, 3)
    finish_all(case_rows, cluster_rows, ok=False)
    judged = pipeline.finished_batch_process(pairs)
    assert {pair: a.state for pair, a in judged.items()} == dict.fromkeys(pairs, AlertState.FIRING)
    assert firing_flips() == sorted(pairs)
    # Each failed run got its diagnosis, copied onto the run, and the alert says it.
    diagnosed = dict(RunDiagnosis.objects.values_list("run_id", "source"))
    assert len(diagnosed) == len(pairs)
    copied = dict(ProbeRun.objects.filter(pk__in=diagnosed).values_list("pk", "root_cause_source"))
    assert copied == diagnosed and set(copied.values()) != {""}
    assert set(Alert.objects.values_list("root_cause", flat=True)) == {"runtime"}
    finish_all(case_rows, cluster_rows, ok=True)
    pipeline.finished_batch_process(pairs)
    assert set(Alert.objects.values_list("state", "latest_state")) == {("ok", "succeeded")}
    assert AlertFlip.objects.filter(event="resolved").count() == len(pairs)
    newest = {(a.case_id, a.cluster_id): a.latest_run.pk for a in Alert.objects.all()}
    for case_id, cluster_id in pairs:
        run = max(
            Alert.objects.get(case_id=case_id, cluster_id=cluster_id).case.runs.filter(
                cluster_id=cluster_id
            ),
            key=lambda r: r.pk,
        )
        assert newest[(case_id, cluster_id)] == run.pk


@pytest.mark.django_db
@pytest.mark.usefixtures("no_fallback", "fires_at_once")
def test_judging_a_batch_costs_the_same_queries_for_5_pairs_or_40() -> None:
    small_cases, small_clusters, small = grid(1, 5)
    big_cases = [CaseFactory(name=f"big-{i}") for i in range(4)]
    big_clusters = [ClusterFactory(name=f"b-{i:02d}") for i in range(10)]
    big = [(c.pk, k.pk) for c in big_cases for k in big_clusters]
    for rows in ((small_cases, small_clusters), (big_cases, big_clusters)):
        finish_all(*rows, ok=True)
    pipeline.finished_batch_process(small + big)  # alerts exist from now on
    finish_all(small_cases, small_clusters, ok=True)
    finish_all(big_cases, big_clusters, ok=True)
    counts = []
    for pairs in (small, big):
        with CaptureQueriesContext(connection) as queries:
            pipeline.finished_batch_process(pairs)
        counts.append(len(queries.captured_queries))
    assert counts[0] == counts[1], counts


@pytest.mark.django_db
@pytest.mark.usefixtures("no_fallback", "fires_at_once")
def test_a_batch_pushes_every_cell_in_one_round(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    rounds: list[list[tuple[str, dict[str, Any]]]] = []

    async def send_all(messages: list[tuple[str, dict[str, Any]]]) -> None:
        rounds.append(list(messages))

    monkeypatch.setattr(push, "_send_all", send_all)
    # A window long enough for the whole batch to land in it, whatever the load:
    # the batch must coalesce into one round, not merely happen to.
    settings.KUBEPROBE_LIVE_PUSH_WINDOW_SECONDS = 1.0
    batcher = push._PairBatcher()
    batcher._last_flush = time.monotonic()  # a round just went: the next waits a window
    monkeypatch.setattr(push, "_pairs", batcher)
    case_rows, cluster_rows, pairs = grid(2, 4)
    finish_all(case_rows, cluster_rows, ok=True)
    pipeline.finished_batch_process(pairs)
    assert push.flush_pairs()
    # One coalesced live.cells event per group, the overview's naming every pair
    # (rounds still queued by earlier tests' pipelines may arrive too: not ours).
    ours = [
        m
        for messages in rounds
        for g, m in messages
        if g == push.OVERVIEW_GROUP
        and {(c["case_id"], c["cluster_id"]) for c in m.get("cells", [])} & set(pairs)
    ]
    assert len(ours) == 1
    [overview] = ours
    assert overview["type"] == "live.cells"
    assert {(c["case_id"], c["cluster_id"]) for c in overview["cells"]} == set(pairs)


@pytest.mark.django_db
@pytest.mark.usefixtures("no_fallback", "fires_at_once")
def test_a_batch_whose_every_pair_flips_costs_the_same_queries_for_5_pairs_or_40() -> None:
    """Flips, their timeline lines, the flip history they read and the incident they
    open are written and read per batch, not per pair."""
    counts = []
    for name, size in (("small", 5), ("big", 40)):
        case = CaseFactory(name=name)
        clusters = [ClusterFactory(name=f"{name}-{i:02d}") for i in range(size)]
        pairs = [(case.pk, k.pk) for k in clusters]
        finish_all([case], clusters, ok=True)
        pipeline.finished_batch_process(pairs)  # the alerts exist, all ok
        rounds = []
        for ok in (False, True):  # every pair fires (and joins one incident), then resolves
            finish_all([case], clusters, ok=ok)
            with CaptureQueriesContext(connection) as queries:
                pipeline.finished_batch_process(pairs)
            rounds.append(len(queries.captured_queries))
        flips = AlertFlip.objects.filter(alert__case=case)
        assert flips.filter(event="firing").count() == size
        assert flips.filter(event="resolved", notify=True).count() == size
        assert Incident.objects.get(case=case).state == "resolved"
        counts.append(rounds)
    assert counts[0] == counts[1], counts


@pytest.mark.django_db
@pytest.mark.usefixtures("no_fallback", "fires_at_once")
def test_a_silenced_pair_in_a_batch_is_recorded_not_notified() -> None:
    case_rows, cluster_rows, pairs = grid(1, 2)
    silences.silence_create(
        matchers=[{"name": "cluster", "value": cluster_rows[0].name}],
        ends_at=timezone.now() + timedelta(hours=1),
    )
    finish_all(case_rows, cluster_rows, ok=False)
    pipeline.finished_batch_process(pairs)
    notified = dict(AlertFlip.objects.values_list("alert__cluster__name", "notify"))
    assert notified == {cluster_rows[0].name: False, cluster_rows[1].name: True}
    assert Alert.objects.get(cluster=cluster_rows[0]).state == AlertState.SILENCED


@pytest.mark.django_db
@pytest.mark.usefixtures("no_fallback")
def test_a_pair_flapping_in_a_batch_goes_quiet(fires_at_once: AlertRule) -> None:
    fires_at_once.flap_threshold = 3
    fires_at_once.save()
    case_rows, cluster_rows, pairs = grid(1, 2)
    steady = cluster_rows[1]
    start = timezone.now()
    for step, ok in enumerate((False, True, False, True, False)):
        with time_machine.travel(start + timedelta(seconds=step), tick=False):
            add_run(case_rows[0], cluster_rows[0], ok)
            add_run(case_rows[0], steady, False)
            pipeline.finished_batch_process(pairs)
    flappy = Alert.objects.get(cluster=cluster_rows[0])
    assert flappy.flapping_since is not None
    assert AlertFlip.objects.filter(alert=flappy, event="flapping").count() == 1
    # Once flapping, its transitions are recorded and not notified.
    assert not AlertFlip.objects.filter(alert=flappy, event="firing").order_by("-id")[0].notify
    assert Alert.objects.get(cluster=steady).flapping_since is None


@pytest.mark.django_db
@pytest.mark.usefixtures("no_fallback", "fires_at_once")
def test_pairs_of_an_open_incident_follow_their_newest_failure_in_one_batch() -> None:
    case_rows, cluster_rows, pairs = grid(1, 4)  # 4 clusters: a case-wide incident opens
    finish_all(case_rows, cluster_rows, ok=False)
    pipeline.finished_batch_process(pairs)
    incident = Incident.objects.get(state="open")
    assert IncidentMember.objects.filter(incident=incident, left_at=None).count() == 4
    finish_all(case_rows, cluster_rows, ok=False)
    pipeline.finished_batch_process(pairs)
    newest = {a.pk: a.latest_run_id for a in Alert.objects.all()}
    members = IncidentMember.objects.filter(incident=incident, left_at=None)
    assert {m.alert_id: m.run_id for m in members} == newest
    finish_all(case_rows, cluster_rows, ok=True)
    pipeline.finished_batch_process(pairs)
    incident.refresh_from_db()
    assert incident.state == "resolved"


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_fallback", "fires_at_once")
def test_two_workers_judging_overlapping_batches_flip_and_notify_once_per_change() -> None:
    receiver = Receiver()
    try:
        channels.channel_save(name="hook", kind="webhook", config={"url": receiver.url()})
        case_rows, cluster_rows, pairs = grid(3, 6)
        finish_all(case_rows, cluster_rows, ok=False)
        # Two workers, overlapping batches (the middle third in both), started together,
        # twice each: every pair is judged at least twice, concurrently.
        batches = [pairs[: 2 * len(pairs) // 3], pairs[len(pairs) // 3 :]]
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def worker(batch: list[Pair]) -> None:
            try:
                for _ in range(2):
                    barrier.wait(10)
                    assert pipeline.finished_pairs_process(batch) == []
            except BaseException as exc:  # surfaced below
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=worker, args=(b,)) for b in batches]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        assert firing_flips() == sorted(pairs)  # one flip per change, none twice
        later = timezone.now() + timedelta(seconds=5)
        ids = delivery.flips_deliver(now=later, send=False)
        for notification_id in ids:
            sending.notification_send(notification_id)
        wait_for(lambda: len(receiver.requests) >= Notification.objects.count(), timeout=10)
        seen = [
            (r.json()["case"], i["cluster"]) for r in receiver.requests for i in r.json()["items"]
        ]
        assert sorted(seen) == sorted((c.name, k.name) for c in case_rows for k in cluster_rows)
    finally:
        receiver.stop()
