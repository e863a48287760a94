"""Rows for schemathesis to read: one of each kind, with the null fields that real
data has (a manual run has no binding, a new alert no rule or acknowledger)."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.models import Group, User
from django.utils import timezone

from apps.alerts import channels
from apps.alerts.models import Alert, AlertRule, AlertTimeline, Silence
from apps.core.models import ApiToken
from apps.scheduling.models import Event
from tests.factories import (
    BindingFactory,
    CaseFactory,
    CaseSetFactory,
    CaseTemplateFactory,
    ClusterFactory,
    ClusterGroupFactory,
    ProbeRunFactory,
)


def token_for(user: User) -> str:
    token = ApiToken(user=user, name="schemathesis")
    raw = token.issue()
    token.save()
    return raw


def seed() -> dict[str, str]:
    """The rows, and an API token per caller: {"superuser": "kp_…", "viewer": "kp_…"}."""
    superuser = User.objects.create_superuser("st-admin", password="pw-For-tests-1")
    viewer = User.objects.create_user("st-viewer", password="pw-For-tests-1", is_staff=True)
    viewer.groups.add(Group.objects.get(name="viewer"))

    cluster = ClusterFactory(name="alpha", labels={"team": "a", "1": "one"})
    template = CaseTemplateFactory(name="tmpl")
    case = CaseFactory(name="kase", template=template)
    case_set = CaseSetFactory(name="kset")
    case_set.cases.add(case)
    group = ClusterGroupFactory(name="grp", selector={"team": "a"})
    group.members.add(cluster)
    binding = BindingFactory(name="bind")
    binding.clusters.add(cluster)
    binding.cases.add(case)

    now = timezone.now()
    manual = ProbeRunFactory(
        case=case,
        cluster=cluster,
        binding=None,
        state="failed",
        ok=False,
        errors=["Failed to create pod sandbox"],
        steps=[{"name": "create", "ok": False, "duration_ms": 20, "error": "denied"}],
        metrics={"create_ms": 20.0},
        duration_ms=20,
        finished_at=now,
    )
    ProbeRunFactory(case=case, cluster=cluster, binding=binding, state="pending")
    AlertRule.objects.create(name="kase-rule", case=case)
    alert = Alert.objects.create(
        case=case, cluster=cluster, state="firing", rule=None, last_run=manual, latest_run=manual
    )
    AlertTimeline.objects.create(alert=alert, kind="flip", text="firing", user=None)
    Alert.objects.create(case=case, cluster=ClusterFactory(name="beta"), state="ok")
    Silence.objects.create(
        matchers=[{"name": "cluster", "value": "alpha"}],
        ends_at=now + timedelta(hours=1),
        created_by=None,
    )
    channels.channel_save(
        name="hook", kind="webhook", config={"url": "http://127.0.0.1:9/hook"}, enabled=False
    )
    Event.objects.create(cluster=cluster, kind="upgrade", detail={"to": "1.37"})
    return {"superuser": token_for(superuser), "viewer": token_for(viewer)}
