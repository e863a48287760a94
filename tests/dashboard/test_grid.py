"""The overview's matrix as grid.json (what grid.js draws) and its table fallback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import User
from django.test import Client

from apps.alerts.models import Alert
from tests.dashboard.conftest import World

Login = Callable[[User], Client]


def grid(client: Client, query: str = "") -> dict[str, Any]:
    response = client.get(f"/dashboard/grid.json?{query}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    return response.json()


def rows(data: dict[str, Any]) -> dict[str, list[Any]]:
    return {row[1]: row for _, section in data["sections"] for row in section}


def test_grid_json_holds_every_cell_as_three_codes(
    login: Login, make_user: Callable[..., User], world: World
) -> None:
    data = grid(login(make_user("viewer")))
    etcd, pods = world.cases
    assert data["cases"] == [[etcd.pk, "etcd-meta"], [pods.pk, "pod-lifecycle"]]
    assert [title for title, _ in data["sections"]] == ["eu-1", "us-1"]  # by region
    by_name = rows(data)
    # a1: etcd succeeded (alert ok, the default severity), pods failed and firing (critical).
    assert by_name["prod-a1"][3] == "Sow" + "Ffc"
    assert by_name["prod-a1"][4] == f"{world.runs['a1-etcd'].pk},{world.runs['a1-pods'].pk}"
    # a2: no results and no binding runs its pairs: "u" (not scheduled), no run ids.
    assert by_name["prod-a2"][3] == "u--u--" and by_name["prod-a2"][4] == ","
    assert by_name["stage-b1"][3] == "Ffw" + "u--"
    assert data["counters"] == {"critical": 1, "warning": 1, "info": 0}
    assert data["rows"] == 3


def test_grid_filters_order_and_restriction(
    login: Login, make_user: Callable[..., User], world: World, restricted_user: User
) -> None:
    client = login(make_user("viewer"))
    assert set(rows(grid(client, "state=failing"))) == {"prod-a1", "stage-b1"}
    assert set(rows(grid(client, "state=ok"))) == {"prod-a2"}
    assert set(rows(grid(client, "region=us-1"))) == {"prod-a2"}
    assert grid(client, "case_set=core")["cases"] == [[world.cases[0].pk, "etcd-meta"]]
    assert grid(client, "group=nope")["rows"] == 0
    # Problems first, by name within each section: with a1 all green, b1 (failing) leads eu-1.
    Alert.objects.filter(cluster=world.a1).update(state="ok", latest_state="succeeded")

    def eu(query: str) -> list[str]:
        return [row[1] for row in grid(client, query)["sections"][0][1]]

    assert eu("") == ["prod-a1", "stage-b1"]
    assert eu("order=problems") == ["stage-b1", "prod-a1"]
    # Bad values are dropped (the shell names them), never a 500.
    assert client.get("/dashboard/grid.json?order=sideways&state=purple").status_code == 200
    # A restricted user's grid holds only their clusters and counts only their alerts.
    mine = grid(login(restricted_user))
    assert set(rows(mine)) == {"stage-b1"}
    assert mine["counters"] == {"critical": 0, "warning": 1, "info": 0}


def test_the_shell_has_no_cells_and_points_at_its_grid(
    login: Login, make_user: Callable[..., User], world: World
) -> None:
    html = login(make_user("viewer")).get("/dashboard/?region=eu-1").content.decode()
    assert 'id="c-' not in html
    assert 'data-src="/dashboard/grid.json?region=eu-1"' in html
    assert "/static/dashboard/grid.js" in html and "render=table" in html
    assert "<noscript>" in html


def test_the_table_fallback_pages_and_refuses_bad_pages(
    login: Login, make_user: Callable[..., User], world: World, monkeypatch: Any
) -> None:
    from apps.dashboard import views

    monkeypatch.setattr(views, "TABLE_ROWS", 2)
    client = login(make_user("viewer"))
    first = client.get("/dashboard/?render=table").content.decode()
    second = client.get("/dashboard/?render=table&page=2").content.decode()
    assert "page 1 of 2" in first and 'rel="next"' in first
    assert "prod-a1" in first and "stage-b1" in first and "prod-a2" not in first
    assert "prod-a2" in second and "prod-a1" not in second
    assert f'id="c-{world.cases[0].pk}-{world.a2.pk}"' in second
    for bad in ("0", "-1", "x", "1.5"):
        answer = client.get(f"/dashboard/?render=table&page={bad}")
        assert answer.status_code == 400 and b"positive whole number" in answer.content
    assert client.get("/dashboard/?render=table&page=3").status_code == 404
