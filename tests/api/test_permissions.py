"""Who may do what on /api/v1/: roles, anonymous callers and API tokens."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from apps.core.models import ApiToken
from apps.scheduling.models import Binding
from tests.api.conftest import row_counts
from tests.factories import ProbeRunFactory, make_kubeconfig

pytestmark = pytest.mark.django_db

# (list url, detail url, a valid create payload, a valid patch payload)
ENDPOINTS: dict[str, tuple[str, str, dict[str, Any], dict[str, Any]]] = {
    "clusters": (
        "/api/v1/clusters/",
        "/api/v1/clusters/alpha/",
        {"name": "new", "kubeconfig": make_kubeconfig()},
        {"description": "changed"},
    ),
    "cluster-groups": (
        "/api/v1/cluster-groups/",
        "/api/v1/cluster-groups/grp/",
        {"name": "new", "members": ["alpha"]},
        {"description": "changed"},
    ),
    "templates": (
        "/api/v1/templates/",
        "/api/v1/templates/tmpl/",
        {"name": "new", "image": "x:1"},
        {"description": "changed"},
    ),
    "cases": (
        "/api/v1/cases/",
        "/api/v1/cases/kase/",
        {"name": "new", "template": "tmpl"},
        {"description": "changed"},
    ),
    "case-sets": (
        "/api/v1/case-sets/",
        "/api/v1/case-sets/kset/",
        {"name": "new", "cases": ["kase"]},
        {"description": "changed"},
    ),
    "bindings": (
        "/api/v1/bindings/",
        "/api/v1/bindings/bind/",
        {"name": "new", "clusters": ["alpha"], "cases": ["kase"], "interval_seconds": 60},
        {"description": "changed"},
    ),
    "runs": ("/api/v1/runs/", "/api/v1/runs/{run}/", {}, {"state": "failed"}),
}


@pytest.fixture
def objects(world: dict[str, Any]) -> dict[str, Any]:
    run = ProbeRunFactory(case=world["case"], cluster=world["cluster"])
    return {**world, "run": run}


def urls(endpoint: str, objects: dict[str, Any]) -> tuple[str, str]:
    list_url, detail_url, _, _ = ENDPOINTS[endpoint]
    return list_url, detail_url.format(run=objects["run"].pk)


@pytest.mark.parametrize("role", ["viewer", "operator", "admin"])
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_every_role_can_read(
    client_for: Callable[[str], APIClient], objects: dict[str, Any], role: str, endpoint: str
) -> None:
    client = client_for(role)
    list_url, detail_url = urls(endpoint, objects)
    listed = client.get(list_url)
    assert listed.status_code == 200
    assert listed.json()["count"] == 1
    assert client.get(detail_url).status_code == 200


def test_viewer_can_resolve_a_group(
    client_for: Callable[[str], APIClient], objects: dict[str, Any]
) -> None:
    response = client_for("viewer").get("/api/v1/cluster-groups/grp/resolve/")
    assert response.status_code == 200
    assert response.json()["clusters"] == ["alpha"]


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_viewer_cannot_write(
    client_for: Callable[[str], APIClient], objects: dict[str, Any], endpoint: str
) -> None:
    client = client_for("viewer")
    list_url, detail_url = urls(endpoint, objects)
    _, _, create, patch = ENDPOINTS[endpoint]
    before = row_counts()
    detail_before = client.get(detail_url).json()

    assert client.post(list_url, create, format="json").status_code == 403
    assert client.put(detail_url, {**detail_before, **patch}, format="json").status_code == 403
    assert client.patch(detail_url, patch, format="json").status_code == 403
    assert client.delete(detail_url).status_code == 403

    assert row_counts() == before
    assert client.get(detail_url).json() == detail_before


@pytest.mark.parametrize(
    "endpoint", ["clusters", "cluster-groups", "templates", "cases", "case-sets"]
)
def test_operator_cannot_write_inventory(
    client_for: Callable[[str], APIClient], objects: dict[str, Any], endpoint: str
) -> None:
    client = client_for("operator")
    list_url, detail_url = urls(endpoint, objects)
    _, _, create, patch = ENDPOINTS[endpoint]
    before = row_counts()

    assert client.post(list_url, create, format="json").status_code == 403
    assert client.patch(detail_url, patch, format="json").status_code == 403
    assert client.delete(detail_url).status_code == 403
    assert row_counts() == before


def test_operator_manages_bindings(
    client_for: Callable[[str], APIClient], objects: dict[str, Any]
) -> None:
    client = client_for("operator")
    _, _, create, _ = ENDPOINTS["bindings"]

    created = client.post("/api/v1/bindings/", create, format="json")
    assert created.status_code == 201, created.content
    changed = client.patch(
        "/api/v1/bindings/new/", {"cron": "@hourly", "interval_seconds": None}, format="json"
    )
    assert changed.status_code == 200, changed.content
    assert Binding.objects.get(name="new").cron == "@hourly"
    assert client.delete("/api/v1/bindings/new/").status_code == 204
    assert not Binding.objects.filter(name="new").exists()


def test_admin_can_write_inventory(api: APIClient, objects: dict[str, Any]) -> None:
    for endpoint in ("clusters", "cluster-groups", "templates", "cases", "case-sets"):
        list_url, _, create, _ = ENDPOINTS[endpoint]
        response = api.post(list_url, create, format="json")
        assert response.status_code == 201, (endpoint, response.content)


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_anonymous_is_refused(objects: dict[str, Any], endpoint: str) -> None:
    client = APIClient()
    list_url, detail_url = urls(endpoint, objects)
    _, _, create, _ = ENDPOINTS[endpoint]
    before = row_counts()

    for response in (
        client.get(list_url),
        client.get(detail_url),
        client.post(list_url, create, format="json"),
        client.delete(detail_url),
    ):
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")
    assert row_counts() == before


def test_user_without_role_gets_403(objects: dict[str, Any]) -> None:
    client = APIClient()
    client.force_authenticate(User.objects.create_user("nobody", password="pw-For-tests-1"))
    assert client.get("/api/v1/clusters/").status_code == 403


def issue_token(user: User, **fields: Any) -> tuple[ApiToken, str]:
    token = ApiToken(user=user, name="release-platform", **fields)
    raw = token.issue()
    token.save()
    return token, raw


@pytest.mark.parametrize("keyword", ["Bearer", "Token", "bearer"])
def test_api_token_authenticates(
    make_user: Callable[..., User], objects: dict[str, Any], keyword: str
) -> None:
    token, raw = issue_token(make_user("viewer"))
    client = APIClient()

    response = client.get("/api/v1/clusters/", HTTP_AUTHORIZATION=f"{keyword} {raw}")

    assert response.status_code == 200
    assert [c["name"] for c in response.json()["results"]] == ["alpha"]
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_api_token_carries_its_users_role(
    make_user: Callable[..., User], objects: dict[str, Any]
) -> None:
    _, viewer_raw = issue_token(make_user("viewer"))
    _, operator_raw = issue_token(make_user("operator"))
    _, _, create, _ = ENDPOINTS["bindings"]
    client = APIClient()

    refused = client.post(
        "/api/v1/bindings/", create, format="json", HTTP_AUTHORIZATION=f"Bearer {viewer_raw}"
    )
    assert refused.status_code == 403
    accepted = client.post(
        "/api/v1/bindings/", create, format="json", HTTP_AUTHORIZATION=f"Bearer {operator_raw}"
    )
    assert accepted.status_code == 201, accepted.content


@pytest.mark.parametrize(
    "state",
    [
        pytest.param({"revoked_at": timezone.now() - timedelta(minutes=1)}, id="revoked"),
        pytest.param({"expires_at": timezone.now() - timedelta(seconds=1)}, id="expired"),
    ],
)
def test_inactive_token_is_401(
    make_user: Callable[..., User], objects: dict[str, Any], state: dict[str, Any]
) -> None:
    token, raw = issue_token(make_user("admin"))
    ApiToken.objects.filter(pk=token.pk).update(**state)

    response = APIClient().get("/api/v1/clusters/", HTTP_AUTHORIZATION=f"Bearer {raw}")

    assert response.status_code == 401


def test_token_that_expires_later_works(
    make_user: Callable[..., User], objects: dict[str, Any]
) -> None:
    _, raw = issue_token(make_user("viewer"), expires_at=timezone.now() + timedelta(hours=1))
    response = APIClient().get("/api/v1/clusters/", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("Bearer kp_not-a-real-token", id="unknown-token"),
        pytest.param("Bearer {raw}x", id="tampered-token"),
    ],
)
def test_unknown_token_is_401(
    make_user: Callable[..., User], objects: dict[str, Any], header: str
) -> None:
    _, raw = issue_token(make_user("admin"))
    response = APIClient().get("/api/v1/clusters/", HTTP_AUTHORIZATION=header.format(raw=raw))
    assert response.status_code == 401


def test_token_of_inactive_user_is_401(
    make_user: Callable[..., User], objects: dict[str, Any]
) -> None:
    user = make_user("admin")
    _, raw = issue_token(user)
    User.objects.filter(pk=user.pk).update(is_active=False)
    response = APIClient().get("/api/v1/clusters/", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 401


def test_only_the_token_hash_is_stored(make_user: Callable[..., User]) -> None:
    token, raw = issue_token(make_user("viewer"))
    stored = ApiToken.objects.get(pk=token.pk)
    assert raw not in (stored.key_hash, stored.prefix, stored.name)
    assert raw.startswith(stored.prefix)
