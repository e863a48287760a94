"""Happy paths of the /api/v1/ resources: create, read back, filter, order, page."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django_celery_beat.models import PeriodicTask
from rest_framework.test import APIClient

from apps.catalog.models import RenderConfig
from apps.clusters.models import Cluster
from apps.runs.models import RunState
from apps.scheduling.models import Binding
from tests.factories import (
    CaseFactory,
    CaseTemplateFactory,
    ClusterFactory,
    ProbeRunFactory,
    make_kubeconfig,
)

pytestmark = pytest.mark.django_db

SECRET = "tok-very-secret-4f9d2c"


def test_cluster_kubeconfig_is_write_only(api: APIClient) -> None:
    response = api.post(
        "/api/v1/clusters/",
        {
            "name": "prod-1",
            "kubeconfig": make_kubeconfig(token=SECRET),
            "environment": "prod",
            "labels": {"team": "a"},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["has_kubeconfig"] is True
    assert body["kubeconfig_fingerprint"].startswith("sha256:")
    assert "kubeconfig" not in body
    assert SECRET.encode() not in response.content

    for url in ("/api/v1/clusters/", "/api/v1/clusters/prod-1/"):
        got = api.get(url)
        assert got.status_code == 200
        assert SECRET.encode() not in got.content
    detail = api.get("/api/v1/clusters/prod-1/").json()
    assert detail["has_kubeconfig"] is True and "kubeconfig" not in detail

    # Stored, and encrypted at rest.
    assert SECRET in Cluster.objects.get(name="prod-1").kubeconfig
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT kubeconfig FROM {Cluster._meta.db_table} WHERE name = %s",  # noqa: S608
            ["prod-1"],
        )
        [raw] = cursor.fetchone()
    assert raw and SECRET not in raw


def test_cluster_patch_without_kubeconfig_keeps_it(api: APIClient) -> None:
    ClusterFactory(name="keep", kubeconfig=make_kubeconfig(token=SECRET))
    before = Cluster.objects.get(name="keep")

    response = api.patch("/api/v1/clusters/keep/", {"description": "edited"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["has_kubeconfig"] is True
    assert SECRET.encode() not in response.content
    after = Cluster.objects.get(name="keep")
    assert after.description == "edited"
    assert after.kubeconfig == before.kubeconfig
    assert after.kubeconfig_fingerprint == before.kubeconfig_fingerprint


def test_cluster_patch_with_new_kubeconfig_replaces_it(api: APIClient) -> None:
    ClusterFactory(name="swap", kubeconfig=make_kubeconfig(token="old-token"))
    old_fp = Cluster.objects.get(name="swap").kubeconfig_fingerprint

    response = api.patch(
        "/api/v1/clusters/swap/",
        {"kubeconfig": make_kubeconfig(context="new", token=SECRET)},
        format="json",
    )

    assert response.status_code == 200, response.content
    assert response.json()["kubeconfig_fingerprint"] != old_fp
    assert SECRET in Cluster.objects.get(name="swap").kubeconfig


def test_local_cluster_may_clear_kubeconfig(api: APIClient) -> None:
    ClusterFactory(name="loc", executor="local")

    response = api.patch("/api/v1/clusters/loc/", {"kubeconfig": ""}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["has_kubeconfig"] is False
    assert Cluster.objects.get(name="loc").kubeconfig == ""


def test_cluster_delete(api: APIClient) -> None:
    ClusterFactory(name="gone")
    assert api.delete("/api/v1/clusters/gone/").status_code == 204
    assert not Cluster.objects.filter(name="gone").exists()
    assert api.get("/api/v1/clusters/gone/").status_code == 404


def test_group_create_and_resolve(api: APIClient) -> None:
    ClusterFactory(name="explicit", labels={"team": "b"})
    ClusterFactory(name="match-1", labels={"team": "a", "tier": "1"})
    ClusterFactory(name="match-2", labels={"team": "a", "tier": "1"})
    ClusterFactory(name="half-match", labels={"team": "a", "tier": "2"})
    ClusterFactory(name="other", labels={})

    response = api.post(
        "/api/v1/cluster-groups/",
        {"name": "g", "members": ["explicit"], "selector": {"team": "a", "tier": "1"}},
        format="json",
    )
    assert response.status_code == 201, response.content
    detail = api.get("/api/v1/cluster-groups/g/").json()
    assert detail["members"] == ["explicit"]
    assert detail["selector"] == {"team": "a", "tier": "1"}

    resolved = api.get("/api/v1/cluster-groups/g/resolve/")
    assert resolved.status_code == 200
    assert resolved.json() == {"count": 3, "clusters": ["explicit", "match-1", "match-2"]}


def test_resolve_member_that_also_matches_is_listed_once(api: APIClient) -> None:
    ClusterFactory(name="both", labels={"team": "a"})
    api.post(
        "/api/v1/cluster-groups/",
        {"name": "g", "members": ["both"], "selector": {"team": "a"}},
        format="json",
    )
    assert api.get("/api/v1/cluster-groups/g/resolve/").json() == {
        "count": 1,
        "clusters": ["both"],
    }


def test_resolve_unknown_group_is_404(api: APIClient) -> None:
    assert api.get("/api/v1/cluster-groups/nope/resolve/").status_code == 404


def test_template_create_and_read(api: APIClient) -> None:
    payload = {
        "name": "pod-lifecycle",
        "kind": "probe",
        "image": "ghcr.io/kubeprobe/probes:1",
        "command": ["python", "-m", "probe"],
        "args": ["--fast"],
        "default_env": {"TIMEOUT": "60", "NAMESPACE": "kubeprobe"},
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
        "timeout_seconds": 120,
    }
    assert api.post("/api/v1/templates/", payload, format="json").status_code == 201
    body = api.get("/api/v1/templates/pod-lifecycle/").json()
    assert {k: body[k] for k in payload} == payload


def test_case_with_render_config_merges_env(api: APIClient) -> None:
    CaseTemplateFactory(name="tmpl", default_env={"TIMEOUT": "60", "NAMESPACE": "kubeprobe"})

    response = api.post(
        "/api/v1/cases/",
        {
            "name": "etcd-meta",
            "template": "tmpl",
            "render_config": {
                "name": "meta-etcd",
                "env": {"TIMEOUT": "5", "ETCD_ENDPOINT": "https://etcd:2379"},
                "args": ["--quick"],
            },
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    expected_env = {"TIMEOUT": "5", "NAMESPACE": "kubeprobe", "ETCD_ENDPOINT": "https://etcd:2379"}
    for body in (response.json(), api.get("/api/v1/cases/etcd-meta/").json()):
        assert body["template"] == "tmpl"
        assert body["render_config"] == {
            "name": "meta-etcd",
            "env": {"TIMEOUT": "5", "ETCD_ENDPOINT": "https://etcd:2379"},
            "args": ["--quick"],
            "resources": None,
        }
        assert body["effective_env"] == expected_env
    assert RenderConfig.objects.get(case__name="etcd-meta").name == "meta-etcd"


def test_case_without_render_config_uses_template_env(api: APIClient) -> None:
    CaseTemplateFactory(name="tmpl", default_env={"A": "1"})
    response = api.post("/api/v1/cases/", {"name": "plain", "template": "tmpl"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["render_config"] is None
    assert response.json()["effective_env"] == {"A": "1"}


def test_case_patch_replaces_render_config(api: APIClient) -> None:
    CaseTemplateFactory(name="tmpl", default_env={"A": "1"})
    api.post(
        "/api/v1/cases/",
        {"name": "c", "template": "tmpl", "render_config": {"name": "r1", "env": {"B": "2"}}},
        format="json",
    )

    response = api.patch(
        "/api/v1/cases/c/",
        {"render_config": {"name": "r2", "env": {"A": "9"}}},
        format="json",
    )

    assert response.status_code == 200, response.content
    assert response.json()["effective_env"] == {"A": "9"}
    assert RenderConfig.objects.filter(case__name="c").count() == 1
    assert RenderConfig.objects.get(case__name="c").name == "r2"


def test_case_patch_null_render_config_removes_it_in_db(api: APIClient) -> None:
    CaseTemplateFactory(name="tmpl", default_env={"A": "1"})
    api.post(
        "/api/v1/cases/",
        {"name": "c", "template": "tmpl", "render_config": {"name": "r", "env": {"B": "2"}}},
        format="json",
    )
    assert api.patch("/api/v1/cases/c/", {"render_config": None}, format="json").status_code == 200
    assert not RenderConfig.objects.filter(case__name="c").exists()
    body = api.get("/api/v1/cases/c/").json()
    assert body["render_config"] is None and body["effective_env"] == {"A": "1"}


def test_case_patch_null_render_config_response_is_current(api: APIClient) -> None:
    CaseTemplateFactory(name="tmpl", default_env={"A": "1"})
    api.post(
        "/api/v1/cases/",
        {"name": "c", "template": "tmpl", "render_config": {"name": "r", "env": {"B": "2"}}},
        format="json",
    )
    body = api.patch("/api/v1/cases/c/", {"render_config": None}, format="json").json()
    assert body["render_config"] is None
    assert body["effective_env"] == {"A": "1"}


def test_case_patch_new_render_config_requires_name(api: APIClient) -> None:
    CaseFactory(name="c")
    response = api.patch("/api/v1/cases/c/", {"render_config": {"env": {"B": "2"}}}, format="json")
    assert response.status_code == 400
    assert "name" in response.json().get("render_config", {})
    assert not RenderConfig.objects.filter(case__name="c").exists()


def test_case_set_with_cases(api: APIClient) -> None:
    CaseFactory(name="c1")
    CaseFactory(name="c2")
    CaseFactory(name="c3")

    response = api.post(
        "/api/v1/case-sets/", {"name": "smoke", "cases": ["c2", "c1"]}, format="json"
    )

    assert response.status_code == 201, response.content
    assert sorted(api.get("/api/v1/case-sets/smoke/").json()["cases"]) == ["c1", "c2"]
    assert (
        api.patch("/api/v1/case-sets/smoke/", {"cases": ["c3"]}, format="json").status_code == 200
    )
    assert api.get("/api/v1/case-sets/smoke/").json()["cases"] == ["c3"]
    filtered = api.get("/api/v1/cases/", {"case_set": "smoke"}).json()
    assert [c["name"] for c in filtered["results"]] == ["c3"]


def binding_world(api: APIClient) -> None:
    ClusterFactory(name="k1")
    ClusterFactory(name="k2")
    CaseFactory(name="c1")
    CaseFactory(name="c2")
    assert (
        api.post("/api/v1/cluster-groups/", {"name": "g", "members": ["k2"]}, format="json")
    ).status_code == 201
    assert (
        api.post("/api/v1/case-sets/", {"name": "s", "cases": ["c2"]}, format="json")
    ).status_code == 201


def test_binding_create_with_everything(api: APIClient) -> None:
    binding_world(api)
    payload = {
        "name": "b",
        "clusters": ["k1"],
        "groups": ["g"],
        "cases": ["c1"],
        "case_sets": ["s"],
        "interval_seconds": 300,
        "event_triggers": [{"kind": "component_release", "component": "etcd"}],
        "upgrade_silence_minutes": 45,
    }

    response = api.post("/api/v1/bindings/", payload, format="json")

    assert response.status_code == 201, response.content
    body = api.get("/api/v1/bindings/b/").json()
    assert {k: body[k] for k in payload} == payload
    assert body["cron"] == "" and body["enabled"] is True
    assert body["schedule"] == "every 300s"
    task = Binding.objects.get(name="b").periodic_task
    assert task is not None and task.interval.every == 300 and task.enabled


def test_binding_switch_to_cron_and_delete(api: APIClient) -> None:
    binding_world(api)
    api.post(
        "/api/v1/bindings/",
        {"name": "b", "clusters": ["k1"], "cases": ["c1"], "interval_seconds": 60},
        format="json",
    )

    response = api.patch(
        "/api/v1/bindings/b/", {"interval_seconds": None, "cron": "*/5 * * * *"}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["schedule"] == "cron */5 * * * *"
    task = Binding.objects.get(name="b").periodic_task
    assert task.interval is None and task.crontab.minute == "*/5"

    assert api.delete("/api/v1/bindings/b/").status_code == 204
    assert not Binding.objects.filter(name="b").exists()
    assert not PeriodicTask.objects.filter(pk=task.pk).exists()


def test_binding_list_filters(api: APIClient) -> None:
    binding_world(api)
    for name, cluster in (("on-k1", "k1"), ("on-k2", "k2")):
        api.post(
            "/api/v1/bindings/",
            {"name": name, "clusters": [cluster], "cases": ["c1"], "interval_seconds": 60},
            format="json",
        )
    names = [b["name"] for b in api.get("/api/v1/bindings/", {"cluster": "k1"}).json()["results"]]
    assert names == ["on-k1"]


@pytest.fixture
def runs() -> dict[str, Any]:
    case = CaseFactory(name="probe-pods")
    prod = ClusterFactory(name="prod-a")
    stage = ClusterFactory(name="stage-a", environment="staging")
    return {
        "failed": ProbeRunFactory(case=case, cluster=prod, state=RunState.FAILED, ok=False),
        "ok": ProbeRunFactory(case=case, cluster=stage, state=RunState.SUCCEEDED, ok=True),
        "error": ProbeRunFactory(case=case, cluster=stage, state=RunState.ERROR),
    }


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("put", "/api/v1/runs/{id}/"),
        ("patch", "/api/v1/runs/{id}/"),
        ("delete", "/api/v1/runs/{id}/"),
    ],
)
def test_stored_runs_cannot_be_changed_even_by_admin(
    api: APIClient, runs: dict[str, Any], method: str, path: str
) -> None:
    run = runs["failed"]
    response = getattr(api, method)(path.format(id=run.pk), {"state": "succeeded"}, format="json")
    assert response.status_code == 405
    run.refresh_from_db()
    assert run.state == RunState.FAILED


def test_runs_list_shows_names(api: APIClient, runs: dict[str, Any]) -> None:
    body = api.get("/api/v1/runs/").json()
    assert body["count"] == 3
    by_id = {r["id"]: r for r in body["results"]}
    failed = by_id[runs["failed"].pk]
    assert failed["case"] == "probe-pods"
    assert failed["cluster"] == "prod-a"
    assert failed["state"] == "failed" and failed["ok"] is False
    # newest first
    assert [r["id"] for r in body["results"]] == sorted(by_id, reverse=True)
    detail = api.get(f"/api/v1/runs/{runs['ok'].pk}/").json()
    assert (detail["cluster"], detail["state"]) == ("stage-a", "succeeded")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"state": "failed"}, ["failed"]),
        ({"state": ["failed", "error"]}, ["error", "failed"]),
        ({"cluster": "stage-a"}, ["error", "ok"]),
        ({"cluster": "stage-a", "state": "succeeded"}, ["ok"]),
        ({"case": "nope"}, []),
    ],
)
def test_runs_filters(
    api: APIClient, runs: dict[str, Any], query: dict[str, Any], expected: list[str]
) -> None:
    response = api.get("/api/v1/runs/", query)
    assert response.status_code == 200
    ids = {r["id"] for r in response.json()["results"]}
    assert ids == {runs[key].pk for key in expected}


def test_runs_bad_state_filter_is_400(api: APIClient, runs: dict[str, Any]) -> None:
    response = api.get("/api/v1/runs/", {"state": "exploded"})
    assert response.status_code == 400
    assert "state" in response.json()


@pytest.fixture
def clusters() -> None:
    ClusterFactory(name="c-a", environment="prod", labels={"team": "a"})
    ClusterFactory(name="c-b", environment="prod", labels={"team": "b"})
    ClusterFactory(name="c-c", environment="staging", labels={"team": "a", "gpu": "yes"})
    ClusterFactory(name="c-d", environment="staging", labels={})


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, ["c-a", "c-b", "c-c", "c-d"]),
        ({"environment": "prod"}, ["c-a", "c-b"]),
        ({"label": "team=a"}, ["c-a", "c-c"]),
        ({"label": "gpu"}, ["c-c"]),
        ({"label": "team=a", "environment": "staging"}, ["c-c"]),
        ({"ordering": "-name"}, ["c-d", "c-c", "c-b", "c-a"]),
        ({"search": "c-b"}, ["c-b"]),
    ],
)
def test_cluster_filtering_and_ordering(
    api: APIClient, clusters: None, query: dict[str, str], expected: list[str]
) -> None:
    response = api.get("/api/v1/clusters/", query)
    assert response.status_code == 200
    assert [c["name"] for c in response.json()["results"]] == expected


def test_cluster_filter_by_group(api: APIClient, clusters: None) -> None:
    api.post(
        "/api/v1/cluster-groups/",
        {"name": "g", "members": ["c-d"], "selector": {"team": "b"}},
        format="json",
    )
    names = [c["name"] for c in api.get("/api/v1/clusters/", {"group": "g"}).json()["results"]]
    assert names == ["c-b", "c-d"]


def test_pagination(api: APIClient, clusters: None) -> None:
    first = api.get("/api/v1/clusters/", {"page_size": 3, "ordering": "-name"}).json()
    assert first["count"] == 4
    assert [c["name"] for c in first["results"]] == ["c-d", "c-c", "c-b"]
    assert first["previous"] is None
    assert first["next"] and "page=2" in first["next"]

    second = api.get(first["next"]).json()
    assert [c["name"] for c in second["results"]] == ["c-a"]
    assert second["next"] is None and second["previous"]


def test_page_past_the_end_is_404(api: APIClient, clusters: None) -> None:
    assert api.get("/api/v1/clusters/", {"page_size": 3, "page": 3}).status_code == 404
