"""Alert state: fire, resolve, flapping, acknowledgement, silences, dependencies, escalation,
staleness; every transition written once as a flip."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from apps.alerts import selectors, services, silences, sweeps
from apps.alerts.models import Alert, AlertFlip, AlertRule, AlertState, Silence
from apps.scheduling.services import event_record
from tests.alerts.conftest import add_run
from tests.factories import (
    BindingFactory,
    CaseFactory,
    CaseSetFactory,
    ClusterFactory,
)

pytestmark = pytest.mark.django_db


def flips(alert: Alert) -> list[tuple[str, str, bool]]:
    return [
        (f.event, f.new_state, f.notify)
        for f in AlertFlip.objects.filter(alert=alert).order_by("id")
    ]


def last_flip(alert: Alert) -> AlertFlip:
    flip = AlertFlip.objects.filter(alert=alert).order_by("id").last()
    assert flip is not None
    return flip


def test_default_rule_fires_on_the_second_failure_and_resolves_on_a_success(
    report: Callable[..., Alert],
) -> None:
    assert report(False).state == AlertState.OK
    alert = report(False)
    assert alert.state == AlertState.FIRING
    assert alert.severity == "warning"
    assert alert.rule is not None and alert.rule.name == "default"
    assert alert.reason == "2 consecutive failed runs"
    assert (alert.step, alert.error) == ("ready", "Failed to create pod sandbox")
    assert alert.root_cause == "runtime"
    assert alert.last_run is not None and alert.firing_since is not None
    assert report(False).state == AlertState.FIRING  # still failing: no new flip
    alert = report(True)
    assert alert.state == AlertState.OK and alert.firing_since is None
    assert flips(alert) == [("firing", "firing", True), ("resolved", "ok", True)]
    timeline = [t.text for t in alert.timeline.all()]
    assert timeline == ["ok → firing (firing)", "firing → ok (resolved)"]


def test_most_specific_rule_wins(pair: tuple[Any, Any]) -> None:
    case, cluster = pair
    group = cluster.explicit_groups.create(name="prod")
    binding = BindingFactory()
    AlertRule.objects.create(name="by-group", group=group, consecutive_failures=1, severity="info")
    assert selectors.rule_for(case=case, cluster=cluster, binding_id=None).name == "by-group"
    AlertRule.objects.create(name="by-cluster", cluster=cluster, consecutive_failures=1)
    assert selectors.rule_for(case=case, cluster=cluster, binding_id=None).name == "by-cluster"
    AlertRule.objects.create(name="by-case", case=case, consecutive_failures=1)
    assert selectors.rule_for(case=case, cluster=cluster, binding_id=None).name == "by-case"
    AlertRule.objects.create(name="by-binding", binding=binding, consecutive_failures=1)
    assert (
        selectors.rule_for(case=case, cluster=cluster, binding_id=binding.pk).name == "by-binding"
    )
    other = ClusterFactory(labels={"env": "prod"})
    assert selectors.rule_for(case=CaseFactory(), cluster=other, binding_id=None).name == "default"
    group.selector = {"env": "prod"}
    group.save()
    assert selectors.rule_for(case=CaseFactory(), cluster=other, binding_id=None).name == "by-group"


def test_resolve_waits_for_r_successes(pair: tuple[Any, Any], report: Callable[..., Alert]) -> None:
    case, _ = pair
    AlertRule.objects.create(
        name="strict", case=case, consecutive_failures=1, resolve_after_successes=2
    )
    assert report(False).state == AlertState.FIRING
    assert report(True).state == AlertState.FIRING
    assert report(False).state == AlertState.FIRING
    assert report(True).state == AlertState.FIRING
    assert report(True).state == AlertState.OK


def test_flapping_is_notified_once_then_quiet_until_stable(
    pair: tuple[Any, Any], report: Callable[..., Alert]
) -> None:
    case, _ = pair
    AlertRule.objects.create(name="flappy", case=case, consecutive_failures=1, flap_threshold=3)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        for ok in (False, True, False):
            alert = report(ok)
        assert flips(alert) == [
            ("firing", "firing", True),
            ("resolved", "ok", True),
            ("firing", "firing", True),
        ]
        alert = report(True)  # the 4th transition within the hour: flapping
        assert alert.flapping_since is not None
        for ok in (False, True, False):
            alert = report(ok)
    assert flips(alert)[3:] == [
        ("flapping", "ok", True),
        ("resolved", "ok", False),
        ("firing", "firing", False),
        ("resolved", "ok", False),
        ("firing", "firing", False),
    ]
    assert sum(1 for f in flips(alert) if f[0] == "flapping") == 1
    with time_machine.travel(start + timedelta(minutes=30), tick=False):
        assert sweeps.alerts_release_quiet() == 0  # still too many transitions this hour
    with time_machine.travel(start + timedelta(minutes=61), tick=False):
        assert sweeps.alerts_release_quiet() == 1
    alert.refresh_from_db()
    assert alert.flapping_since is None
    # firing but its last firing flip was not notified: say so now
    assert flips(alert)[-1] == ("firing", "firing", True)
    assert last_flip(alert).note == "stable again, still failing"


def test_acknowledge_quiets_until_it_expires(
    pair: tuple[Any, Any], report: Callable[..., Alert], make_user: Callable[..., Any]
) -> None:
    user = make_user("operator")
    report(False)
    alert = report(False)
    until = timezone.now() + timedelta(minutes=30)
    services.alert_acknowledge(alert_id=alert.pk, user=user, note="looking at the CNI", until=until)
    alert.refresh_from_db()
    assert alert.state == AlertState.ACKNOWLEDGED and alert.ack_by == user
    assert report(False).state == AlertState.ACKNOWLEDGED  # still failing, still quiet
    with time_machine.travel(until - timedelta(seconds=1), tick=False):
        assert sweeps.alerts_expire_acknowledgements() == 0
    with time_machine.travel(until, tick=False):
        assert sweeps.alerts_expire_acknowledgements() == 1
    alert.refresh_from_db()
    assert alert.state == AlertState.FIRING
    assert flips(alert)[-2:] == [("acknowledged", "acknowledged", True), ("firing", "firing", True)]
    assert "acknowledgement by" in last_flip(alert).note
    texts = [t.text for t in alert.timeline.all()]
    assert any(t.startswith(f"acknowledged by {user}") and "looking at the CNI" in t for t in texts)


def test_acknowledged_alert_that_recovers_resolves_and_clears_the_ack(
    report: Callable[..., Alert], make_user: Callable[..., Any]
) -> None:
    report(False)
    alert = report(False)
    services.alert_acknowledge(alert_id=alert.pk, user=make_user("operator"))
    alert = report(True)
    assert alert.state == AlertState.OK and alert.ack_by is None
    assert flips(alert)[-1] == ("resolved", "ok", True)


def test_only_open_alerts_can_be_acknowledged_or_resolved(
    report: Callable[..., Alert], make_user: Callable[..., Any]
) -> None:
    alert = report(True)
    user = make_user("operator")
    with pytest.raises(ValueError, match="only a firing alert"):
        services.alert_acknowledge(alert_id=alert.pk, user=user)
    with pytest.raises(ValueError, match="not open"):
        services.alert_resolve_by_hand(alert_id=alert.pk, user=user)


def test_resolve_by_hand_notifies_and_the_next_failures_reopen(
    report: Callable[..., Alert], make_user: Callable[..., Any]
) -> None:
    user = make_user("operator")
    report(False)
    alert = report(False)
    services.alert_resolve_by_hand(alert_id=alert.pk, user=user, note="fixed the CNI")
    alert.refresh_from_db()
    assert alert.state == AlertState.OK
    assert flips(alert)[-1] == ("resolved", "ok", True)
    assert any(
        "resolved by hand" in t.text and "fixed the CNI" in t.text for t in alert.timeline.all()
    )
    assert report(False).state == AlertState.FIRING  # still two failures in a row


@pytest.mark.parametrize(
    ("matchers", "silenced"),
    [
        ([{"name": "cluster", "value": "prod-1"}], True),
        ([{"name": "cluster", "value": "prod-2"}], False),
        (
            [{"name": "cluster", "value": "prod-1"}, {"name": "case", "value": "pod-lifecycle"}],
            True,
        ),
        ([{"name": "cluster", "value": "prod-1"}, {"name": "case", "value": "etcd"}], False),
        ([{"name": "label", "value": "env=prod"}], True),
        ([{"name": "label", "value": "env=staging"}], False),
        ([{"name": "group", "value": "eu"}], True),
        ([{"name": "case_set", "value": "core"}], True),
    ],
)
def test_silences_match_by_every_matcher(
    pair: tuple[Any, Any],
    report: Callable[..., Alert],
    matchers: list[dict[str, str]],
    silenced: bool,
) -> None:
    case, cluster = pair
    cluster.labels = {"env": "prod"}
    cluster.save()
    cluster.explicit_groups.create(name="eu")
    CaseSetFactory(name="core").cases.add(case)
    silences.silence_create(matchers=matchers, ends_at=timezone.now() + timedelta(hours=1))
    report(False)
    alert = report(False)
    expected = AlertState.SILENCED if silenced else AlertState.FIRING
    assert alert.state == expected
    assert flips(alert) == [("firing", expected, not silenced)]


def test_silence_ending_while_still_failing_notifies_then(report: Callable[..., Alert]) -> None:
    ends = timezone.now() + timedelta(minutes=10)
    silences.silence_create(
        matchers=[{"name": "cluster", "value": "prod-1"}], ends_at=ends, comment="maintenance"
    )
    report(False)
    alert = report(False)
    assert alert.state == AlertState.SILENCED
    assert "maintenance" in AlertFlip.objects.get(alert=alert).note
    with time_machine.travel(ends - timedelta(seconds=1), tick=False):
        assert sweeps.alerts_release_quiet() == 0
    with time_machine.travel(ends, tick=False):
        assert sweeps.alerts_release_quiet() == 1
    alert.refresh_from_db()
    assert alert.state == AlertState.FIRING
    assert flips(alert)[-1] == ("firing", "firing", True)


@pytest.mark.parametrize(
    ("matchers", "ends_in", "message"),
    [
        ([], 60, "at least one matcher"),
        ([{"name": "zone", "value": "a"}], 60, "unknown name 'zone'"),
        ([{"name": "label", "value": "prod"}], 60, "key=value"),
        ([{"name": "cluster"}], 60, "exactly 'name' and 'value'"),
        ([{"name": "cluster", "value": "x"}], -60, "must end after it starts"),
    ],
)
def test_bad_silences_are_refused_naming_the_problem(
    matchers: list[Any], ends_in: int, message: str
) -> None:
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match=message):
        silences.silence_create(
            matchers=matchers, ends_at=timezone.now() + timedelta(seconds=ends_in)
        )
    assert not Silence.objects.exists()


def test_dependency_firing_on_the_same_cluster_keeps_the_dependent_quiet(
    pair: tuple[Any, Any], report: Callable[..., Alert]
) -> None:
    case, cluster = pair
    etcd = CaseFactory(name="etcd-blackbox")
    rule = AlertRule.objects.create(name="pods", case=case, consecutive_failures=1)
    rule.depends_on.add(etcd)
    AlertRule.objects.create(name="etcd", case=etcd, consecutive_failures=1)
    add_run(etcd, cluster, False, error="etcdserver: request timed out")
    etcd_alert = services.alert_evaluate(case_id=etcd.pk, cluster_id=cluster.pk)
    assert etcd_alert is not None and etcd_alert.state == AlertState.FIRING
    alert = report(False)
    assert alert.state == AlertState.FIRING and alert.suppressed_by == "etcd-blackbox"
    [flip] = AlertFlip.objects.filter(alert=alert)
    assert not flip.notify
    assert flip.note == "not notified: it depends on etcd-blackbox, which is firing on prod-1"
    # on another cluster the dependency is fine: notified
    other = ClusterFactory(name="prod-2")
    add_run(case, other, False)
    other_alert = services.alert_evaluate(case_id=case.pk, cluster_id=other.pk)
    assert other_alert is not None and flips(other_alert) == [("firing", "firing", True)]
    # etcd recovers, pods still fail: now it is news
    add_run(etcd, cluster, True)
    services.alert_evaluate(case_id=etcd.pk, cluster_id=cluster.pk)
    assert sweeps.alerts_release_quiet() == 1
    alert.refresh_from_db()
    assert alert.suppressed_by == ""
    last = last_flip(alert)
    assert last is not None and last.notify
    assert last.note == "dependency etcd-blackbox recovered; this case still fails"


def test_escalation_after_its_delay(pair: tuple[Any, Any], report: Callable[..., Alert]) -> None:
    case, _ = pair
    AlertRule.objects.create(
        name="escalating",
        case=case,
        consecutive_failures=1,
        severity="warning",
        escalate_to="critical",
        escalate_after_minutes=10,
    )
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        alert = report(False)
    with time_machine.travel(start + timedelta(minutes=9, seconds=59), tick=False):
        assert sweeps.alerts_escalate() == 0
    with time_machine.travel(start + timedelta(minutes=10), tick=False):
        assert sweeps.alerts_escalate() == 1
        assert sweeps.alerts_escalate() == 0  # once
    alert.refresh_from_db()
    assert alert.severity == "critical" and alert.escalated
    flip = last_flip(alert)
    assert flip is not None and (flip.event, flip.severity, flip.notify) == (
        "escalated",
        "critical",
        True,
    )


def test_rule_validation_names_the_field() -> None:
    from django.core.exceptions import ValidationError

    cases = [
        (dict(success_rate_below=90), "window_runs"),
        (dict(consecutive_failures=1, window_runs=5), "success_rate_below"),
        (dict(success_rate_below=90, window_runs=5, window_minutes=5), "window_minutes"),
        (dict(), "consecutive_failures"),
        (dict(consecutive_failures=1, escalate_to="critical"), "escalate_after_minutes"),
        (dict(consecutive_failures=1, escalate_to="info", escalate_after_minutes=5), "escalate_to"),
        (dict(consecutive_failures=1, step_name="ready"), "step_latency_ms"),
        (dict(consecutive_failures=1, case=CaseFactory(), cluster=ClusterFactory()), "cluster"),
    ]
    for fields, field in cases:
        rule = AlertRule(name="r", **fields)
        with pytest.raises(ValidationError) as info:
            rule.full_clean()
        assert field in info.value.message_dict, (fields, info.value.message_dict)


# ------------------------------------------------------------------ staleness


def test_a_probe_that_stops_running_is_an_alert(pair: tuple[Any, Any]) -> None:
    case, cluster = pair
    binding = BindingFactory(interval_seconds=60)
    binding.cases.add(case)
    binding.clusters.add(cluster)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        add_run(case, cluster, True)
        services.alert_evaluate(case_id=case.pk, cluster_id=cluster.pk)
    with time_machine.travel(start + timedelta(minutes=3), tick=False):
        assert sweeps.alerts_check_stale() == 0  # exactly 3 × 60 s: not over
    with time_machine.travel(start + timedelta(minutes=3, seconds=1), tick=False):
        assert sweeps.alerts_check_stale() == 1
        assert sweeps.alerts_check_stale() == 0  # already firing
    alert = Alert.objects.get(case=case, cluster=cluster)
    assert alert.state == AlertState.FIRING
    assert alert.reason == "no run finished for 3 min"
    assert "stopped running" in alert.error and alert.root_cause == "probe"
    with time_machine.travel(start + timedelta(minutes=4), tick=False):
        add_run(case, cluster, True)
        alert = services.alert_evaluate(case_id=case.pk, cluster_id=cluster.pk)
    assert alert is not None and alert.state == AlertState.OK


def test_a_pair_that_never_ran_is_measured_from_its_binding(pair: tuple[Any, Any]) -> None:
    case, cluster = pair
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        binding = BindingFactory(cron="*/5 * * * *", interval_seconds=None)
        binding.cases.add(case)
        binding.clusters.add(cluster)
    with time_machine.travel(start + timedelta(minutes=14), tick=False):
        assert sweeps.alerts_check_stale() == 0
    with time_machine.travel(start + timedelta(minutes=16), tick=False):
        assert sweeps.alerts_check_stale() == 1


# ------------------------------------------------------------------ upgrade silences


def test_upgrade_event_opens_a_silence_when_the_binding_asks(pair: tuple[Any, Any]) -> None:
    case, cluster = pair
    binding = BindingFactory(
        event_triggers=[{"kind": "upgrade"}], upgrade_silence_minutes=30, interval_seconds=None
    )
    binding.cases.add(case)
    binding.clusters.add(cluster)
    event, _ = event_record(cluster=cluster, kind="upgrade", component="kubelet")
    silence = Silence.objects.get(event=event)
    assert silence.matchers == [{"name": "cluster", "value": "prod-1"}]
    assert silence.ends_at - silence.starts_at == timedelta(minutes=30)
    assert "upgrade of kubelet" in silence.comment
    event, _ = event_record(cluster=cluster, kind="upgrade", detail={"duration_minutes": 90})
    silence = Silence.objects.get(event=event)
    assert silence.ends_at - silence.starts_at == timedelta(minutes=90)
    event_record(cluster=cluster, kind="component_release", component="etcd")
    assert Silence.objects.count() == 2  # only upgrades


def test_no_silence_when_no_binding_asks(pair: tuple[Any, Any]) -> None:
    case, cluster = pair
    binding = BindingFactory(event_triggers=[{"kind": "upgrade"}], interval_seconds=None)
    binding.cases.add(case)
    binding.clusters.add(cluster)
    event_record(cluster=cluster, kind="upgrade")
    assert not Silence.objects.exists()


# ------------------------------------------------------------------ concurrency


@pytest.mark.django_db(transaction=True)
def test_racing_evaluations_record_one_transition() -> None:
    case, cluster = CaseFactory(), ClusterFactory()
    AlertRule.objects.create(name="once", case=case, consecutive_failures=1)
    add_run(case, cluster, False)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def evaluate() -> None:
        try:
            barrier.wait(5)
            services.alert_evaluate(case_id=case.pk, cluster_id=cluster.pk)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=evaluate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert Alert.objects.filter(case=case, cluster=cluster).count() == 1
    assert AlertFlip.objects.filter(alert__case=case, event="firing").count() == 1


def test_every_evaluation_records_the_latest_result(pair: tuple[Any, Any]) -> None:
    # (The post-run pipeline pushes it to dashboards: tests/postrun.)
    case, cluster = pair
    run = add_run(case, cluster, True, duration_ms=1234)
    alert = services.alert_evaluate(case_id=case.pk, cluster_id=cluster.pk)
    assert alert is not None
    alert.refresh_from_db()
    assert (alert.latest_run_id, alert.latest_state, alert.latest_duration_ms) == (
        run.pk,
        "succeeded",
        1234,
    )


def test_a_silence_made_while_an_alert_fires_quiets_it_until_it_ends(
    report: Callable[..., Alert], django_capture_on_commit_callbacks: Any
) -> None:
    report(False)
    alert = report(False)
    assert alert.state == AlertState.FIRING
    ends = timezone.now() + timedelta(minutes=20)
    with django_capture_on_commit_callbacks(execute=True):
        silences.silence_create(matchers=[{"name": "cluster", "value": "prod-1"}], ends_at=ends)
    alert.refresh_from_db()
    assert alert.state == AlertState.SILENCED
    assert flips(alert)[-1] == ("silenced", "silenced", False)
    with time_machine.travel(ends, tick=False):
        assert sweeps.alerts_release_quiet() == 1
    alert.refresh_from_db()
    assert alert.state == AlertState.FIRING and flips(alert)[-1] == ("firing", "firing", True)


def test_flapping_that_settles_healthy_says_resolved(
    pair: tuple[Any, Any], report: Callable[..., Alert]
) -> None:
    case, _ = pair
    AlertRule.objects.create(name="flappy", case=case, consecutive_failures=1, flap_threshold=3)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        for ok in (False, True, False, True, False, True):
            alert = report(ok)
    assert alert.state == AlertState.OK and alert.flapping_since is not None
    with time_machine.travel(start + timedelta(minutes=61), tick=False):
        assert sweeps.alerts_release_quiet() == 1
    assert flips(alert)[-1] == ("resolved", "ok", True)
    assert last_flip(alert).note == "stable again, healthy"


def test_disabling_the_rule_resolves_what_it_fired(report: Callable[..., Alert]) -> None:
    report(False)
    alert = report(False)
    assert alert.state == AlertState.FIRING
    AlertRule.objects.filter(name="default").update(enabled=False)
    alert = report(False)
    assert alert.state == AlertState.OK
    assert last_flip(alert).note == "no enabled rule applies any more"


@pytest.mark.django_db(transaction=True)
def test_the_default_rule_comes_back_after_a_flush() -> None:
    from django.core.management import call_command

    call_command("flush", interactive=False, verbosity=0)
    rule = AlertRule.objects.get(name="default")
    assert (rule.consecutive_failures, rule.stale_factor) == (2, 3.0)
