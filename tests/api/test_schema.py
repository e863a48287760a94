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


@pytest.mark.django_db
def test_every_authenticated_operation_declares_its_errors(tmp_path: Path) -> None:
    out = tmp_path / "schema.yml"
    call_command("spectacular", "--fail-on-warn", "--validate", "--file", str(out))
    doc = yaml.safe_load(out.read_text())
    checked = 0
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if not operation.get("security"):
                continue  # the probes' report endpoints declare their own answers
            responses = operation["responses"]
            wanted = {"400", "401", "403"}
            if "{" in path:
                wanted.add("404")
            if method == "delete":
                wanted.add("409")
            assert wanted <= set(responses), (method, path, sorted(responses))
            for code in wanted:
                assert "application/json" in responses[code]["content"], (method, path, code)
            checked += 1
    assert checked > 50
    assert "409" in doc["paths"]["/api/v1/alerts/{id}/acknowledge/"]["post"]["responses"]
    assert set(doc["paths"]["/api/v1/runs/{run_id}/report"]["post"]["responses"]) >= {
        "200",
        "401",
        "410",
    }


@pytest.mark.django_db
def test_fields_that_can_be_null_say_so(tmp_path: Path) -> None:
    out = tmp_path / "schema.yml"
    call_command("spectacular", "--file", str(out))
    schemas = yaml.safe_load(out.read_text())["components"]["schemas"]
    nullable = {
        "ProbeRun": ["binding"],
        "Alert": ["rule", "last_run", "latest_run", "ack_by"],
        "AlertTimeline": ["user"],
        "Silence": ["created_by"],
    }
    for component, fields in nullable.items():
        for field in fields:
            assert schemas[component]["properties"][field].get("nullable") is True, (
                component,
                field,
            )
    assert not schemas["ProbeRun"]["properties"]["case"].get("nullable")
    # Read-only model fields, whatever the serializer says: DRF drops allow_null and
    # allow_blank from them, the schema class adds back what the column holds.
    assert schemas["GateDecision"]["properties"]["check"].get("nullable") is True
    assert schemas["ProbeRun"]["properties"]["ok"].get("nullable") is True
    root_cause = schemas["Alert"]["properties"]["root_cause"]
    assert {"$ref": "#/components/schemas/BlankEnum"} in root_cause["oneOf"], root_cause
