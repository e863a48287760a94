"""Open incidents deny, naming their root cause; the policy may list them instead."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.alerts.models import Alert, AlertState
from apps.diagnosis.models import Incident, IncidentMember, IncidentScope, IncidentState
from tests.factories import ClusterFactory
from tests.gating.helpers import cases, finished, gating_set, policy

pytestmark = pytest.mark.django_db


def test_open_incidents_touching_the_cluster_deny_with_their_root_cause(
    api_client_for: Callable[[str], APIClient],
) -> None:
    viewer = api_client_for("viewer")
    cluster, other = ClusterFactory(name="prod-1"), ClusterFactory(name="prod-2")
    gated, registry_case = cases(2)
    gate = policy([("", gating_set(gated))])
    finished(gated, cluster)  # the gating case itself passes
    assert viewer.get("/api/v1/gate", {"cluster": "prod-1"}).json()["verdict"] == "allow"

    # A case-wide incident (one case failing on many clusters) with a member on prod-1.
    wide = Incident.objects.create(
        scope=IncidentScope.CASE,
        key="case:registry",
        title="image pulls fail on 5 clusters",
        case=registry_case,
        category="image",
        component="registry.example.com",
        confidence=0.9,
        source="rule",
    )
    alert = Alert.objects.create(case=registry_case, cluster=cluster, state=AlertState.FIRING)
    IncidentMember.objects.create(incident=wide, alert=alert)
    # One on another cluster only: not prod-1's business.
    Incident.objects.create(
        scope=IncidentScope.CLUSTER, key="cluster:other", title="etcd down", cluster=other
    )

    answer = viewer.get("/api/v1/gate", {"cluster": "prod-1"}).json()
    assert answer["verdict"] == "deny"
    [reason] = answer["reasons"]
    assert reason["kind"] == "incident" and reason["incident"] == wide.pk
    assert reason["category"] == "image"
    assert "image pulls fail on 5 clusters" in reason["message"]
    assert "root cause: Image registry / pull (registry.example.com), rule 90%" in reason["message"]

    gate.incident_denies = False
    gate.save()
    listed = viewer.get("/api/v1/gate", {"cluster": "prod-1"}).json()
    assert listed["verdict"] == "allow" and listed["reasons"][0]["effect"] == "none"

    gate.incident_denies = True
    gate.save()
    # The member recovered (left) and the incident resolved: nothing holds the gate.
    IncidentMember.objects.filter(incident=wide).update(left_at=timezone.now())
    assert viewer.get("/api/v1/gate", {"cluster": "prod-1"}).json()["verdict"] == "allow"
    IncidentMember.objects.filter(incident=wide).update(left_at=None)
    Incident.objects.filter(pk=wide.pk).update(state=IncidentState.RESOLVED)
    assert viewer.get("/api/v1/gate", {"cluster": "prod-1"}).json()["verdict"] == "allow"
