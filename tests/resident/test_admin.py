"""The resident probe admin: the token shown once, validation, actions, and a changelist whose
query count does not grow with thousands of probes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from apps.resident.models import ResidentProbe, ResidentRemoval, ResidentTarget
from apps.resident.tokens import hash_token
from tests.admin.helpers import count_queries, form_data, form_errors, messages_of
from tests.factories import ClusterFactory, ClusterGroupFactory
from tests.resident.helpers import make_probe

pytestmark = pytest.mark.django_db
ADD = "/admin/resident/residentprobe/add/"
LIST = "/admin/resident/residentprobe/"


@pytest.fixture
def admin_client_(client: Client, make_user: Callable[..., Any]) -> Client:
    client.force_login(make_user("admin"))
    return client


def test_adding_a_probe_shows_its_token_once(
    admin_client_: Client, django_capture_on_commit_callbacks: Any
) -> None:
    cluster = ClusterFactory(name="prod-1")
    data = form_data(admin_client_.get(ADD))
    data.update(name="etcd-resident", image="registry.example/r:1", clusters=[str(cluster.pk)])
    with django_capture_on_commit_callbacks() as callbacks:
        answer = admin_client_.post(ADD, data, follow=True)
    assert answer.status_code == 200
    shown = [m for m in messages_of(answer) if "Token of resident probe" in m]
    assert len(shown) == 1
    token = shown[0].split(": ")[1].split(" ")[0]
    probe = ResidentProbe.objects.get(name="etcd-resident")
    assert probe.token_hash == hash_token(token)
    assert probe.alert_case is not None
    assert callbacks, "saving enqueues the apply after commit"
    # The change page never shows it again.
    page = admin_client_.get(f"{LIST}{probe.pk}/change/").content.decode()
    assert token not in page
    # Editing keeps the token.
    data = form_data(admin_client_.get(f"{LIST}{probe.pk}/change/"))
    data.update(interval_ms="200")
    answer = admin_client_.post(f"{LIST}{probe.pk}/change/", data, follow=True)
    assert not [m for m in messages_of(answer) if "Token" in m]
    probe.refresh_from_db()
    assert probe.interval_ms == 200 and probe.token_hash == hash_token(token)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"image": ""}, "image"),
        ({"clusters": []}, "clusters"),
        ({"denoise_k": "5", "denoise_n": "3"}, "denoise_k"),
        ({"interval_ms": "50"}, "interval_ms"),
        ({"env": '{"KUBEPROBE_CLUSTER": "x"}'}, "env"),
    ],
)
def test_the_form_names_bad_fields(
    admin_client_: Client, changes: dict[str, Any], field: str
) -> None:
    cluster = ClusterFactory(name="prod-1")
    data = form_data(admin_client_.get(ADD))
    data.update(name="p", image="registry.example/r:1", clusters=[str(cluster.pk)])
    data.update(changes)
    answer = admin_client_.post(ADD, data)
    assert answer.status_code == 200
    assert field in form_errors(answer) or "__all__" in form_errors(answer), form_errors(answer)
    assert not ResidentProbe.objects.exists()


def test_actions(admin_client_: Client, django_capture_on_commit_callbacks: Any) -> None:
    cluster = ClusterFactory(name="prod-1")
    probe, token = make_probe(clusters=[cluster])
    ResidentTarget.objects.create(
        probe=probe, cluster=cluster, applied_hash="x", applied_namespace="kp"
    )
    with django_capture_on_commit_callbacks() as callbacks:
        answer = admin_client_.post(
            LIST, {"action": "disable_resident_probes", "_selected_action": [probe.pk]}, follow=True
        )
    assert "Disabled 1 resident probes." in messages_of(answer)
    assert callbacks  # the ProbeConfigs go after commit
    probe.refresh_from_db()
    assert not probe.enabled
    answer = admin_client_.post(
        LIST, {"action": "rotate_tokens", "_selected_action": [probe.pk]}, follow=True
    )
    new = next(m for m in messages_of(answer) if "New token" in m).split(": ")[1].split(" ")[0]
    probe.refresh_from_db()
    assert probe.token_hash == hash_token(new) != hash_token(token)
    # Deleting records what must be removed from the cluster.
    answer = admin_client_.post(
        LIST,
        {"action": "delete_selected", "_selected_action": [probe.pk], "post": "yes"},
        follow=True,
    )
    assert answer.status_code == 200
    assert not ResidentProbe.objects.exists()
    assert list(ResidentRemoval.objects.values_list("name", "namespace")) == [
        ("etcd-resident", "kp")
    ]


def test_changelist_queries_stay_flat_with_thousands_of_probes(admin_client_: Client) -> None:
    clusters = [ClusterFactory(name=f"c-{i}") for i in range(3)]
    group = ClusterGroupFactory(name="g")
    for i in range(10):
        make_probe(f"p-{i:04d}", clusters=clusters, groups=[group])
    url = LIST + "?enabled__exact=1&o=1"
    assert admin_client_.get(url).status_code == 200
    small, n_small, _ = count_queries(admin_client_, url)
    assert small.context["cl"].result_count == 10
    # Grow to 2,000 probes in bulk, each with targets.
    probes = ResidentProbe.objects.bulk_create(
        [ResidentProbe(name=f"q-{i:05d}", image="r:1") for i in range(1990)]
    )
    through = ResidentProbe.clusters.through
    through.objects.bulk_create(
        [through(residentprobe_id=p.pk, cluster_id=c.pk) for p in probes for c in clusters]
    )
    big, n_big, sql = count_queries(admin_client_, url)
    assert big.context["cl"].result_count == 2000
    assert n_big == n_small, "\n".join(sql)
    # Search and the case filter work on that table.
    found = admin_client_.get(LIST + "?q=q-0198")
    assert found.context["cl"].result_count == 10  # q-01980 .. q-01989
    assert "runs" in found.content.decode()
