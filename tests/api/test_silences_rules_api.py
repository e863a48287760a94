"""/api/v1/silences and /api/v1/alert-rules: CRUD, validation naming the field, expire,
and the default rule that stays."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.test import APIClient

from apps.alerts.models import AlertRule, Silence
from tests.api.test_validation import error_at

pytestmark = pytest.mark.django_db


def iso(delta: timedelta) -> str:
    return (timezone.now() + delta).isoformat()


def silence(**fields: Any) -> dict[str, Any]:
    return {
        "matchers": [{"name": "cluster", "value": "alpha"}],
        "ends_at": iso(timedelta(hours=2)),
        "comment": "kernel upgrade",
        **fields,
    }


@pytest.fixture
def windows(db: None) -> dict[str, Silence]:
    now = timezone.now()
    matchers = [{"name": "cluster", "value": "alpha"}]
    return {
        "active": Silence.objects.create(matchers=matchers, ends_at=now + timedelta(hours=1)),
        "pending": Silence.objects.create(
            matchers=matchers, starts_at=now + timedelta(hours=1), ends_at=now + timedelta(hours=2)
        ),
        "ended": Silence.objects.create(
            matchers=matchers, starts_at=now - timedelta(hours=2), ends_at=now - timedelta(hours=1)
        ),
    }


# ------------------------------------------------------------------ silences


def test_operator_creates_a_silence(client_for: Callable[[str], APIClient]) -> None:
    response = client_for("operator").post("/api/v1/silences/", silence(), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["created_by"] == "operator-user" and body["active"] is True
    assert body["matchers"] == [{"name": "cluster", "value": "alpha"}]
    stored = Silence.objects.get(pk=body["id"])
    assert stored.created_by is not None and stored.created_by.username == "operator-user"
    assert stored.comment == "kernel upgrade"
    assert abs(stored.starts_at - timezone.now()) < timedelta(minutes=1)


def test_created_by_cannot_be_forged(api: APIClient, make_user: Callable[..., Any]) -> None:
    make_user("viewer")
    response = api.post("/api/v1/silences/", silence(created_by="viewer-user"), format="json")
    assert response.status_code == 201
    assert response.json()["created_by"] == "admin-user"


@pytest.mark.parametrize(
    ("payload", "field", "fragment"),
    [
        pytest.param(silence(matchers=[]), "matchers", "at least one", id="no-matchers"),
        pytest.param(silence(matchers="cluster=alpha"), "matchers", "list", id="not-a-list"),
        pytest.param(
            silence(matchers=[{"name": "node", "value": "n1"}]),
            "matchers",
            "unknown name 'node'",
            id="unknown-matcher-name",
        ),
        pytest.param(
            silence(matchers=[{"name": "label", "value": "prod"}]),
            "matchers",
            "key=value",
            id="label-without-equals",
        ),
        pytest.param(
            silence(matchers=[{"name": "cluster", "value": ""}]),
            "matchers",
            "non-empty",
            id="empty-value",
        ),
        pytest.param(
            silence(starts_at=iso(timedelta(hours=3)), ends_at=iso(timedelta(hours=1))),
            "ends_at",
            "end after it starts",
            id="ends-before-it-starts",
        ),
        pytest.param(silence(ends_at="next week"), "ends_at", "format", id="ends-not-a-date"),
        pytest.param(
            {"matchers": [{"name": "cluster", "value": "a"}]}, "ends_at", "required", id="no-end"
        ),
    ],
)
def test_bad_silence_is_400_naming_the_field(
    api: APIClient, payload: dict[str, Any], field: str, fragment: str
) -> None:
    response = api.post("/api/v1/silences/", payload, format="json")
    assert response.status_code == 400, response.content
    messages = error_at(response.json(), (field,))
    assert any(fragment in m for m in messages), messages
    assert not Silence.objects.exists()


def test_patch_a_silence(api: APIClient, windows: dict[str, Silence]) -> None:
    path = f"/api/v1/silences/{windows['active'].pk}/"
    response = api.patch(
        path, {"comment": "longer", "ends_at": iso(timedelta(hours=5))}, format="json"
    )
    assert response.status_code == 200, response.content
    assert Silence.objects.get(pk=windows["active"].pk).comment == "longer"

    bad = api.patch(path, {"ends_at": iso(-timedelta(days=1))}, format="json")
    assert bad.status_code == 400
    error_at(bad.json(), ("ends_at",))
    assert Silence.objects.get(pk=windows["active"].pk).ends_at > timezone.now()

    bad = api.patch(path, {"matchers": [{"name": "cluster"}]}, format="json")
    assert bad.status_code == 400
    error_at(bad.json(), ("matchers",))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", {"active", "pending", "ended"}),
        ("?active=true", {"active"}),
        ("?active=false", {"pending", "ended"}),
    ],
)
def test_active_filter(
    api: APIClient, windows: dict[str, Silence], query: str, expected: set[str]
) -> None:
    ids = {s.pk: name for name, s in windows.items()}
    results = api.get(f"/api/v1/silences/{query}").json()["results"]
    assert {ids[r["id"]] for r in results} == expected
    assert all(r["active"] == (ids[r["id"]] == "active") for r in results)


def test_expire_an_active_silence(
    client_for: Callable[[str], APIClient], windows: dict[str, Silence]
) -> None:
    client = client_for("operator")
    path = f"/api/v1/silences/{windows['active'].pk}/expire/"
    response = client.post(path)
    assert response.status_code == 200, response.content
    assert response.json()["active"] is False
    ended = parse_datetime(response.json()["ends_at"])
    assert ended is not None and abs(ended - timezone.now()) < timedelta(minutes=1)
    stored = Silence.objects.get(pk=windows["active"].pk)
    assert stored.ends_at <= timezone.now() and not stored.is_active

    again = client.post(path)
    assert again.status_code == 409
    assert "already ended" in again.json()["detail"]


def test_expire_a_pending_silence_means_it_never_starts(
    api: APIClient, windows: dict[str, Silence]
) -> None:
    response = api.post(f"/api/v1/silences/{windows['pending'].pk}/expire/")
    assert response.status_code == 200
    stored = Silence.objects.get(pk=windows["pending"].pk)
    assert stored.starts_at == stored.ends_at <= timezone.now()


def test_silence_delete(
    client_for: Callable[[str], APIClient], windows: dict[str, Silence]
) -> None:
    response = client_for("operator").delete(f"/api/v1/silences/{windows['ended'].pk}/")
    assert response.status_code == 204
    assert not Silence.objects.filter(pk=windows["ended"].pk).exists()


def test_viewer_reads_but_cannot_change_silences(
    client_for: Callable[[str], APIClient], windows: dict[str, Silence]
) -> None:
    client = client_for("viewer")
    assert client.get("/api/v1/silences/").json()["count"] == 3
    pk = windows["active"].pk
    assert client.post("/api/v1/silences/", silence(), format="json").status_code == 403
    assert (
        client.patch(f"/api/v1/silences/{pk}/", {"comment": "x"}, format="json").status_code == 403
    )
    assert client.post(f"/api/v1/silences/{pk}/expire/").status_code == 403
    assert client.delete(f"/api/v1/silences/{pk}/").status_code == 403
    assert Silence.objects.count() == 3 and Silence.objects.get(pk=pk).is_active


def test_anonymous_is_refused_silences(windows: dict[str, Silence]) -> None:
    client = APIClient()
    pk = windows["active"].pk
    for response in (
        client.get("/api/v1/silences/"),
        client.post("/api/v1/silences/", silence(), format="json"),
        client.post(f"/api/v1/silences/{pk}/expire/"),
        client.delete(f"/api/v1/silences/{pk}/"),
    ):
        assert response.status_code == 401
    assert Silence.objects.get(pk=pk).is_active


# ------------------------------------------------------------------ alert rules


def rule(**fields: Any) -> dict[str, Any]:
    return {"name": "etcd-strict", "consecutive_failures": 1, **fields}


def test_default_rule_is_listed(api: APIClient) -> None:
    body = api.get("/api/v1/alert-rules/").json()
    [default] = body["results"]
    assert default["name"] == "default" and default["scope"] == "default"
    assert default["consecutive_failures"] == 2 and default["stale_factor"] == 3.0
    assert default["case"] is None and default["depends_on"] == []


def test_create_a_scoped_rule_by_names(api: APIClient, world: dict[str, Any]) -> None:
    payload = rule(
        case="kase",
        severity="warning",
        depends_on=["kase"],
        escalate_to="critical",
        escalate_after_minutes=30,
    )
    response = api.post("/api/v1/alert-rules/", payload, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["case"] == "kase" and body["scope"] == "case kase"
    assert body["depends_on"] == ["kase"]
    stored = AlertRule.objects.get(name="etcd-strict")
    assert stored.case == world["case"] and list(stored.depends_on.all()) == [world["case"]]

    moved = api.patch(
        "/api/v1/alert-rules/etcd-strict/", {"case": None, "cluster": "alpha"}, format="json"
    )
    assert moved.status_code == 200, moved.content
    assert moved.json()["scope"] == "cluster alpha"
    assert api.get("/api/v1/alert-rules/?cluster=alpha").json()["count"] == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        pytest.param(rule(case="nope"), "case", id="unknown-case"),
        pytest.param(rule(cluster="nope"), "cluster", id="unknown-cluster"),
        pytest.param(rule(group="nope"), "group", id="unknown-group"),
        pytest.param(rule(binding="nope"), "binding", id="unknown-binding"),
        pytest.param(rule(depends_on=["nope"]), "depends_on", id="unknown-dependency"),
        pytest.param(rule(case="kase", cluster="alpha"), "cluster", id="two-scopes"),
        pytest.param(rule(consecutive_failures=None), "consecutive_failures", id="no-condition"),
        pytest.param(rule(consecutive_failures=0), "consecutive_failures", id="zero-failures"),
        pytest.param(rule(success_rate_below=90), "window_runs", id="rate-without-window"),
        pytest.param(rule(window_runs=10), "success_rate_below", id="window-without-rate"),
        pytest.param(
            rule(success_rate_below=90, window_runs=10, window_minutes=5),
            "window_minutes",
            id="two-windows",
        ),
        pytest.param(
            rule(severity="critical", escalate_to="warning", escalate_after_minutes=5),
            "escalate_to",
            id="escalation-lowers",
        ),
        pytest.param(rule(escalate_to="critical"), "escalate_after_minutes", id="no-delay"),
        pytest.param(rule(step_name="create"), "step_latency_ms", id="step-without-limit"),
        pytest.param(rule(severity="urgent"), "severity", id="unknown-severity"),
        pytest.param(rule(name="Not A Slug"), "name", id="bad-name"),
        pytest.param(rule(name="default"), "name", id="duplicate-name"),
    ],
)
def test_bad_rule_is_400_naming_the_field(
    api: APIClient, world: dict[str, Any], payload: dict[str, Any], field: str
) -> None:
    response = api.post("/api/v1/alert-rules/", payload, format="json")
    assert response.status_code == 400, response.content
    error_at(response.json(), (field,))
    assert AlertRule.objects.count() == 1


def test_default_rule_can_be_edited_not_renamed_scoped_or_deleted(
    api: APIClient, world: dict[str, Any]
) -> None:
    path = "/api/v1/alert-rules/default/"
    edited = api.patch(path, {"consecutive_failures": 3, "severity": "critical"}, format="json")
    assert edited.status_code == 200, edited.content
    assert AlertRule.objects.get(name="default").consecutive_failures == 3

    renamed = api.patch(path, {"name": "fallback"}, format="json")
    assert renamed.status_code == 400
    assert "keeps its name" in error_at(renamed.json(), ("name",))[0]

    scoped = api.patch(path, {"cluster": "alpha"}, format="json")
    assert scoped.status_code == 400
    assert "no scope" in error_at(scoped.json(), ("cluster",))[0]

    deleted = api.delete(path)
    assert deleted.status_code == 409
    assert "default rule cannot be deleted" in deleted.json()["detail"]
    assert AlertRule.objects.filter(name="default", cluster=None).exists()


def test_other_rules_can_be_deleted(api: APIClient, world: dict[str, Any]) -> None:
    assert api.post("/api/v1/alert-rules/", rule(), format="json").status_code == 201
    assert api.delete("/api/v1/alert-rules/etcd-strict/").status_code == 204
    assert not AlertRule.objects.filter(name="etcd-strict").exists()


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_only_admins_write_rules(
    client_for: Callable[[str], APIClient], world: dict[str, Any], role: str
) -> None:
    client = client_for(role)
    assert client.get("/api/v1/alert-rules/default/").status_code == 200
    assert client.post("/api/v1/alert-rules/", rule(), format="json").status_code == 403
    patch = client.patch("/api/v1/alert-rules/default/", {"severity": "info"}, format="json")
    assert patch.status_code == 403
    assert client.delete("/api/v1/alert-rules/default/").status_code == 403
    assert AlertRule.objects.get(name="default").severity == "warning"


def test_anonymous_is_refused_rules(db: None) -> None:
    client = APIClient()
    assert client.get("/api/v1/alert-rules/").status_code == 401
    assert client.post("/api/v1/alert-rules/", rule(), format="json").status_code == 401
