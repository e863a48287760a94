"""The cluster admin treats the kubeconfig as a write-only secret."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import connection
from django.test import Client

from apps.clusters.models import Cluster, Executor
from apps.core.crypto import fingerprint
from tests.admin.helpers import form_data, form_errors, messages_of
from tests.factories import ClusterFactory, make_kubeconfig

pytestmark = pytest.mark.django_db

SECRET = "tok-9f8e7d6c5b4a-never-shown"
SERVER = "https://api.secret-cluster.internal:6443"
NEW_SECRET = "tok-replacement-1234567890"
NEW_SERVER = "https://api.replacement.internal:6443"


@pytest.fixture
def admin_client_(client: Client, make_user: Callable[..., object]) -> Client:
    client.force_login(make_user("admin"))
    return client


@pytest.fixture
def cluster() -> Cluster:
    return ClusterFactory(
        name="secret-one", kubeconfig=make_kubeconfig(server=SERVER, token=SECRET)
    )


def _url(cluster: Cluster) -> str:
    return f"/admin/clusters/cluster/{cluster.pk}/change/"


def _stored_column(cluster: Cluster) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT kubeconfig FROM clusters_cluster WHERE id = %s", [cluster.pk])
        return cursor.fetchone()[0]


def test_change_page_never_shows_the_kubeconfig(admin_client_: Client, cluster: Cluster) -> None:
    response = admin_client_.get(_url(cluster))
    assert response.status_code == 200
    html = response.content.decode()
    assert SECRET not in html
    assert SERVER not in html
    assert "secret-cluster.internal" not in html
    assert "A kubeconfig is set" in html
    assert cluster.kubeconfig_fingerprint in html
    # The textarea is there, and empty.
    assert form_data(response)["kubeconfig"] == ""


def test_changelist_says_set_without_content(admin_client_: Client, cluster: Cluster) -> None:
    html = admin_client_.get("/admin/clusters/cluster/").content.decode()
    assert "secret-one" in html
    assert SECRET not in html and SERVER not in html


def test_kubeconfig_is_encrypted_at_rest(cluster: Cluster) -> None:
    column = _stored_column(cluster)
    assert column and SECRET not in column and "secret-cluster" not in column
    assert Cluster.objects.get(pk=cluster.pk).kubeconfig == make_kubeconfig(
        server=SERVER, token=SECRET
    )


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_view_only_change_page_never_shows_the_kubeconfig(
    client: Client, make_user: Callable[..., object], cluster: Cluster, role: str
) -> None:
    client.force_login(make_user(role))
    response = client.get(_url(cluster))
    assert response.status_code == 200
    html = response.content.decode()
    assert "secret-one" in html
    assert SECRET not in html
    assert SERVER not in html


def test_empty_kubeconfig_keeps_the_stored_one(admin_client_: Client, cluster: Cluster) -> None:
    before = Cluster.objects.get(pk=cluster.pk)
    data = form_data(admin_client_.get(_url(cluster)))
    assert data["kubeconfig"] == ""
    data["display_name"] = "Renamed"
    response = admin_client_.post(_url(cluster), data)
    assert response.status_code == 302, form_errors(response)
    after = Cluster.objects.get(pk=cluster.pk)
    assert after.display_name == "Renamed"
    assert after.kubeconfig == before.kubeconfig
    assert after.kubeconfig_fingerprint == before.kubeconfig_fingerprint != ""


def test_new_kubeconfig_replaces_the_stored_one(admin_client_: Client, cluster: Cluster) -> None:
    new = make_kubeconfig(context="other", server=NEW_SERVER, token=NEW_SECRET)
    data = form_data(admin_client_.get(_url(cluster)))
    data["kubeconfig"] = new
    response = admin_client_.post(_url(cluster), data)
    assert response.status_code == 302, form_errors(response)
    after = Cluster.objects.get(pk=cluster.pk)
    assert after.kubeconfig == new
    assert after.kubeconfig_fingerprint == fingerprint(new) != cluster.kubeconfig_fingerprint
    assert NEW_SECRET not in _stored_column(cluster)
    # ...and the new one is not shown either.
    html = admin_client_.get(_url(cluster)).content.decode()
    assert NEW_SECRET not in html and NEW_SERVER not in html
    assert fingerprint(new) in html


def test_invalid_yaml_is_a_form_error_and_changes_nothing(
    admin_client_: Client, cluster: Cluster
) -> None:
    before = Cluster.objects.get(pk=cluster.pk)
    data = form_data(admin_client_.get(_url(cluster)))
    data["kubeconfig"] = f"apiVersion: v1\nusers: [{{token: {NEW_SECRET}\n  bad: : :"
    data["display_name"] = "Should not be saved"
    response = admin_client_.post(_url(cluster), data)
    assert response.status_code == 200
    errors = form_errors(response)
    assert "kubeconfig" in errors
    assert "not valid YAML" in " ".join(errors["kubeconfig"])
    html = response.content.decode()
    assert "not valid YAML" in html
    # The rejected text is not echoed back into the page either.
    assert NEW_SECRET not in html
    after = Cluster.objects.get(pk=cluster.pk)
    assert after.kubeconfig == before.kubeconfig
    assert after.kubeconfig_fingerprint == before.kubeconfig_fingerprint
    assert after.display_name == before.display_name


def test_kubeconfig_without_server_is_a_form_error(admin_client_: Client, cluster: Cluster) -> None:
    data = form_data(admin_client_.get(_url(cluster)))
    data["kubeconfig"] = make_kubeconfig(server="not-a-url", token=NEW_SECRET)
    response = admin_client_.post(_url(cluster), data)
    assert "server URL" in " ".join(form_errors(response)["kubeconfig"])
    assert Cluster.objects.get(pk=cluster.pk).kubeconfig == cluster.kubeconfig


def test_clear_kubeconfig_on_local_cluster(admin_client_: Client) -> None:
    cluster = ClusterFactory(
        name="local-one", executor=Executor.LOCAL, kubeconfig=make_kubeconfig(token=SECRET)
    )
    assert cluster.has_kubeconfig
    data = form_data(admin_client_.get(_url(cluster)))
    assert "clear_kubeconfig" not in data  # unchecked by default
    data["clear_kubeconfig"] = "on"
    response = admin_client_.post(_url(cluster), data)
    assert response.status_code == 302, form_errors(response)
    after = Cluster.objects.get(pk=cluster.pk)
    assert after.kubeconfig == ""
    assert after.kubeconfig_fingerprint == ""
    assert _stored_column(cluster) == ""
    assert "No kubeconfig is set" in admin_client_.get(_url(cluster)).content.decode()


def test_clear_kubeconfig_refused_for_kubernetes_executor(
    admin_client_: Client, cluster: Cluster
) -> None:
    data = form_data(admin_client_.get(_url(cluster)))
    assert data["executor"] == Executor.KUBERNETES
    data["clear_kubeconfig"] = "on"
    response = admin_client_.post(_url(cluster), data)
    assert response.status_code == 200
    assert "required for the kubernetes executor" in " ".join(form_errors(response)["kubeconfig"])
    assert Cluster.objects.get(pk=cluster.pk).kubeconfig == cluster.kubeconfig


def test_add_cluster_with_kubeconfig(admin_client_: Client) -> None:
    data = form_data(admin_client_.get("/admin/clusters/cluster/add/"))
    kubeconfig = make_kubeconfig(server=NEW_SERVER, token=NEW_SECRET)
    data.update(name="added-one", kubeconfig=kubeconfig, labels='{"env": "prod"}')
    response = admin_client_.post("/admin/clusters/cluster/add/", data, follow=True)
    assert response.status_code == 200
    cluster = Cluster.objects.get(name="added-one")
    assert cluster.kubeconfig == kubeconfig
    assert cluster.kubeconfig_fingerprint == fingerprint(kubeconfig)
    assert cluster.labels == {"env": "prod"}
    assert any("added-one" in m for m in messages_of(response))
    assert NEW_SECRET not in response.content.decode()


def test_add_kubernetes_cluster_without_kubeconfig_is_refused(admin_client_: Client) -> None:
    data = form_data(admin_client_.get("/admin/clusters/cluster/add/"))
    data.update(name="no-kubeconfig", executor=Executor.KUBERNETES)
    response = admin_client_.post("/admin/clusters/cluster/add/", data)
    assert "required for the kubernetes executor" in " ".join(form_errors(response)["kubeconfig"])
    assert not Cluster.objects.filter(name="no-kubeconfig").exists()
