"""What the built-in roles (admin, operator, viewer) may do in the admin."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.test import Client

from apps.catalog.models import Case
from apps.clusters.models import Cluster, ClusterGroup, Executor
from apps.scheduling.models import Binding
from tests.admin.helpers import editable_fields, form_data, form_errors
from tests.factories import (
    BindingFactory,
    CaseFactory,
    CaseSetFactory,
    ClusterFactory,
    ClusterGroupFactory,
    ProbeRunFactory,
    RenderConfigFactory,
)

pytestmark = pytest.mark.django_db

MODELS = {
    "clusters/cluster": ClusterFactory,
    "clusters/clustergroup": ClusterGroupFactory,
    "catalog/casetemplate": None,  # made by CaseFactory
    "catalog/case": CaseFactory,
    "catalog/renderconfig": RenderConfigFactory,
    "catalog/caseset": CaseSetFactory,
    "scheduling/binding": BindingFactory,
    "runs/proberun": ProbeRunFactory,
}


@pytest.fixture
def login(client: Client, make_user: Callable[..., User]) -> Callable[[str], Client]:
    def do(role: str) -> Client:
        client.force_login(make_user(role))
        return client

    return do


@pytest.fixture
def objects() -> dict[str, object]:
    run = ProbeRunFactory(cluster=ClusterFactory(name="prod-eu"))
    render = RenderConfigFactory(case=run.case)
    return {
        "clusters/cluster": run.cluster,
        "clusters/clustergroup": ClusterGroupFactory(name="grp"),
        "catalog/casetemplate": run.case.template,
        "catalog/case": run.case,
        "catalog/renderconfig": render,
        "catalog/caseset": CaseSetFactory(name="set"),
        "scheduling/binding": BindingFactory(name="bind"),
        "runs/proberun": run,
    }


def _binding_post(client: Client, url: str, **changes: object) -> object:
    data = form_data(client.get(url))
    data.update(changes)
    return client.post(url, data)


# --- viewer -----------------------------------------------------------------


@pytest.mark.parametrize("model", sorted(MODELS))
def test_viewer_reads_changelists_and_change_pages(
    login: Callable[[str], Client], objects: dict[str, object], model: str
) -> None:
    client = login("viewer")
    obj = objects[model]
    change_url = f"/admin/{model}/{obj.pk}/change/"
    response = client.get(f"/admin/{model}/")
    assert response.status_code == 200
    assert response.context["cl"].result_count >= 1
    assert change_url in response.content.decode()
    response = client.get(change_url)
    assert response.status_code == 200
    html = response.content.decode()
    # View only: no save buttons and nothing to edit.
    assert 'name="_save"' not in html
    assert response.context["has_change_permission"] is False
    assert editable_fields(response) == set()


@pytest.mark.parametrize("model", sorted(set(MODELS) - {"runs/proberun"}))
def test_viewer_gets_403_on_add_pages(login: Callable[[str], Client], model: str) -> None:
    client = login("viewer")
    assert client.get(f"/admin/{model}/add/").status_code == 403
    assert client.post(f"/admin/{model}/add/", {"name": "sneaky"}).status_code == 403


def test_viewer_cannot_add_a_run(login: Callable[[str], Client]) -> None:
    # Nobody adds runs in the admin; runs come from dispatch.
    assert login("viewer").get("/admin/runs/proberun/add/").status_code == 403


def test_viewer_cannot_change_by_post(
    login: Callable[[str], Client], objects: dict[str, object]
) -> None:
    cluster = objects["clusters/cluster"]
    binding = objects["scheduling/binding"]
    client = login("viewer")
    url = f"/admin/clusters/cluster/{cluster.pk}/change/"
    response = client.post(url, {"name": cluster.name, "display_name": "hacked", "labels": "{}"})
    assert response.status_code == 403
    assert Cluster.objects.get(pk=cluster.pk).display_name == ""
    url = f"/admin/scheduling/binding/{binding.pk}/change/"
    response = client.post(url, {"name": binding.name, "description": "hacked"})
    assert response.status_code == 403
    assert Binding.objects.get(pk=binding.pk).description == ""
    url = f"/admin/clusters/cluster/{cluster.pk}/delete/"
    assert client.post(url, {"post": "yes"}).status_code == 403
    assert Cluster.objects.filter(pk=cluster.pk).exists()


def test_viewer_cannot_open_api_tokens(login: Callable[[str], Client]) -> None:
    client = login("viewer")
    assert client.get("/admin/core/apitoken/").status_code == 403
    assert client.get("/admin/core/apitoken/add/").status_code == 403


@pytest.mark.parametrize(
    ("role", "model", "action"),
    [
        ("viewer", "clusters/cluster", "disable_clusters"),
        ("operator", "clusters/cluster", "disable_clusters"),
        ("viewer", "catalog/case", "disable_cases"),
        ("viewer", "scheduling/binding", "disable_bindings"),
    ],
)
def test_view_only_users_cannot_run_enable_disable_actions(
    login: Callable[[str], Client], objects: dict[str, object], role: str, model: str, action: str
) -> None:
    obj = objects[model]
    client = login(role)
    html = client.get(f"/admin/{model}/").content.decode()
    client.post(f"/admin/{model}/", {"action": action, "_selected_action": [obj.pk], "index": 0})
    obj.refresh_from_db()
    assert obj.enabled is True
    assert f'value="{action}"' not in html


# --- operator ---------------------------------------------------------------


def test_operator_adds_and_changes_a_binding(login: Callable[[str], Client]) -> None:
    cluster = ClusterFactory(name="target")
    case = CaseFactory(name="subject")
    client = login("operator")
    response = _binding_post(
        client,
        "/admin/scheduling/binding/add/",
        name="op-binding",
        clusters=[cluster.pk],
        cases=[case.pk],
        interval_seconds="120",
    )
    assert response.status_code == 302, form_errors(response)
    binding = Binding.objects.get(name="op-binding")
    assert list(binding.clusters.all()) == [cluster]
    assert list(binding.cases.all()) == [case]
    assert binding.periodic_task is not None
    assert binding.periodic_task.interval.every == 120

    url = f"/admin/scheduling/binding/{binding.pk}/change/"
    response = _binding_post(
        client, url, description="changed by operator", cron="@hourly", interval_seconds=""
    )
    assert response.status_code == 302, form_errors(response)
    binding.refresh_from_db()
    assert binding.description == "changed by operator"
    assert binding.periodic_task.interval is None
    assert binding.periodic_task.crontab.minute == "0"


@pytest.mark.parametrize(
    "model", ["clusters/cluster", "clusters/clustergroup", "catalog/case", "catalog/casetemplate"]
)
def test_operator_gets_403_adding_other_things(login: Callable[[str], Client], model: str) -> None:
    client = login("operator")
    assert client.get(f"/admin/{model}/add/").status_code == 403
    response = client.post(
        f"/admin/{model}/add/",
        {
            "name": "op-made",
            "executor": Executor.LOCAL,
            "labels": "{}",
            "namespace": "kubeprobe",
            "api_qps": "20",
            "api_timeout_seconds": "10",
        },
    )
    assert response.status_code == 403
    assert not Cluster.objects.filter(name="op-made").exists()
    assert not ClusterGroup.objects.filter(name="op-made").exists()
    assert not Case.objects.filter(name="op-made").exists()


def test_operator_cannot_change_a_cluster(
    login: Callable[[str], Client], objects: dict[str, object]
) -> None:
    cluster = objects["clusters/cluster"]
    client = login("operator")
    url = f"/admin/clusters/cluster/{cluster.pk}/change/"
    assert client.get(url).status_code == 200
    response = client.post(url, {"name": cluster.name, "display_name": "op", "labels": "{}"})
    assert response.status_code == 403
    assert Cluster.objects.get(pk=cluster.pk).display_name == ""


# --- admin ------------------------------------------------------------------


def test_admin_adds_changes_and_deletes_a_cluster(login: Callable[[str], Client]) -> None:
    client = login("admin")
    data = form_data(client.get("/admin/clusters/cluster/add/"))
    data.update(name="by-admin", executor=Executor.LOCAL)
    response = client.post("/admin/clusters/cluster/add/", data)
    assert response.status_code == 302, form_errors(response)
    cluster = Cluster.objects.get(name="by-admin")

    url = f"/admin/clusters/cluster/{cluster.pk}/change/"
    data = form_data(client.get(url))
    data.update(display_name="By Admin", region="eu-2")
    response = client.post(url, data)
    assert response.status_code == 302, form_errors(response)
    cluster.refresh_from_db()
    assert (cluster.display_name, cluster.region) == ("By Admin", "eu-2")

    response = client.post(f"/admin/clusters/cluster/{cluster.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Cluster.objects.filter(pk=cluster.pk).exists()


@pytest.mark.parametrize("model", sorted(set(MODELS) - {"runs/proberun"}))
def test_admin_opens_every_add_page(login: Callable[[str], Client], model: str) -> None:
    response = login("admin").get(f"/admin/{model}/add/")
    assert response.status_code == 200
    assert 'name="_save"' in response.content.decode()
    assert "name" in editable_fields(response)


def test_admin_deletes_a_binding_and_its_periodic_task(login: Callable[[str], Client]) -> None:
    from django_celery_beat.models import PeriodicTask

    binding = BindingFactory(interval_seconds=60)
    binding.refresh_from_db()
    task_id = binding.periodic_task_id
    assert task_id is not None
    client = login("admin")
    response = client.post(f"/admin/scheduling/binding/{binding.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Binding.objects.filter(pk=binding.pk).exists()
    assert not PeriodicTask.objects.filter(pk=task_id).exists()
