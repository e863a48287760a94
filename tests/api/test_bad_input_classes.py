"""Each class of bad input that used to reach the database as a 500 is a clear 4xx
(or the right answer): NUL characters, datetime offsets Postgres cannot store,
deleting what others use, all-digit label keys and filter values that were ignored."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from django.contrib.auth.models import User
from django.db import models
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from apps.catalog.models import Case, CaseTemplate
from apps.clusters.models import Cluster, ClusterGroup
from apps.core.filters import FilterSet
from apps.runs.models import ProbeRun
from apps.scheduling.models import Event
from kubeprobe_site.api import router
from tests.api.conftest import row_counts
from tests.factories import ClusterFactory
from tests.runs.helpers import make_run

pytestmark = pytest.mark.django_db

NUL = "\u0000"

# --------------------------------------------------------------------- NUL in bodies

NUL_BODIES = [
    ("/api/v1/cases/", {"name": "x", "template": f"a{NUL}b"}, "template"),
    ("/api/v1/cases/", {"name": "x", "template": "tmpl", "env": {"A": f"1{NUL}"}}, "env.A"),
    ("/api/v1/templates/", {"name": "t", "image": "i", "command": ["a", f"b{NUL}"]}, "command[1]"),
    ("/api/v1/clusters/", {"name": "c", "labels": {f"k{NUL}": "v"}}, "labels.k\\u0000"),
    ("/api/v1/cluster-groups/", {"name": "g", "selector": {"a": f"{NUL}"}}, "selector.a"),
    ("/api/v1/cluster-groups/", {"name": "g", "members": [f"alpha{NUL}"]}, "members[0]"),
    ("/api/v1/case-sets/", {"name": "s", "cases": [f"kase{NUL}"]}, "cases[0]"),
    ("/api/v1/bindings/", {"name": f"b{NUL}", "clusters": ["alpha"]}, "name"),
    ("/api/v1/events/", {"cluster": "alpha", "kind": "upgrade", "detail": {"x": NUL}}, "detail.x"),
    ("/api/v1/alert-rules/", {"name": "r", "scope": "case", "case": f"kase{NUL}"}, "case"),
    ("/api/v1/silences/", {"matchers": {"cluster": f"a{NUL}"}, "ends_at": "x"}, "matchers.cluster"),
    ("/api/v1/channels/", {"name": "w", "kind": "webhook", "config": {"url": NUL}}, "config.url"),
    ("/api/v1/runs/", {"case": f"kase{NUL}", "cluster": "alpha"}, "case"),
]


@pytest.mark.parametrize(("url", "payload", "where"), NUL_BODIES, ids=[b[0] for b in NUL_BODIES])
def test_nul_in_a_json_body_is_a_400_naming_where(
    api: APIClient, world: dict[str, models.Model], url: str, payload: dict[str, Any], where: str
) -> None:
    before = row_counts()
    response = api.post(url, payload, format="json")
    assert response.status_code == 400, (response.status_code, response.content[:300])
    detail = response.json()["detail"]
    assert "NUL" in detail and where in detail, detail
    assert row_counts() == before


def test_nul_in_a_json_body_of_an_update_is_a_400(
    api: APIClient, world: dict[str, models.Model]
) -> None:
    response = api.patch("/api/v1/clusters/alpha/", {"description": f"a{NUL}"}, format="json")
    assert response.status_code == 400 and "description" in response.json()["detail"]
    assert Cluster.objects.get(name="alpha").description == ""


def test_nul_in_a_form_body_is_a_400(api: APIClient, world: dict[str, models.Model]) -> None:
    response = api.post("/api/v1/cases/", {"name": "x", "template": f"a{NUL}b"})  # multipart
    assert response.status_code == 400 and "template" in response.json()["detail"]
    response = api.post(
        "/api/v1/cases/",
        "name=x&template=a%00b",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 400 and "template" in response.json()["detail"]


# ---------------------------------------------------------------------- NUL in URLs

NAME_ROUTES = [
    "clusters",
    "cluster-groups",
    "templates",
    "cases",
    "case-sets",
    "bindings",
    "alert-rules",
    "channels",
]


@pytest.mark.parametrize("resource", NAME_ROUTES)
def test_nul_in_a_name_in_the_url_is_a_400(
    api: APIClient, world: dict[str, models.Model], resource: str
) -> None:
    for method in ("get", "put", "patch", "delete"):
        response = getattr(api, method)(f"/api/v1/{resource}/a%00b/")
        assert response.status_code == 400, (method, response.status_code, response.content)
        assert "NUL" in response.json()["detail"]
    response = api.get("/api/v1/cluster-groups/a%00b/resolve/")
    assert response.status_code == 400


def test_nul_in_a_query_parameter_is_a_400_naming_it(api: APIClient) -> None:
    for url in ("/api/v1/runs/?cluster=a%00b", "/api/v1/clusters/?label=a%00=b"):
        response = api.get(url)
        assert response.status_code == 400, (url, response.content)
        assert response.json()["detail"].endswith(url.split("?")[1].split("=")[0] + ".")


def test_nul_in_dashboard_pages_is_a_400(
    make_user: Callable[..., User], world: dict[str, models.Model]
) -> None:
    client = Client(raise_request_exception=False)
    client.force_login(make_user("viewer"))
    for url in ("/dashboard/clusters/a%00b/", "/dashboard/cases/a%00b/", "/dashboard/?q=%00"):
        response = client.get(url)
        assert response.status_code == 400, (url, response.status_code)
        assert b"NUL" in response.content
    assert client.get("/dashboard/clusters/alpha/").status_code == 200


# ----------------------------------------------------------- datetime filter offsets


def test_datetime_filters_with_any_offset_find_the_right_rows(
    client_for: Callable[[str], APIClient], world: dict[str, models.Model]
) -> None:
    case, cluster = world["case"], world["cluster"]
    assert isinstance(case, Case) and isinstance(cluster, Cluster)
    run = make_run(case, cluster)
    Event.objects.create(cluster=cluster, kind="upgrade")
    created = ProbeRun.objects.get(pk=run.pk).created_at
    viewer = client_for("viewer")
    for resource in ("runs", "events"):
        for shift, expected in ((-60, 1), (60, 0)):
            # +16:00 and -16:00: more than Postgres can store as an offset.
            for offset in (timedelta(hours=16), -timedelta(hours=16)):
                when = (created + timedelta(seconds=shift)).astimezone(
                    timezone.get_fixed_timezone(offset)
                )
                response = viewer.get(
                    f"/api/v1/{resource}/?created_after={quote(when.isoformat())}"
                )
                assert response.status_code == 200, response.content
                assert response.json()["count"] == expected, (resource, when)
    response = viewer.get(
        "/api/v1/runs/?created_before=" + quote(datetime(2999, 1, 1, tzinfo=UTC).isoformat())
    )
    assert response.json()["count"] == 1


@pytest.mark.parametrize(
    ("url", "param"),
    [
        ("/api/v1/runs/?created_after=9999-12-31T23:59:00-16:00", "created_after"),
        ("/api/v1/runs/?created_before=0001-01-01T00:00:00%2B16:00", "created_before"),
        ("/api/v1/events/?created_after=0001-01-01T00:00:00%2B15:00", "created_after"),
        ("/api/v1/runs/?created_after=tomorrow", "created_after"),
    ],
)
def test_datetimes_out_of_range_are_a_400_naming_the_parameter(
    client_for: Callable[[str], APIClient], url: str, param: str
) -> None:
    response = client_for("viewer").get(url)
    assert response.status_code == 400, response.content
    assert list(response.json()) == [param]


# ------------------------------------------------------------- deleting what is used


def test_deleting_what_others_use_is_a_409_naming_them(
    api: APIClient, world: dict[str, models.Model]
) -> None:
    response = api.delete("/api/v1/templates/tmpl/")
    assert response.status_code == 409, response.content
    assert response.json()["detail"] == 'Cannot delete it: still used by case "kase".'
    assert CaseTemplate.objects.filter(name="tmpl").exists()

    template = world["template"]
    assert isinstance(template, CaseTemplate)
    for n in range(12):
        Case.objects.create(name=f"more-{n:02}", template=template)
    detail = api.delete("/api/v1/templates/tmpl/").json()["detail"]
    assert detail.startswith('Cannot delete it: still used by case "kase", case "more-00"')
    assert detail.endswith(" and 3 more.")


# --------------------------------------------------------------- all-digit label keys


def test_all_digit_label_keys_filter_resolve_and_run(
    api: APIClient, world: dict[str, models.Model]
) -> None:
    huge = "99999999999999999999999"
    Cluster.objects.filter(name="alpha").update(labels={"1": "one", huge: "x", "team": "a"})
    ClusterFactory(name="beta", labels={"team": "a"})

    def names(url: str) -> list[str]:
        response = api.get(url)
        assert response.status_code == 200, (url, response.content)
        return [c["name"] for c in response.json()["results"]]

    assert names("/api/v1/clusters/?label=1=one") == ["alpha"]
    assert names("/api/v1/clusters/?label=1") == ["alpha"]
    assert names(f"/api/v1/clusters/?label={huge}") == ["alpha"]
    assert names(f"/api/v1/clusters/?label={huge}=x") == ["alpha"]
    assert names("/api/v1/clusters/?label=2") == []
    assert names("/api/v1/clusters/?label=team=a") == ["alpha", "beta"]

    response = api.post(
        "/api/v1/cluster-groups/", {"name": "digits", "selector": {"1": "one"}}, format="json"
    )
    assert response.status_code == 201, response.content
    response = api.post(
        "/api/v1/cluster-groups/", {"name": "huge", "selector": {huge: "x"}}, format="json"
    )
    assert response.status_code == 201, response.content
    for group in ("digits", "huge"):
        assert api.get(f"/api/v1/cluster-groups/{group}/resolve/").json()["clusters"] == ["alpha"]
        assert names(f"/api/v1/clusters/?group={group}") == ["alpha"]
    response = api.post("/api/v1/runs/", {"case": "kase", "group": "digits"}, format="json")
    assert response.status_code == 201, response.content
    assert ProbeRun.objects.get(pk=response.json()["runs"][0]).cluster.name == "alpha"
    assert ClusterGroup.objects.get(name="digits").selector == {"1": "one"}


# --------------------------------------------------------------- invalid filter values

BAD_FILTERS = [
    ("/api/v1/clusters/?enabled=-1", "enabled"),
    ("/api/v1/clusters/?unreachable=maybe", "unreachable"),
    ("/api/v1/clusters/?executor=ssh", "executor"),
    ("/api/v1/cases/?enabled=yes", "enabled"),
    ("/api/v1/bindings/?enabled=2", "enabled"),
    ("/api/v1/runs/?ok=maybe", "ok"),
    ("/api/v1/runs/?state=lost", "state"),
    ("/api/v1/alerts/?open=-1", "open"),
    ("/api/v1/alerts/?flapping=x", "flapping"),
    ("/api/v1/silences/?active=often", "active"),
    ("/api/v1/alert-rules/?enabled=on", "enabled"),
    ("/api/v1/channels/?enabled=null", "enabled"),
    ("/api/v1/clusters/?page_size=x", "page_size"),
    ("/api/v1/clusters/?page_size=0", "page_size"),
    ("/api/v1/runs/?page_size=-5", "page_size"),
    ("/api/v1/events/?page=abc", "page"),
    ("/api/v1/templates/?page=0", "page"),
]


@pytest.mark.parametrize(("url", "param"), BAD_FILTERS, ids=[b[0] for b in BAD_FILTERS])
def test_invalid_filter_values_are_a_400_naming_the_parameter(
    client_for: Callable[[str], APIClient], url: str, param: str
) -> None:
    response = client_for("viewer").get(url)
    assert response.status_code == 400, (response.status_code, response.content)
    assert list(response.json()) == [param]


def test_valid_filter_values_still_filter(
    client_for: Callable[[str], APIClient], world: dict[str, models.Model]
) -> None:
    ClusterFactory(name="off", enabled=False)
    viewer = client_for("viewer")

    def names(url: str) -> list[str]:
        response = viewer.get(url)
        assert response.status_code == 200, response.content
        return [c["name"] for c in response.json()["results"]]

    for word, expected in (("true", ["alpha"]), ("1", ["alpha"]), ("False", ["off"])):
        assert names(f"/api/v1/clusters/?enabled={word}") == expected
    assert names("/api/v1/clusters/?enabled=") == ["alpha", "off"]
    assert names("/api/v1/clusters/?page_size=5000&page=last") == ["alpha", "off"]
    assert viewer.get("/api/v1/clusters/?page=9").status_code == 404


def test_every_api_filter_set_is_strict() -> None:
    """New filter sets must derive from the strict base, or bad values pass silently."""
    for _prefix, viewset, _basename in router.registry:
        filterset = getattr(viewset, "filterset_class", None)
        if filterset is not None:
            assert issubclass(filterset, FilterSet), viewset


# ------------------------------------------------------- found by schemathesis


@pytest.mark.parametrize("matchers", [{}, "", None, 0])
def test_channel_matchers_that_are_not_a_list_are_a_400(api: APIClient, matchers: Any) -> None:
    payload = {"name": "hook", "kind": "webhook", "config": {"url": "http://127.0.0.1:9/"}}
    response = api.post("/api/v1/channels/", {**payload, "matchers": matchers}, format="json")
    assert response.status_code == 400, response.content
    assert "matchers" in response.json()
    assert api.post("/api/v1/channels/", payload, format="json").status_code == 201


def test_unknown_api_urls_answer_json(api: APIClient) -> None:
    response = api.get("/api/v1/clusters/a.b/")  # no route: names have no dots
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
    page = Client(raise_request_exception=False).get("/dashboard/nothing/here/")
    assert page.status_code == 404 and not page["Content-Type"].startswith("application/json")
