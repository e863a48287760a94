"""A world of data (clusters, cases, failed and passed runs, alerts firing, acknowledged
and resolved by hand, incidents, a silence, a gate decision, self-heal actions, a resident
probe) and every dashboard page, every admin list and change form and the main API
lists fetched under zh-hans: no English sentence of ours is left.

"English sentence": four or more English words in a row in the visible text (or a JSON
string value). What probes reported and what people typed (error texts, notes, names)
is data and stays as written: the world's data is listed below and allowed."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from apps.actions.models import ActionPolicy
from apps.alerts import services as alert_services
from apps.alerts.models import Alert, AlertRule, AlertState
from apps.alerts.silences import silence_create
from apps.diagnosis.models import Incident
from apps.gating.services import gate_decide
from apps.resident.services import resident_probe_create
from tests.diagnosis.helpers import case_of, failed_step, finish
from tests.factories import ClusterFactory

pytestmark = pytest.mark.django_db

ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}
WORDS = re.compile(r"[A-Za-z][A-Za-z']+(?:[ ,;:]+[A-Za-z][A-Za-z']+){3,}")
# The world's own data: what its probes reported and its people typed.
DATA = (
    "timed out",
    "request timed out",
    "etcdserver",
    "the server is currently unable",
    "currently unable",
    "restarted the kubelet",
    "kernel upgrade on the nodes",
    "Connection refused",
    "failed: HTTP",  # the probe's own report: "step create failed: HTTP 500: …" (run errors)
)
# Descriptions of objects the portal creates for itself (the default alert rule, the
# resident probes' subject template and cases): editable data, stored in English.
DESCRIPTIONS = (
    "Applies where no more specific rule does",
    "row fire, one success resolves, and",
    "probe with no result for",
    "schedule periods is an alert too",
    "Alert subjects of resident probes",
    "one disabled case per probe",
    "not run by bindings",
    "Alerts of resident probe api",
)


class _Text(HTMLParser):
    """Visible text and title/placeholder attributes, without scripts and styles."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "pre", "code", "textarea"):
            self._skip += 1
        for name, value in attrs:
            if name in ("title", "placeholder", "aria-label") and value:
                self.parts.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "pre", "code", "textarea") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def english_in(text: str) -> list[str]:
    found = []
    for match in WORDS.findall(text):
        if not any(
            d.lower() in match.lower() or match.lower() in d.lower() for d in DATA + DESCRIPTIONS
        ):
            found.append(match)
    return found


def visible(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return "\n".join(parser.parts)


def strings_of(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings_of(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings_of(v)]
    return []


@pytest.fixture
def world(make_user: Callable[..., User]) -> dict[str, Any]:
    AlertRule.objects.filter(name="default").update(consecutive_failures=1, flap_threshold=50)
    boss = make_user("admin", "boss")
    prod, stage = ClusterFactory(name="prod-7"), ClusterFactory(name="stage-2")
    etcd = case_of("etcd", "etcd-meta")
    pods = case_of("lifecycle", "pod-lifecycle")
    canary = case_of("canary", "canary-nginx")
    ActionPolicy.objects.create(name="etcd-page", category="etcd", severity="warning")
    # A cluster-wide incident on prod-7 (three cases failing), actions planned for it.
    finish(etcd, prod, failed_step("put", "timed out"))
    finish(pods, prod, failed_step("create", "HTTP 500: etcdserver: request timed out"))
    finish(canary, prod, failed_step("deploy", "HTTP 503: the server is currently unable"))
    # stage-2: a pass, then a failure acknowledged, another resolved by hand.
    finish(
        etcd,
        stage,
        {"ok": True, "errors": [], "steps": [{"name": "put", "ok": True, "duration_ms": 12}]},
    )
    _run, acked = finish(pods, stage, failed_step("create", "timed out"))
    _run, resolved = finish(canary, stage, failed_step("deploy", "timed out"))
    assert acked is not None and resolved is not None
    alert_services.alert_acknowledge(alert_id=acked.pk, user=boss, note="restarted the kubelet")
    alert_services.alert_resolve_by_hand(alert_id=resolved.pk, user=boss, note="")
    silence_create(
        matchers=[{"name": "cluster", "value": "stage-2"}],
        ends_at=timezone.now() + timedelta(hours=2),
        comment="kernel upgrade on the nodes",
        user=boss,
    )
    gate_decide(cluster=prod, user=boss)
    resident_probe_create(
        fields={"name": "api-ping", "image": "reg.example/ping:1"}, clusters=[prod]
    )
    assert Incident.objects.exists()
    assert Alert.objects.filter(state=AlertState.ACKNOWLEDGED).exists()
    return {"boss": boss}


def pages(client: Client) -> list[str]:
    urls = [
        "/dashboard/",
        "/dashboard/?render=table",
        "/dashboard/incidents/",
        "/dashboard/alerts/",
    ]
    urls += ["/dashboard/inbox/", "/dashboard/clusters/prod-7/", "/dashboard/clusters/stage-2/"]
    urls += ["/dashboard/cases/etcd-meta/", "/dashboard/cases/pod-lifecycle/"]
    urls += ["/dashboard/resident/api-ping/"]
    from apps.runs.models import ProbeRun

    urls += [f"/dashboard/runs/{pk}/" for pk in ProbeRun.objects.values_list("pk", flat=True)]
    urls += [f"/dashboard/incidents/{pk}/" for pk in Incident.objects.values_list("pk", flat=True)]
    urls.append(reverse("admin:index"))
    for model, model_admin in admin.site._registry.items():
        meta = model._meta
        urls.append(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
        first = model_admin.get_queryset(_Request()).first() if False else model.objects.first()
        if first is not None:
            urls.append(
                reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[first.pk])
            )
    return urls


class _Request:
    pass


def test_no_english_sentence_of_ours_under_zh_hans(
    world: dict[str, Any], client: Client, admin_api: APIClient
) -> None:
    client.force_login(world["boss"])
    left: dict[str, list[str]] = {}
    for url in pages(client):
        response = client.get(url, **ZH)
        assert response.status_code == 200, (url, response.status_code)
        found = english_in(visible(response.content.decode()))
        if found:
            left[url] = sorted(set(found))
    api = ["clusters", "cluster-groups", "templates", "cases", "case-sets", "bindings", "runs"]
    api += ["events", "alerts/?expand=timeline", "silences", "alert-rules", "channels"]
    api += ["incidents", "diagnoses", "gate/checks", "gate/policies", "gate/decisions"]
    api += ["resident", "resident-alert-rules"]
    for name in api:
        response = admin_api.get(f"/api/v1/{name}" + ("" if "?" in name else "/"), **ZH)
        assert response.status_code == 200, (name, response.status_code)
        found = [e for s in strings_of(response.json()) for e in english_in(s)]
        if found:
            left[f"/api/v1/{name}"] = sorted(set(found))
    assert left == {}, "\n".join(f"{url}: {found}" for url, found in left.items())
