"""The OpenAPI schema builds cleanly and the docs are served without a CDN."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.contrib.staticfiles import finders
from django.core.management import call_command
from rest_framework.test import APIClient

CDN_HOSTS = ("cdn.jsdelivr.net", "unpkg.com", "cdnjs.cloudflare.com", "fonts.googleapis.com")
RESOURCES = ("clusters", "cluster-groups", "templates", "cases", "case-sets", "bindings")


@pytest.mark.django_db
def test_spectacular_builds_without_warnings(tmp_path: Path) -> None:
    out = tmp_path / "schema.yml"

    call_command("spectacular", "--fail-on-warn", "--validate", "--file", str(out))

    text = out.read_text()
    assert "/api/v1/clusters/" in text
    paths = yaml.safe_load(text)["paths"]
    for resource in RESOURCES:
        assert f"/api/v1/{resource}/" in paths
        assert f"/api/v1/{resource}/{{name}}/" in paths
    assert "/api/v1/cluster-groups/{name}/resolve/" in paths
    # POST on the collection requests runs by hand; stored runs never change.
    assert set(paths["/api/v1/runs/"]) == {"get", "post"}
    assert set(paths["/api/v1/runs/{id}/"]) == {"get"}
    assert set(paths["/api/v1/runs/{run_id}/report"]) == {"post"}
    assert set(paths["/api/v1/kuberhealthy/check"]) == {"post"}
    assert set(paths["/check"]) == {"post"}
    assert "/api/v1/events/" in paths


@pytest.mark.django_db
def test_schema_marks_kubeconfig_write_only(tmp_path: Path) -> None:
    out = tmp_path / "schema.yml"
    call_command("spectacular", "--file", str(out))
    schemas = yaml.safe_load(out.read_text())["components"]["schemas"]
    assert "kubeconfig" not in schemas["Cluster"]["properties"]
    assert "kubeconfig" in schemas["ClusterRequest"]["properties"]
    assert "apiToken" in yaml.safe_load(out.read_text())["components"]["securitySchemes"]


@pytest.mark.django_db
def test_schema_endpoint(api_client_for: Callable[[str], APIClient]) -> None:
    response = api_client_for("viewer").get("/api/schema/")
    assert response.status_code == 200
    assert b"/api/v1/clusters/" in response.content
    assert b"openapi:" in response.content


@pytest.fixture
def plain_static_storage(settings: Any) -> None:
    """Tests never run collectstatic, so the production manifest storage has no
    manifest to resolve {% static %} against; use the plain storage instead."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.mark.django_db
@pytest.mark.usefixtures("plain_static_storage")
def test_swagger_ui_is_served_from_the_sidecar(api_client_for: Callable[[str], APIClient]) -> None:
    response = api_client_for("viewer").get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html.lower()
    for host in CDN_HOSTS:
        assert host not in html
    scripts = re.findall(r'<script[^>]+src="([^"]+)"', html)
    assert scripts, html[:500]
    assert all(src.startswith("/static/") for src in scripts), scripts
    assert any("drf_spectacular_sidecar" in src for src in scripts), scripts
    # ...and the vendored files exist where those URLs point.
    for src in scripts:
        assert finders.find(src.removeprefix("/static/")), src


@pytest.mark.django_db
def test_schema_has_the_alerts_endpoints(tmp_path: Path) -> None:
    out = tmp_path / "schema.yml"
    call_command("spectacular", "--fail-on-warn", "--validate", "--file", str(out))
    doc = yaml.safe_load(out.read_text())
    paths = doc["paths"]
    assert set(paths["/api/v1/alerts/"]) == {"get"}
    assert set(paths["/api/v1/alerts/{id}/"]) == {"get"}
    assert set(paths["/api/v1/alerts/{id}/timeline/"]) == {"get"}
    for action in ("acknowledge", "resolve"):
        assert set(paths[f"/api/v1/alerts/{{id}}/{action}/"]) == {"post"}
    assert "/api/v1/silences/{id}/expire/" in paths
    assert "/api/v1/alert-rules/{name}/" in paths
    assert set(paths["/api/v1/channels/kinds/"]) == {"get"}
    assert set(paths["/api/v1/channels/{name}/test/"]) == {"post"}
    schemas = doc["components"]["schemas"]
    # The config is free-form JSON in both directions; the transport validates it.
    assert schemas["Channel"]["properties"]["config"]["type"] == "object"
    assert "timeline" not in schemas["Alert"].get("required", [])
