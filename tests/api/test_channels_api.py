"""/api/v1/channels: config validated by the transport, secrets never shown, masked values
kept on PATCH, the kinds listing and a real "send test"."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from apps.alerts import channels
from apps.alerts.models import Channel, Notification
from tests.alerts.transports.helpers import Receiver
from tests.api.test_validation import error_at

pytestmark = pytest.mark.django_db

SECRET = "hmac-key-7f3a9c"
AUTH = "Bearer hdr-token-51be"
QUERY_TOKEN = "qtok-2d8e"
MASK = "••••"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


def webhook(receiver: Receiver, **fields: Any) -> dict[str, Any]:
    return {
        "name": "ops-hook",
        "kind": "webhook",
        "config": {
            "url": receiver.url(f"/hook?token={QUERY_TOKEN}"),
            "secret": SECRET,
            "headers": {"Authorization": AUTH},
        },
        "severities": ["critical"],
        **fields,
    }


def assert_no_secret(content: bytes) -> None:
    for secret in (SECRET, AUTH, QUERY_TOKEN):
        assert secret.encode() not in content, secret


@pytest.fixture
def hook(api: APIClient, receiver: Receiver) -> dict[str, Any]:
    response = api.post("/api/v1/channels/", webhook(receiver), format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_create_answers_with_the_config_redacted(hook: dict[str, Any], receiver: Receiver) -> None:
    assert hook["name"] == "ops-hook" and hook["kind"] == "webhook"
    assert hook["config"]["secret"] == MASK
    assert hook["config"]["headers"] == {"Authorization": MASK}
    assert hook["config"]["url"] == receiver.url(f"/hook?token={MASK}")
    assert hook["config"]["method"] == "POST"  # defaults filled in by the transport
    assert hook["severities"] == ["critical"] and hook["enabled"] is True
    assert_no_secret(json.dumps(hook).encode())


def test_secrets_are_never_returned_and_stored_encrypted(
    api: APIClient, hook: dict[str, Any]
) -> None:
    for path in ("/api/v1/channels/", "/api/v1/channels/ops-hook/", "/api/v1/channels/kinds/"):
        response = api.get(path)
        assert response.status_code == 200
        assert_no_secret(response.content)
    stored = json.loads(Channel.objects.get(name="ops-hook").config_json)
    assert stored["secret"] == SECRET and stored["headers"] == {"Authorization": AUTH}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT config_json FROM {Channel._meta.db_table} WHERE name = %s",  # noqa: S608
            ["ops-hook"],
        )
        raw = cursor.fetchone()[0]
    assert_no_secret(raw.encode())


def test_patch_with_the_masked_config_keeps_the_secrets(
    api: APIClient, hook: dict[str, Any], receiver: Receiver
) -> None:
    # A client echoes the config it was shown, changing only the method.
    shown = api.get("/api/v1/channels/ops-hook/").json()["config"]
    response = api.patch(
        "/api/v1/channels/ops-hook/", {"config": {**shown, "method": "PUT"}}, format="json"
    )
    assert response.status_code == 200, response.content
    assert_no_secret(response.content)
    stored = json.loads(Channel.objects.get(name="ops-hook").config_json)
    assert stored["secret"] == SECRET
    assert stored["headers"] == {"Authorization": AUTH}
    assert stored["url"] == receiver.url(f"/hook?token={QUERY_TOKEN}")
    assert stored["method"] == "PUT"

    # ...and the receiver gets the real ones.
    sent = api.post("/api/v1/channels/ops-hook/test/")
    assert sent.json()["status"] == "sent", sent.content
    request = receiver.last
    assert request.method == "PUT" and request.query == {"token": [QUERY_TOKEN]}
    assert request.headers["authorization"] == AUTH
    expected = "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-kubeprobe-signature"] == expected


def test_patch_replaces_a_secret_and_adds_a_header(api: APIClient, hook: dict[str, Any]) -> None:
    response = api.patch(
        "/api/v1/channels/ops-hook/",
        {"config": {"secret": "new-key", "headers": {"Authorization": MASK, "X-Team": "core"}}},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["config"]["headers"] == {"Authorization": MASK, "X-Team": MASK}
    stored = json.loads(Channel.objects.get(name="ops-hook").config_json)
    assert stored["secret"] == "new-key"
    assert stored["headers"] == {"Authorization": AUTH, "X-Team": "core"}


def test_patch_without_config_keeps_it(api: APIClient, hook: dict[str, Any]) -> None:
    before = Channel.objects.get(name="ops-hook").config_json
    response = api.patch(
        "/api/v1/channels/ops-hook/",
        {"enabled": False, "matchers": [{"name": "cluster", "value": "prod-1"}]},
        format="json",
    )
    assert response.status_code == 200, response.content
    channel = Channel.objects.get(name="ops-hook")
    assert json.loads(channel.config_json) == json.loads(before)
    assert channel.enabled is False and channel.matchers == [{"name": "cluster", "value": "prod-1"}]


def test_changing_kind_needs_a_new_config(api: APIClient, hook: dict[str, Any]) -> None:
    response = api.patch("/api/v1/channels/ops-hook/", {"kind": "slack"}, format="json")
    assert response.status_code == 400
    error_at(response.json(), ("config", "url"))
    response = api.patch(
        "/api/v1/channels/ops-hook/",
        {"kind": "slack", "config": {"url": "https://hooks.slack.com/services/T/B/X"}},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["config"] == {"url": MASK}
    stored = json.loads(Channel.objects.get(name="ops-hook").config_json)
    assert stored == {"url": "https://hooks.slack.com/services/T/B/X"}


@pytest.mark.parametrize(
    ("payload", "path"),
    [
        pytest.param({"kind": "pigeon", "config": {}}, ("kind",), id="unknown-kind"),
        pytest.param({"config": {"url": "ftp://x/"}}, ("config", "url"), id="bad-url"),
        pytest.param({"config": {}}, ("config", "url"), id="missing-url"),
        pytest.param(
            {"config": {"url": "http://h/", "bogus": 1}}, ("config", "bogus"), id="unknown-field"
        ),
        pytest.param(
            {"config": {"url": "http://h/", "method": "GET"}}, ("config", "method"), id="bad-method"
        ),
        pytest.param(
            {"config": {"url": "http://h/", "headers": {"Bad Name": "x"}}},
            ("config", "headers"),
            id="bad-header",
        ),
        pytest.param({"config": ["http://h/"]}, ("config",), id="config-not-an-object"),
        pytest.param(
            {"kind": "email", "config": {"to": ["not-an-address"], "host": "smtp.example.com"}},
            ("config", "to", "0"),
            id="email-bad-recipient",
        ),
        pytest.param({"severities": ["urgent"]}, ("severities", "0"), id="unknown-severity"),
        pytest.param(
            {"matchers": [{"name": "node", "value": "n"}]}, ("matchers",), id="bad-matcher"
        ),
        pytest.param({"name": "kinds"}, ("name",), id="reserved-name"),
        pytest.param({"name": "Not A Slug"}, ("name",), id="bad-name"),
        pytest.param({"kind": ""}, ("kind",), id="empty-kind"),
    ],
)
def test_bad_channel_is_400_naming_the_field(
    api: APIClient, payload: dict[str, Any], path: tuple[str, ...]
) -> None:
    body = {"name": "new-hook", "kind": "webhook", "config": {"url": "http://h/"}, **payload}
    response = api.post("/api/v1/channels/", body, format="json")
    assert response.status_code == 400, response.content
    error_at(response.json(), path)
    assert not Channel.objects.exists()


def test_duplicate_name_is_400(api: APIClient, hook: dict[str, Any], receiver: Receiver) -> None:
    response = api.post("/api/v1/channels/", webhook(receiver), format="json")
    assert response.status_code == 400
    error_at(response.json(), ("name",))
    assert Channel.objects.count() == 1


def test_bad_patch_changes_nothing(api: APIClient, hook: dict[str, Any]) -> None:
    before = Channel.objects.get(name="ops-hook").config_json
    response = api.patch(
        "/api/v1/channels/ops-hook/", {"config": {"url": "nope"}, "enabled": False}, format="json"
    )
    assert response.status_code == 400
    error_at(response.json(), ("config", "url"))
    channel = Channel.objects.get(name="ops-hook")
    assert channel.config_json == before and channel.enabled is True


def test_kinds_listing(client_for: Callable[[str], APIClient]) -> None:
    response = client_for("operator").get("/api/v1/channels/kinds/")
    assert response.status_code == 200
    kinds = {k["kind"]: k for k in response.json()}
    assert {"webhook", "slack", "email", "pagerduty", "alertmanager", "dingtalk"} <= set(kinds)
    fields = {f["name"]: f for f in kinds["webhook"]["fields"]}
    assert kinds["webhook"]["label"] == "Generic webhook"
    assert fields["url"]["required"] is True and fields["url"]["type"] == "url"
    assert fields["url"]["secret"] is False
    assert fields["secret"]["secret"] is True and fields["secret"]["required"] is False
    assert fields["method"]["type"] == "choice" and fields["method"]["choices"] == ["POST", "PUT"]
    assert fields["method"]["default"] == "POST"
    assert fields["headers"]["type"] == "map" and fields["headers"]["secret"] is True
    email = {f["name"]: f for f in kinds["email"]["fields"]}
    assert email["to"]["type"] == "list" and email["password"]["secret"] is True
    assert email["port"]["type"] == "integer"


def test_send_test_to_a_real_receiver(
    api: APIClient, hook: dict[str, Any], receiver: Receiver
) -> None:
    response = api.post("/api/v1/channels/ops-hook/test/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "sent" and body["error"] == ""
    assert body["duration_ms"] is not None and body["channel_enabled"] is True
    assert Notification.objects.get(pk=body["notification"]).status == "sent"
    assert receiver.last.json()["event"] == "test"
    assert receiver.last.path == "/hook"


def test_send_test_refused_for_good_disables_the_channel(
    api: APIClient, hook: dict[str, Any], receiver: Receiver
) -> None:
    receiver.respond(404, "no such hook")
    body = api.post("/api/v1/channels/ops-hook/test/").json()
    assert body["status"] == "failed" and "HTTP 404" in body["error"]
    assert body["channel_enabled"] is False
    assert_no_secret(json.dumps(body).encode())
    shown = api.get("/api/v1/channels/ops-hook/").json()
    assert shown["enabled"] is False and "HTTP 404" in shown["disabled_reason"]
    # Enabling it again clears the reason.
    again = api.patch("/api/v1/channels/ops-hook/", {"enabled": True}, format="json").json()
    assert again["enabled"] is True and again["disabled_reason"] == ""


def test_delete_a_channel(api: APIClient, hook: dict[str, Any]) -> None:
    assert api.delete("/api/v1/channels/ops-hook/").status_code == 204
    assert not Channel.objects.exists()


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_only_admins_manage_channels(
    client_for: Callable[[str], APIClient], receiver: Receiver, role: str
) -> None:
    channels.channel_save(name="ops-hook", kind="webhook", config={"url": receiver.url()})
    client = client_for(role)
    assert client.get("/api/v1/channels/").json()["count"] == 1
    assert client.get("/api/v1/channels/kinds/").status_code == 200
    assert (
        client.post("/api/v1/channels/", webhook(receiver, name="x"), format="json").status_code
        == 403
    )
    assert (
        client.patch("/api/v1/channels/ops-hook/", {"enabled": False}, format="json").status_code
        == 403
    )
    assert client.post("/api/v1/channels/ops-hook/test/").status_code == 403
    assert client.delete("/api/v1/channels/ops-hook/").status_code == 403
    assert receiver.requests == []
    assert Channel.objects.get(name="ops-hook").enabled is True


def test_anonymous_is_refused_channels(receiver: Receiver) -> None:
    channels.channel_save(name="ops-hook", kind="webhook", config={"url": receiver.url()})
    client = APIClient()
    for response in (
        client.get("/api/v1/channels/"),
        client.get("/api/v1/channels/kinds/"),
        client.post("/api/v1/channels/ops-hook/test/"),
        client.delete("/api/v1/channels/ops-hook/"),
    ):
        assert response.status_code == 401
    assert receiver.requests == []
