from __future__ import annotations

import pytest
from django.test import Client

from apps.core import views


@pytest.mark.django_db
def test_healthz_ok_with_database_and_redis(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


@pytest.mark.django_db
def test_healthz_names_redis_when_it_is_down(client: Client, settings, monkeypatch) -> None:
    # A port where nothing listens: a real connection refusal, not a mock.
    monkeypatch.setattr(views, "_redis", None)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    try:
        response = client.get("/healthz")
    finally:
        views._redis = None
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["redis"]
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("error: ")


def test_livez_answers_without_touching_dependencies(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/livez")
    assert response.status_code == 200 and response.content == b"ok"
