"""/api/v1/resident/: CRUD by name, the token shown once, rotation, filters, 400s, roles."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from apps.resident.models import ResidentProbe, ResidentTarget
from apps.resident.tokens import hash_token
from tests.factories import CaseFactory, CaseTemplateFactory, ClusterFactory, ClusterGroupFactory
from tests.resident.helpers import batch, post_samples, windows

pytestmark = pytest.mark.django_db


@pytest.fixture
def clusters() -> list[Any]:
    return [ClusterFactory(name="prod-1"), ClusterFactory(name="prod-2")]


def create(api: APIClient, **body: Any) -> Any:
    payload = {"name": "etcd-resident", "image": "registry.example/r:1", "clusters": ["prod-1"]}
    payload.update(body)
    return api.post("/api/v1/resident/", payload, format="json")


def test_create_shows_the_token_once_and_stores_only_its_hash(
    admin_api: APIClient, clusters: list[Any]
) -> None:
    answer = create(admin_api, interval_ms=200, denoise_k=2, denoise_n=3)
    assert answer.status_code == 201, answer.content
    token = answer.json()["token"]
    assert token.startswith("kpr_")
    probe = ResidentProbe.objects.get(name="etcd-resident")
    assert probe.token_hash == hash_token(token)
    assert token not in str(vars(probe))
    detail = admin_api.get("/api/v1/resident/etcd-resident/").json()
    assert "token" not in detail and detail["token_set"] is True
    assert detail["interval_ms"] == 200 and detail["clusters"] == ["prod-1"]
    # The token works for ingestion; a rotated one replaces it.
    body = batch("etcd-resident", "prod-1", windows(_recent(), 1))
    assert post_samples(Client(), body, token).status_code == 202
    rotated = admin_api.post("/api/v1/resident/etcd-resident/rotate-token/").json()["token"]
    assert rotated != token
    assert post_samples(Client(), body, token).status_code == 401
    # The detail shows what ingestion recorded per cluster.
    targets = admin_api.get("/api/v1/resident/etcd-resident/").json()["targets"]
    assert [t["cluster"] for t in targets] == ["prod-1"]
    assert targets[0]["state"] == "up"


def _recent() -> Any:
    from datetime import timedelta

    from django.utils import timezone

    return timezone.now() - timedelta(minutes=1)


def test_a_case_probe_and_updates(admin_api: APIClient, clusters: list[Any]) -> None:
    lifecycle = CaseFactory(name="pod-lifecycle")  # a built-in that cannot run resident
    refused = create(admin_api, image="", case=lifecycle.name)
    assert refused.status_code == 400 and "etcd, certificates" in refused.json()["case"][0]
    template = CaseTemplateFactory(command=["python", "-m", "probe_sdk.cases.etcd"])
    case = CaseFactory(name="etcd-meta", template=template)
    group = ClusterGroupFactory(name="prod")
    answer = create(admin_api, image="", case="etcd-meta", clusters=[], groups=["prod"])
    assert answer.status_code == 201, answer.content
    assert answer.json()["case"] == case.name
    changed = admin_api.patch(
        "/api/v1/resident/etcd-resident/",
        {"clusters": ["prod-2"], "interval_ms": 500},
        format="json",
    )
    assert changed.status_code == 200, changed.content
    probe = ResidentProbe.objects.get(name="etcd-resident")
    assert probe.interval_ms == 500
    assert [c.name for c in probe.clusters.all()] == ["prod-2"]
    assert [g.name for g in probe.groups.all()] == [group.name]
    # Its alert subject follows it.
    assert probe.alert_case is not None and probe.alert_case.name == "resident-etcd-resident"
    assert probe.alert_case.enabled is False
    # The alert subject case cannot itself be made resident.
    again = create(admin_api, name="x", image="", case="resident-etcd-resident")
    assert again.status_code == 400 and "case" in again.json()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"image": ""}, "image"),
        ({"case": "etcd-meta"}, "image"),
        ({"clusters": []}, "clusters"),
        ({"clusters": ["nope"]}, "clusters"),
        ({"interval_ms": 99}, "interval_ms"),
        ({"denoise_k": 4, "denoise_n": 3}, "denoise_k"),
        ({"name": "samples"}, "name"),
        ({"name": "Not A Slug"}, "name"),
        ({"env": {"1BAD": "x"}}, "env"),
        ({"env": {"KUBEPROBE_TOKEN": "x"}}, "env"),
        ({"resources": {"requests": {"cpu": "lots"}}}, "resources"),
        ({"report_rate": 0}, "report_rate"),
        ({"command": "run"}, "command"),
    ],
)
def test_bad_input_answers_400_naming_the_field(
    admin_api: APIClient, clusters: list[Any], body: dict[str, Any], field: str
) -> None:
    CaseFactory(name="etcd-meta")
    answer = create(admin_api, **body)
    assert answer.status_code == 400, answer.content
    assert field in answer.json(), answer.json()
    assert not ResidentProbe.objects.exists()


def test_filters_search_and_delete(admin_api: APIClient, clusters: list[Any]) -> None:
    create(admin_api, name="a-probe", clusters=["prod-1"])
    create(admin_api, name="b-probe", clusters=["prod-2"], enabled=False)
    names = lambda q: [p["name"] for p in admin_api.get(f"/api/v1/resident/?{q}").json()["results"]]  # noqa: E731
    assert names("cluster=prod-2") == ["b-probe"]
    assert names("enabled=true") == ["a-probe"]
    assert names("search=b-pro") == ["b-probe"]
    assert admin_api.delete("/api/v1/resident/a-probe/").status_code == 204
    assert names("") == ["b-probe"]
    # Its alert subject went with it.
    from apps.catalog.models import Case

    assert not Case.objects.filter(name="resident-a-probe").exists()


def test_roles(api_client_for: Callable[[str], APIClient], clusters: list[Any]) -> None:
    admin = api_client_for("admin")
    create(admin)
    viewer = api_client_for("viewer")
    assert viewer.get("/api/v1/resident/etcd-resident/").status_code == 200
    assert viewer.post("/api/v1/resident/etcd-resident/rotate-token/").status_code == 403
    assert create(viewer, name="mine").status_code == 403
    assert APIClient().get("/api/v1/resident/").status_code in (401, 403)


def test_alert_rules_api(admin_api: APIClient, clusters: list[Any]) -> None:
    create(admin_api)
    answer = admin_api.post(
        "/api/v1/resident-alert-rules/",
        {"name": "etcd-slo", "probe": "etcd-resident", "availability_below": 99.5},
        format="json",
    )
    assert answer.status_code == 201, answer.content
    assert answer.json()["window_minutes"] == 5
    empty = admin_api.post("/api/v1/resident-alert-rules/", {"name": "nothing"}, format="json")
    assert empty.status_code == 400 and "availability_below" in empty.json()
    assert ResidentTarget.objects.count() == 0
