"""Enable/disable actions update the rows and say what they did."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client
from django_celery_beat.models import PeriodicTask, PeriodicTasks

from apps.clusters.models import Cluster, Executor
from apps.scheduling.models import Binding
from tests.admin.helpers import messages_of
from tests.factories import BindingFactory, ClusterFactory

pytestmark = pytest.mark.django_db

CLUSTERS = "/admin/clusters/cluster/"
BINDINGS = "/admin/scheduling/binding/"


@pytest.fixture
def admin_client_(client: Client, make_user: Callable[..., object]) -> Client:
    client.force_login(make_user("admin"))
    return client


def _act(client: Client, url: str, action: str, pks: list[int]) -> list[str]:
    response = client.post(
        url, {"action": action, "_selected_action": pks, "index": 0}, follow=True
    )
    assert response.redirect_chain and response.redirect_chain[0][1] == 302
    assert response.redirect_chain[-1][0].endswith(url)
    assert response.status_code == 200
    # Reading them on the page that follows also consumes them. The standing
    # warning about disabled local clusters is not the action's message.
    return [m for m in messages_of(response) if not m.startswith("Local clusters will not run")]


def test_disable_and_enable_clusters(admin_client_: Client) -> None:
    clusters = [ClusterFactory(executor=Executor.LOCAL, kubeconfig="") for _ in range(5)]
    chosen = [c.pk for c in clusters[:3]]

    assert _act(admin_client_, CLUSTERS, "disable_clusters", chosen) == ["Disabled 3 clusters."]
    assert set(Cluster.objects.filter(enabled=False).values_list("pk", flat=True)) == set(chosen)

    assert _act(admin_client_, CLUSTERS, "enable_clusters", chosen[:2]) == ["Enabled 2 clusters."]
    assert list(Cluster.objects.filter(enabled=False).values_list("pk", flat=True)) == [chosen[2]]


def test_cluster_actions_are_offered_on_the_changelist(admin_client_: Client) -> None:
    ClusterFactory(executor=Executor.LOCAL, kubeconfig="")
    html = admin_client_.get(CLUSTERS).content.decode()
    assert 'value="enable_clusters"' in html and 'value="disable_clusters"' in html


def test_disable_and_enable_bindings_follow_periodic_tasks(admin_client_: Client) -> None:
    interval = [BindingFactory(interval_seconds=60) for _ in range(3)]
    cron = BindingFactory(interval_seconds=None, cron="*/5 * * * *")
    untouched = BindingFactory(interval_seconds=30)
    manual = BindingFactory(interval_seconds=None)
    for b in [*interval, cron, untouched]:
        b.refresh_from_db()
        assert b.periodic_task is not None and b.periodic_task.enabled
    assert manual.periodic_task is None

    chosen = [*interval, cron, manual]
    before = PeriodicTasks.last_change()
    messages = _act(admin_client_, BINDINGS, "disable_bindings", [b.pk for b in chosen])
    assert messages == ["Disabled 5 bindings."]

    for b in chosen:
        b.refresh_from_db()
        assert b.enabled is False
        if b.periodic_task_id:
            assert PeriodicTask.objects.get(pk=b.periodic_task_id).enabled is False
    untouched.refresh_from_db()
    assert untouched.enabled is True
    assert PeriodicTask.objects.get(pk=untouched.periodic_task_id).enabled is True
    # Beat is told that the schedule changed (bulk updates skip PeriodicTask.save()).
    after = PeriodicTasks.last_change()
    assert after is not None and (before is None or after > before)

    messages = _act(admin_client_, BINDINGS, "enable_bindings", [interval[0].pk, cron.pk])
    assert messages == ["Enabled 2 bindings."]
    enabled = {b.name for b in Binding.objects.filter(enabled=True)}
    assert enabled == {interval[0].name, cron.name, untouched.name}
    assert set(
        PeriodicTask.objects.filter(enabled=True, binding__isnull=False).values_list(
            "binding__name", flat=True
        )
    ) == {interval[0].name, cron.name, untouched.name}
