"""One definition per input: the dashboard, the admin and the API refuse the same bad
note, comment, duration or window with the same message (apps/alerts/inputs.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.http import HttpResponse
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from apps.alerts import inputs, services
from apps.alerts.models import Alert, AlertRule, AlertState, Silence
from tests.admin.helpers import form_errors, messages_of
from tests.alerts.conftest import add_run
from tests.factories import CaseFactory, ClusterFactory

pytestmark = pytest.mark.django_db

TOO_LONG = "x" * (inputs.NOTE_MAX_CHARS + 1)
TOO_LONG_MESSAGE = (
    f"At most {inputs.NOTE_MAX_CHARS} characters; this one has {inputs.NOTE_MAX_CHARS + 1}."
)
HOURS_MESSAGE = "Give between 0.1 and 720 hours."


@pytest.fixture
def operator(make_user: Callable[..., User]) -> User:
    return make_user("operator")


@pytest.fixture
def web(client: Client, operator: User) -> Client:
    client.force_login(operator)
    return client


@pytest.fixture
def api(operator: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(operator)
    return client


@pytest.fixture
def alert(db: None) -> Alert:
    AlertRule.objects.filter(name="default").update(consecutive_failures=1)
    case, cluster = CaseFactory(name="pod-lifecycle"), ClusterFactory(name="prod-1")
    add_run(case, cluster, False)
    fired = services.alert_evaluate(case_id=case.pk, cluster_id=cluster.pk)
    assert fired is not None and fired.state == AlertState.FIRING
    return fired


def dashboard_message(response: HttpResponse) -> str:
    [message] = messages_of(response)
    return message


def admin_action(web: Client, alert: Alert, action: str, data: dict[str, Any]) -> Any:
    """The errors of the admin action's form (acknowledge, resolve) after applying `data`."""
    response = web.post(
        "/admin/alerts/alert/",
        {"action": action, "_selected_action": [alert.pk], "apply": "1", **data},
    )
    assert response.status_code == 200, "the action applied instead of asking again"
    return response.context["form"].errors


def admin_silence_errors(web: Client, *, ends: datetime, comment: str) -> dict[str, list[str]]:
    now = timezone.now()
    response = web.post(
        "/admin/alerts/silence/add/",
        {
            "matchers": json.dumps([{"name": "cluster", "value": "prod-1"}]),
            "starts_at_0": now.strftime("%Y-%m-%d"),
            "starts_at_1": now.strftime("%H:%M:%S"),
            "ends_at_0": ends.strftime("%Y-%m-%d"),
            "ends_at_1": ends.strftime("%H:%M:%S"),
            "comment": comment,
        },
    )
    return form_errors(response)


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        pytest.param({"note": TOO_LONG}, "note", TOO_LONG_MESSAGE, id="note-too-long"),
        pytest.param({"hours": "721"}, "hours", HOURS_MESSAGE, id="too-many-hours"),
        pytest.param({"hours": "0.05"}, "hours", HOURS_MESSAGE, id="too-few-hours"),
    ],
)
def test_a_bad_acknowledgement_is_refused_alike_everywhere(
    web: Client, api: APIClient, alert: Alert, data: dict[str, str], field: str, message: str
) -> None:
    page = web.post(f"/dashboard/alerts/{alert.pk}/acknowledge/", data, follow=True)
    assert dashboard_message(page) == f"Not acknowledged: {field}: {message}"

    assert admin_action(web, alert, "acknowledge", data) == {field: [message]}

    response = api.post(f"/api/v1/alerts/{alert.pk}/acknowledge/", data, format="json")
    assert response.status_code == 400
    assert response.json() == {field: [message]}

    alert.refresh_from_db()
    assert alert.state == AlertState.FIRING and alert.ack_note == ""


def test_a_note_at_the_limit_is_accepted_everywhere(
    web: Client, api: APIClient, alert: Alert
) -> None:
    note = "y" * inputs.NOTE_MAX_CHARS
    response = api.post(f"/api/v1/alerts/{alert.pk}/acknowledge/", {"note": note}, format="json")
    assert response.status_code == 200, response.content
    page = web.post(f"/dashboard/alerts/{alert.pk}/acknowledge/", {"note": note}, follow=True)
    assert dashboard_message(page).startswith("Acknowledged ")
    web.post(
        "/admin/alerts/alert/",
        {"action": "resolve", "_selected_action": [alert.pk], "apply": "1", "note": note},
    )
    alert.refresh_from_db()
    assert alert.state == AlertState.OK
    kept = alert.timeline.filter(text__endswith=f": {note}")
    assert kept.filter(kind="acknowledged").count() == 2  # API, then dashboard
    assert kept.filter(kind="resolved").exists()  # admin


def test_an_over_long_resolve_note_is_refused_alike(
    web: Client, api: APIClient, alert: Alert
) -> None:
    assert admin_action(web, alert, "resolve", {"note": TOO_LONG}) == {"note": [TOO_LONG_MESSAGE]}
    response = api.post(f"/api/v1/alerts/{alert.pk}/resolve/", {"note": TOO_LONG}, format="json")
    assert response.status_code == 400 and response.json() == {"note": [TOO_LONG_MESSAGE]}
    alert.refresh_from_db()
    assert alert.state == AlertState.FIRING


def test_an_acknowledgement_expires_within_the_same_30_days_by_until(
    api: APIClient, alert: Alert
) -> None:
    too_late = (timezone.now() + inputs.MAX_QUIET + timedelta(hours=1)).isoformat()
    response = api.post(
        f"/api/v1/alerts/{alert.pk}/acknowledge/", {"until": too_late}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == {"until": ["At most 720 hours (30 days) from now."]}


def test_an_over_long_silence_comment_is_refused_alike_everywhere(
    web: Client, api: APIClient, alert: Alert
) -> None:
    page = web.post(
        f"/dashboard/alerts/{alert.pk}/silence/", {"hours": "2", "comment": TOO_LONG}, follow=True
    )
    assert dashboard_message(page) == f"Not silenced: comment: {TOO_LONG_MESSAGE}"

    ends = timezone.now() + timedelta(hours=2)
    assert admin_silence_errors(web, ends=ends, comment=TOO_LONG) == {"comment": [TOO_LONG_MESSAGE]}

    body = {
        "matchers": [{"name": "cluster", "value": "prod-1"}],
        "ends_at": ends.isoformat(),
        "comment": TOO_LONG,
    }
    response = api.post("/api/v1/silences/", body, format="json")
    assert response.status_code == 400 and response.json() == {"comment": [TOO_LONG_MESSAGE]}

    with pytest.raises(CommandError, match="At most 2000 characters"):
        call_command(
            "silence",
            "add",
            "--cluster",
            "prod-1",
            "--for",
            "2h",
            "--comment",
            TOO_LONG,
            stdout=StringIO(),
        )
    assert not Silence.objects.exists()


def test_a_silence_longer_than_30_days_is_refused_everywhere(
    web: Client, api: APIClient, alert: Alert
) -> None:
    page = web.post(f"/dashboard/alerts/{alert.pk}/silence/", {"hours": "721"}, follow=True)
    assert dashboard_message(page) == f"Not silenced: hours: {HOURS_MESSAGE}"

    ends = timezone.now() + inputs.MAX_QUIET + timedelta(hours=1)
    assert admin_silence_errors(web, ends=ends, comment="") == {
        "ends_at": [inputs.SILENCE_TOO_LONG]
    }

    body = {"matchers": [{"name": "cluster", "value": "prod-1"}], "ends_at": ends.isoformat()}
    response = api.post("/api/v1/silences/", body, format="json")
    assert response.status_code == 400
    assert response.json() == {"ends_at": ["A silence lasts at most 720 hours (30 days)."]}

    with pytest.raises(CommandError, match="at most 720 hours"):
        call_command("silence", "add", "--cluster", "prod-1", "--for", "31d", stdout=StringIO())
    assert not Silence.objects.exists()

    # 30 days exactly is allowed.
    body["ends_at"] = (timezone.now() + inputs.MAX_QUIET - timedelta(minutes=1)).isoformat()
    assert api.post("/api/v1/silences/", body, format="json").status_code == 201


def test_the_dashboard_form_shows_the_shared_limits(web: Client, alert: Alert) -> None:
    html = web.get("/dashboard/alerts/").content.decode()
    assert f'name="note" maxlength="{inputs.NOTE_MAX_CHARS}"' in html
    assert f'name="comment" maxlength="{inputs.NOTE_MAX_CHARS}"' in html
    assert f'min="{inputs.HOURS_MIN}" max="{inputs.HOURS_MAX}"' in html
