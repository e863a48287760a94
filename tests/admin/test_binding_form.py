"""The binding admin form insists on targets and subjects and a valid schedule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from apps.scheduling.models import Binding
from tests.admin.helpers import form_data, form_errors
from tests.factories import CaseFactory, CaseSetFactory, ClusterFactory, ClusterGroupFactory

pytestmark = pytest.mark.django_db

ADD = "/admin/scheduling/binding/add/"


@pytest.fixture
def operator_client(client: Client, make_user: Callable[..., object]) -> Client:
    client.force_login(make_user("operator"))
    return client


@pytest.fixture
def valid(operator_client: Client) -> dict[str, Any]:
    data = form_data(operator_client.get(ADD))
    assert {"clusters", "groups", "cases", "case_sets", "cron", "interval_seconds"} <= set(data)
    data.update(
        name="nightly",
        clusters=[ClusterFactory().pk],
        cases=[CaseFactory().pk],
        interval_seconds="300",
    )
    return data


def _post_invalid(client: Client, data: dict[str, Any]) -> dict[str, list[str]]:
    response = client.post(ADD, data)
    assert response.status_code == 200
    assert not Binding.objects.exists()
    return form_errors(response)


def test_valid_binding_is_saved_with_a_periodic_task(
    operator_client: Client, valid: dict[str, Any]
) -> None:
    response = operator_client.post(ADD, valid)
    assert response.status_code == 302, form_errors(response)
    binding = Binding.objects.get(name="nightly")
    assert binding.periodic_task is not None
    assert binding.periodic_task.enabled is True
    assert binding.periodic_task.interval.every == 300


def test_groups_and_case_sets_are_enough(operator_client: Client, valid: dict[str, Any]) -> None:
    valid.update(
        clusters=[], groups=[ClusterGroupFactory().pk], cases=[], case_sets=[CaseSetFactory().pk]
    )
    response = operator_client.post(ADD, valid)
    assert response.status_code == 302, form_errors(response)
    binding = Binding.objects.get(name="nightly")
    assert binding.groups.count() == 1 and binding.case_sets.count() == 1


def test_without_targets_is_an_error(operator_client: Client, valid: dict[str, Any]) -> None:
    valid.update(clusters=[], groups=[])
    errors = _post_invalid(operator_client, valid)
    assert errors["clusters"] == ["Name at least one cluster or group."]
    assert "cases" not in errors


def test_without_subjects_is_an_error(operator_client: Client, valid: dict[str, Any]) -> None:
    valid.update(cases=[], case_sets=[])
    errors = _post_invalid(operator_client, valid)
    assert errors["cases"] == ["Name at least one case or case set."]
    assert "clusters" not in errors


def test_without_targets_and_subjects_names_both(
    operator_client: Client, valid: dict[str, Any]
) -> None:
    valid.update(clusters=[], groups=[], cases=[], case_sets=[])
    response = operator_client.post(ADD, valid)
    errors = form_errors(response)
    assert set(errors) >= {"clusters", "cases"}
    html = response.content.decode()
    assert "Name at least one cluster or group." in html
    assert "Name at least one case or case set." in html


def test_bad_cron_is_an_error_on_cron(operator_client: Client, valid: dict[str, Any]) -> None:
    valid.update(interval_seconds="", cron="bad")
    errors = _post_invalid(operator_client, valid)
    assert list(errors) == ["cron"]
    assert "five fields" in errors["cron"][0]


def test_out_of_range_cron_is_an_error_on_cron(
    operator_client: Client, valid: dict[str, Any]
) -> None:
    valid.update(interval_seconds="", cron="61 * * * *")
    errors = _post_invalid(operator_client, valid)
    assert list(errors) == ["cron"]
    assert "Invalid cron expression" in errors["cron"][0]


def test_interval_and_cron_together_is_an_error(
    operator_client: Client, valid: dict[str, Any]
) -> None:
    valid.update(cron="*/5 * * * *")
    errors = _post_invalid(operator_client, valid)
    assert errors["cron"] == ["Set either an interval or a cron expression, not both."]


def test_bad_event_triggers_is_an_error(operator_client: Client, valid: dict[str, Any]) -> None:
    valid.update(event_triggers='[{"kind": "Not A Word"}]')
    errors = _post_invalid(operator_client, valid)
    assert "event_triggers" in errors
