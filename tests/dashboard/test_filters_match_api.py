"""The dashboard filters through the API's FilterSets: one query string, the same clusters
and cases on a page as in /api/v1/clusters/ and /api/v1/cases/; bad values are named."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from apps.catalog.models import CaseSet, CaseSetMembership
from apps.clusters.models import ApiStatus, Cluster
from tests.dashboard.conftest import World, set_alert
from tests.factories import CaseFactory, ClusterFactory

pytestmark = pytest.mark.django_db

Login = Callable[[User], Client]

CLUSTER_QUERIES = [
    "region=eu-1",
    "environment=prod",
    "region=eu-1&environment=prod",
    "q=a2",
    "q=berlin",  # display name only
    "group=team-a",  # explicit members
    "group=team-b",  # label selector
    "group=nope",
    "label=team=b",
    "label=team",  # has the key
    "executor=kubernetes",
    "api_status=unreachable",
]
CASE_QUERIES = ["case_set=core", "case_set=edge", "case_set=nope"]


@pytest.fixture
def more(world: World) -> World:
    """World plus a display name, a second executor and API status, and a second case set."""
    Cluster.objects.filter(pk=world.b1.pk).update(display_name="Berlin staging")
    Cluster.objects.filter(pk=world.a2.pk).update(api_status=ApiStatus.UNREACHABLE)
    k8s = ClusterFactory(name="prod-k1", region="eu-1", environment="prod", executor="kubernetes")
    ClusterFactory(name="off-1", region="eu-1", environment="prod", enabled=False)
    edge = CaseFactory(name="edge-probe")
    CaseFactory(name="disabled-probe", enabled=False)
    CaseSetMembership.objects.create(case_set=CaseSet.objects.create(name="edge"), case=edge)
    for case in world.cases:
        set_alert(case, k8s, None)
    return world


def api_names(api: APIClient, resource: str, query: str) -> set[str]:
    response = api.get(f"/api/v1/{resource}/?{query}&enabled=true&page_size=1000")
    assert response.status_code == 200, response.content
    return {row["name"] for row in response.json()["results"]}


def overview(client: Client, query: str) -> tuple[set[str], set[str]]:
    """The overview's rows (cluster names) and columns (case names)."""
    response = client.get(f"/dashboard/grid.json?{query}")  # what the page draws
    assert response.status_code == 200
    page = response.json()
    rows = {row[1] for _, section in page["sections"] for row in section}
    return rows, {name for _, name in page["cases"]}


@pytest.mark.parametrize("query", CLUSTER_QUERIES)
def test_overview_rows_are_the_apis_clusters(
    login: Login, make_user: Callable[..., User], admin_api: APIClient, more: World, query: str
) -> None:
    rows, _ = overview(login(make_user("viewer")), query)
    assert rows == api_names(admin_api, "clusters", query)


@pytest.mark.parametrize("query", CASE_QUERIES)
def test_overview_columns_are_the_apis_cases(
    login: Login, make_user: Callable[..., User], admin_api: APIClient, more: World, query: str
) -> None:
    _, columns = overview(login(make_user("viewer")), query)
    assert columns == api_names(admin_api, "cases", query)


@pytest.mark.parametrize("query", ["region=eu-1", "group=team-b", "q=prod", "label=team=b"])
def test_case_page_clusters_are_the_apis_clusters(
    login: Login, make_user: Callable[..., User], admin_api: APIClient, more: World, query: str
) -> None:
    etcd = more.cases[0]
    response = login(make_user("viewer")).get(f"/dashboard/cases/{etcd.name}/?{query}")
    assert response.status_code == 200
    shown = {line.other_name for line in response.context["page"].lines}
    # The case page lists the clusters that have a result for the case.
    with_results = set(Cluster.objects.filter(alerts__case=etcd).values_list("name", flat=True))
    assert shown == api_names(admin_api, "clusters", query) & with_results


def test_cluster_page_cases_are_the_apis_cases(
    login: Login, make_user: Callable[..., User], admin_api: APIClient, more: World
) -> None:
    response = login(make_user("viewer")).get(f"/dashboard/clusters/{more.a1.name}/?case_set=core")
    shown = {line.other_name for line in response.context["page"].lines}
    assert shown == api_names(admin_api, "cases", "case_set=core") == {"etcd-meta"}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("executor=moon", "executor"),
        ("api_status=meh", "api_status"),
        ("q=" + "x" * 101, "q"),
        ("state=purple", "state"),
        ("group_by=moon", "group_by"),
    ],
)
def test_a_bad_value_is_named_on_the_page_and_refused_by_the_api(
    login: Login,
    make_user: Callable[..., User],
    admin_api: APIClient,
    more: World,
    query: str,
    field: str,
) -> None:
    client = login(make_user("viewer"))
    response = client.get(f"/dashboard/?region=eu-1&{query}")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="form-errors" role="alert">Ignored: ' + field + " (" in html
    # The bad value is dropped; the good one still applies.
    rows, _ = overview(client, f"region=eu-1&{query}")
    assert rows == api_names(admin_api, "clusters", "region=eu-1")
    state_json = client.get(f"/dashboard/state.json?{query}")
    assert state_json.status_code == 200
    if field in ("executor", "api_status", "q"):
        api = admin_api.get(f"/api/v1/clusters/?{query}")
        assert api.status_code == 400 and field in api.json()


def test_parameters_without_a_control_survive_apply(
    login: Login, make_user: Callable[..., User], more: World
) -> None:
    html = (
        login(make_user("viewer"))
        .get("/dashboard/?render=table&label=team=b&region=eu-1")
        .content.decode()
    )
    assert '<input type="hidden" name="label" value="team=b">' in html
    assert 'type="hidden" name="region"' not in html  # it has its own control
