"""/api/v1/alerts: read, filter, expand the timeline, acknowledge and resolve by hand."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.test import APIClient

from apps.alerts import services
from apps.alerts.models import Alert, AlertRule, AlertState, AlertTimeline
from apps.catalog.models import Case
from apps.clusters.models import Cluster
from tests.alerts.conftest import add_run
from tests.factories import CaseFactory, ClusterFactory

pytestmark = pytest.mark.django_db


def fire(case: Case, cluster: Cluster) -> Alert:
    add_run(case, cluster, False)
    alert = services.alert_evaluate(case_id=case.pk, cluster_id=cluster.pk)
    assert alert is not None and alert.state == AlertState.FIRING
    return alert


@pytest.fixture
def alerts(db: None) -> dict[str, Alert]:
    """Two firing alerts (prod-1, prod-2) and one that is OK (staging)."""
    AlertRule.objects.filter(name="default").update(consecutive_failures=1)
    case = CaseFactory(name="pod-lifecycle")
    other = CaseFactory(name="etcd-meta")
    firing = fire(case, ClusterFactory(name="prod-1"))
    critical = fire(other, ClusterFactory(name="prod-2"))
    Alert.objects.filter(pk=critical.pk).update(severity="critical")
    staging = ClusterFactory(name="staging")
    add_run(case, staging, True)
    ok = services.alert_evaluate(case_id=case.pk, cluster_id=staging.pk)
    assert ok is not None and ok.state == AlertState.OK
    return {"firing": firing, "critical": critical, "ok": ok}


def url(alert: Alert, action: str = "") -> str:
    return f"/api/v1/alerts/{alert.pk}/" + (f"{action}/" if action else "")


def test_list_shows_names_and_the_last_run(api: APIClient, alerts: dict[str, Alert]) -> None:
    response = api.get("/api/v1/alerts/")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    row = next(r for r in body["results"] if r["id"] == alerts["firing"].pk)
    assert row["case"] == "pod-lifecycle" and row["cluster"] == "prod-1"
    assert row["state"] == "firing" and row["severity"] == "warning"
    assert row["rule"] == "default"
    assert "consecutive failed run" in row["reason"]
    assert row["step"] == "ready" and "sandbox" in row["error"] and row["root_cause"] == "runtime"
    run_id = alerts["firing"].last_run_id
    assert row["last_run"] == run_id
    assert row["last_run_url"] == f"http://testserver/api/v1/runs/{run_id}"
    assert api.get(row["last_run_url"]).json()["id"] == run_id
    assert row["firing_since"] and row["changed_at"]
    assert row["latest_run"] == run_id and row["latest_state"] == "failed"
    assert row["escalated"] is False and row["flapping"] is False
    assert row["suppressed_by"] == "" and row["ack_by"] is None and row["ack_until"] is None
    assert "timeline" not in row


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("state=firing", {"prod-1", "prod-2"}),
        ("state=ok", {"staging"}),
        ("state=ok&state=firing", {"prod-1", "prod-2", "staging"}),
        ("severity=critical", {"prod-2"}),
        ("cluster=prod-1", {"prod-1"}),
        ("case=etcd-meta", {"prod-2"}),
        ("open=true", {"prod-1", "prod-2"}),
        ("open=false", {"staging"}),
        ("escalated=false", {"prod-1", "prod-2", "staging"}),
        ("flapping=true", set()),
        ("search=etcd", {"prod-2"}),
    ],
)
def test_filters(api: APIClient, alerts: dict[str, Alert], query: str, expected: set[str]) -> None:
    response = api.get(f"/api/v1/alerts/?{query}")
    assert response.status_code == 200, response.content
    assert {r["cluster"] for r in response.json()["results"]} == expected


def test_bad_filter_value_is_400_naming_it(api: APIClient, alerts: dict[str, Alert]) -> None:
    response = api.get("/api/v1/alerts/?state=burning")
    assert response.status_code == 400
    assert "state" in response.json()


def test_timeline_expand_and_action(api: APIClient, alerts: dict[str, Alert]) -> None:
    alert = alerts["firing"]
    api.post(url(alert, "acknowledge"), {"note": "on it"}, format="json")

    expanded = api.get(url(alert) + "?expand=timeline").json()
    kinds = [entry["kind"] for entry in expanded["timeline"]]
    assert kinds == ["flip", "acknowledged", "flip"]
    assert expanded["timeline"][1]["user"] == "admin-user"
    assert "on it" in expanded["timeline"][1]["text"]
    assert set(expanded["timeline"][0]) == {"kind", "text", "user", "at"}

    listed = api.get("/api/v1/alerts/?expand=timeline&cluster=prod-1").json()["results"]
    assert listed[0]["timeline"] == expanded["timeline"]

    page = api.get(url(alert, "timeline")).json()
    assert page["count"] == 3 and page["results"] == expanded["timeline"]


def test_unknown_expand_is_400(api: APIClient, alerts: dict[str, Alert]) -> None:
    response = api.get("/api/v1/alerts/?expand=flips")
    assert response.status_code == 400
    assert "flips" in response.json()["expand"][0]


def test_alerts_are_read_only_even_for_admins(api: APIClient, alerts: dict[str, Alert]) -> None:
    alert = alerts["firing"]
    assert api.post("/api/v1/alerts/", {}, format="json").status_code == 405
    assert api.patch(url(alert), {"state": "ok"}, format="json").status_code == 405
    assert api.delete(url(alert)).status_code == 405
    assert Alert.objects.get(pk=alert.pk).state == AlertState.FIRING


# ------------------------------------------------------------------ acknowledge / resolve


def test_acknowledge_with_note_and_hours(api: APIClient, alerts: dict[str, Alert]) -> None:
    alert = alerts["firing"]
    response = api.post(
        url(alert, "acknowledge"), {"note": "CNI restart", "hours": 2}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["state"] == "acknowledged"
    assert body["ack_note"] == "CNI restart" and body["ack_by"] == "admin-user"
    until = parse_datetime(body["ack_until"])
    assert until is not None
    assert abs(until - timezone.now() - timedelta(hours=2)) < timedelta(minutes=1)
    stored = Alert.objects.get(pk=alert.pk)
    assert stored.state == AlertState.ACKNOWLEDGED and stored.ack_note == "CNI restart"
    assert AlertTimeline.objects.filter(alert=alert, kind="acknowledged").count() == 1


def test_acknowledge_until_a_moment(api: APIClient, alerts: dict[str, Alert]) -> None:
    until = (timezone.now() + timedelta(days=1)).replace(microsecond=0)
    response = api.post(
        url(alerts["firing"], "acknowledge"), {"until": until.isoformat()}, format="json"
    )
    assert response.status_code == 200, response.content
    assert Alert.objects.get(pk=alerts["firing"].pk).ack_until == until


def test_acknowledge_without_expiry_and_again(api: APIClient, alerts: dict[str, Alert]) -> None:
    alert = alerts["firing"]
    assert api.post(url(alert, "acknowledge"), {}, format="json").status_code == 200
    assert Alert.objects.get(pk=alert.pk).ack_until is None
    # Acknowledging again updates the note and expiry (no second flip).
    again = api.post(url(alert, "acknowledge"), {"note": "still on it", "hours": 1}, format="json")
    assert again.status_code == 200
    assert again.json()["ack_note"] == "still on it"
    assert alert.flips.filter(event="acknowledged").count() == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        pytest.param({"until": "2001-01-01T00:00:00Z"}, "until", id="until-in-the-past"),
        pytest.param({"until": "tomorrow"}, "until", id="until-not-a-date"),
        pytest.param({"hours": -3}, "hours", id="negative-hours"),
        pytest.param({"hours": 0}, "hours", id="zero-hours"),
        pytest.param({"hours": 10_000}, "hours", id="too-many-hours"),
        pytest.param({"hours": "soon"}, "hours", id="hours-not-a-number"),
        pytest.param({"until": "2999-01-01T00:00:00Z"}, "until", id="until-past-30-days"),
        pytest.param(
            {"hours": 1, "until": (timezone.now() + timedelta(days=2)).isoformat()},
            "hours",
            id="both-until-and-hours",
        ),
        pytest.param({"note": ["a"]}, "note", id="note-not-text"),
    ],
)
def test_bad_acknowledgement_is_400_naming_the_field(
    api: APIClient, alerts: dict[str, Alert], payload: dict[str, Any], field: str
) -> None:
    alert = alerts["firing"]
    response = api.post(url(alert, "acknowledge"), payload, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert Alert.objects.get(pk=alert.pk).state == AlertState.FIRING
    assert not AlertTimeline.objects.filter(alert=alert, kind="acknowledged").exists()


def test_acknowledging_an_ok_alert_is_409(api: APIClient, alerts: dict[str, Alert]) -> None:
    response = api.post(url(alerts["ok"], "acknowledge"), {"note": "x"}, format="json")
    assert response.status_code == 409
    assert "only a firing alert can be acknowledged" in response.json()["detail"]
    assert Alert.objects.get(pk=alerts["ok"].pk).state == AlertState.OK


def test_resolve_by_hand_with_a_note(api: APIClient, alerts: dict[str, Alert]) -> None:
    alert = alerts["firing"]
    response = api.post(url(alert, "resolve"), {"note": "fixed the CNI"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["state"] == "ok" and body["firing_since"] is None
    entry = AlertTimeline.objects.get(alert=alert, kind="resolved")
    assert entry.user is not None and entry.user.username == "admin-user"
    assert "fixed the CNI" in entry.text
    assert alert.flips.filter(event="resolved").exists()

    again = api.post(url(alert, "resolve"), {}, format="json")
    assert again.status_code == 409
    assert again.json()["detail"] == "this alert is not open"


def test_resolve_acknowledged_alert(api: APIClient, alerts: dict[str, Alert]) -> None:
    alert = alerts["critical"]
    api.post(url(alert, "acknowledge"), {"hours": 1}, format="json")
    response = api.post(url(alert, "resolve"), {}, format="json")
    assert response.status_code == 200
    assert response.json()["ack_by"] is None and response.json()["ack_until"] is None


def test_unknown_alert_is_404(api: APIClient, alerts: dict[str, Alert]) -> None:
    assert api.get("/api/v1/alerts/999999/").status_code == 404
    assert api.post("/api/v1/alerts/999999/acknowledge/", {}, format="json").status_code == 404


# ------------------------------------------------------------------ permissions


@pytest.mark.parametrize("role", ["viewer", "operator", "admin"])
def test_every_role_reads_alerts(
    client_for: Callable[[str], APIClient], alerts: dict[str, Alert], role: str
) -> None:
    client = client_for(role)
    assert client.get("/api/v1/alerts/").json()["count"] == 3
    assert client.get(url(alerts["firing"])).status_code == 200
    assert client.get(url(alerts["firing"], "timeline")).status_code == 200


@pytest.mark.parametrize("role", ["operator", "admin"])
def test_operator_and_admin_act(
    client_for: Callable[[str], APIClient], alerts: dict[str, Alert], role: str
) -> None:
    client = client_for(role)
    ack = client.post(url(alerts["firing"], "acknowledge"), {"note": "mine"}, format="json")
    assert ack.status_code == 200, ack.content
    assert ack.json()["ack_by"] == f"{role}-user"
    assert client.post(url(alerts["critical"], "resolve"), {}, format="json").status_code == 200


def test_viewer_cannot_act(
    client_for: Callable[[str], APIClient], alerts: dict[str, Alert]
) -> None:
    client = client_for("viewer")
    for action in ("acknowledge", "resolve"):
        response = client.post(url(alerts["firing"], action), {}, format="json")
        assert response.status_code == 403
    assert Alert.objects.get(pk=alerts["firing"].pk).state == AlertState.FIRING


def test_user_without_role_cannot_read(alerts: dict[str, Alert]) -> None:
    client = APIClient()
    client.force_authenticate(User.objects.create_user("nobody", password="pw-For-tests-1"))
    assert client.get("/api/v1/alerts/").status_code == 403


def test_anonymous_is_refused(alerts: dict[str, Alert]) -> None:
    client = APIClient()
    for response in (
        client.get("/api/v1/alerts/"),
        client.get(url(alerts["firing"])),
        client.get(url(alerts["firing"], "timeline")),
        client.post(url(alerts["firing"], "acknowledge"), {}, format="json"),
        client.post(url(alerts["firing"], "resolve"), {}, format="json"),
    ):
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")
    assert Alert.objects.get(pk=alerts["firing"].pk).state == AlertState.FIRING


# ------------------------------------------------------------------ efficiency


def make_alerts(count: int, user: User) -> None:
    """`count` firing alerts with everything the serializer follows set."""
    case = CaseFactory()
    rule = AlertRule.objects.get(name="default")
    start = Cluster.objects.count()
    clusters = Cluster.objects.bulk_create(Cluster(name=f"bulk-{start + i}") for i in range(count))
    run = add_run(case, clusters[0], False)
    now = timezone.now()
    made = Alert.objects.bulk_create(
        Alert(
            case=case,
            cluster=cluster,
            state=AlertState.ACKNOWLEDGED,
            rule=rule,
            last_run=run,
            ack_by=user,
            ack_until=now + timedelta(hours=1),
            firing_since=now,
            flapping_since=now,
        )
        for cluster in clusters
    )
    AlertTimeline.objects.bulk_create(
        AlertTimeline(alert=alert, kind="acknowledged", text="mine", user=user)
        for alert in made
        for _ in range(2)
    )


def count_queries(client: APIClient, path: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200
    return len(queries)


@pytest.mark.parametrize("path", ["/api/v1/alerts/", "/api/v1/alerts/?expand=timeline"])
def test_list_query_count_is_constant(
    api: APIClient, make_user: Callable[..., User], path: str
) -> None:
    user = make_user("operator")
    make_alerts(5, user)
    page = f"{path}{'&' if '?' in path else '?'}page_size=1000"
    api.get(page)  # the user's permissions are cached from here on
    few = count_queries(api, page)
    make_alerts(1000, user)
    many = count_queries(api, page)
    assert many == few, (few, many)
    assert few <= 3  # count, page (with joins) and, with ?expand=timeline, one prefetch
    body = api.get(page).json()
    assert body["count"] == 1005 and len(body["results"]) == 1000
    assert all(r["ack_by"] == "operator-user" and r["flapping"] for r in body["results"])
