"""A case that no enabled binding runs on a cluster never looks like one that passed:
the overview leaves it out as a column (and says so) unless every case is asked for,
and then, like the cluster page, marks it "not scheduled"."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.test import Client

from apps.scheduling.models import Binding
from apps.scheduling.selectors import scheduled_pairs
from tests.dashboard.conftest import World
from tests.dashboard.test_pages import cell_tags
from tests.factories import BindingFactory, CaseFactory

pytestmark = pytest.mark.django_db

Login = Callable[[User], Client]


@pytest.fixture
def scheduled_world(world: World) -> World:
    """etcd-meta bound to team-a (by group) and its case set bound to stage-b1; a seeded
    case bound to nothing; pod-lifecycle has results on prod-a1 but no binding."""
    etcd, _ = world.cases
    by_group = BindingFactory(name="etcd-team-a")
    by_group.groups.add(world.team_a)
    by_group.cases.add(etcd)
    by_set = BindingFactory(name="core-on-b1")
    by_set.clusters.add(world.b1)
    by_set.case_sets.add(etcd.memberships.get().case_set)
    off = BindingFactory(name="switched-off", enabled=False)
    off.clusters.add(world.a2)
    world.cases.append(CaseFactory(name="seeded-unbound"))
    off.cases.add(world.cases[-1])
    return world


def test_scheduled_pairs_follow_enabled_bindings_groups_and_case_sets(
    scheduled_world: World,
) -> None:
    w = scheduled_world
    etcd = w.cases[0]
    assert scheduled_pairs() == {(etcd.pk, w.a1.pk), (etcd.pk, w.a2.pk), (etcd.pk, w.b1.pk)}
    w.a2.enabled = False
    w.a2.save()
    Binding.objects.filter(name="core-on-b1").update(enabled=False)
    assert scheduled_pairs() == {(etcd.pk, w.a1.pk)}


def test_overview_leaves_unscheduled_cases_out_and_marks_them_when_asked(
    login: Login, make_user: Callable[..., User], scheduled_world: World
) -> None:
    w = scheduled_world
    etcd, pods, unbound = w.cases
    client = login(make_user("viewer"))

    html = client.get("/dashboard/?render=table").content.decode()
    cells = cell_tags(html)
    # etcd (scheduled) and pod-lifecycle (results) are columns; the unbound case is not.
    assert {key.split("-")[1] for key in cells} == {str(etcd.pk), str(pods.pk)}
    assert "1 other enabled case is scheduled nowhere here" in html
    # pod-lifecycle has a result on prod-a1 only; elsewhere nothing runs it.
    assert "run-failed" in cells[f"c-{pods.pk}-{w.a1.pk}"]
    assert "run-unscheduled" in cells[f"c-{pods.pk}-{w.a2.pk}"]
    # etcd is scheduled on prod-a2 without a result yet: an empty cell, not "unscheduled".
    assert "run-none" in cells[f"c-{etcd.pk}-{w.a2.pk}"]

    html = client.get("/dashboard/?render=table&columns=all").content.decode()
    cells = cell_tags(html)
    assert len(cells) == 3 * 3
    assert all("run-unscheduled" in cells[f"c-{unbound.pk}-{c.pk}"] for c in (w.a1, w.a2, w.b1))
    assert "scheduled nowhere here" not in html
    assert 'name="columns"' in html and '<option value="all" selected>' in html


def test_cluster_page_says_not_scheduled_instead_of_ok(
    login: Login, make_user: Callable[..., User], scheduled_world: World
) -> None:
    html = login(make_user("viewer")).get("/dashboard/clusters/prod-a2/").content.decode()
    rows = {
        name: html[html.index(f'/dashboard/cases/{name}/">') :].split("</tr>")[0]
        for name in ("etcd-meta", "pod-lifecycle", "seeded-unbound")
    }
    assert "no result yet" in rows["etcd-meta"]
    assert "not scheduled" in rows["pod-lifecycle"] and "run-unscheduled" in rows["pod-lifecycle"]
    assert "not scheduled" in rows["seeded-unbound"]
    assert all("<td>ok</td>" not in row for row in rows.values())
