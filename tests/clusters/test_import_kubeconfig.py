"""manage.py import_kubeconfig: parsing and inlining (files made up here), and
imports of the real local cluster's kubeconfigs, whose stored copies must work."""

from __future__ import annotations

import base64
import shutil
import socket
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest
import yaml
from django.core.management import CommandError, call_command
from kubernetes.client.exceptions import ApiException

from apps.clusters.k8s import clear_client_cache, cluster_client
from apps.clusters.models import ApiStatus, Cluster
from tests.kube import LocalKube


def write_multi_context(tmp_path: Path) -> Path:
    (tmp_path / "ca.crt").write_bytes(b"-----BEGIN CERTIFICATE-----\nfake\n")
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "prod-admin@prod",
        "clusters": [
            {
                "name": "prod",
                "cluster": {"server": "https://prod:6443", "certificate-authority": "ca.crt"},
            },
            {"name": "dev", "cluster": {"server": "https://dev:6443"}},
        ],
        "users": [
            {"name": "prod-admin", "user": {"token": "prod-token"}},
            {"name": "dev-admin", "user": {"token": "dev-token"}},
        ],
        "contexts": [
            {"name": "prod-admin@prod", "context": {"cluster": "prod", "user": "prod-admin"}},
            {"name": "dev", "context": {"cluster": "dev", "user": "dev-admin"}},
        ],
    }
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.django_db
def test_imports_current_context_with_files_inlined(tmp_path: Path) -> None:
    out = StringIO()
    call_command("import_kubeconfig", str(write_multi_context(tmp_path)), "--no-check", stdout=out)
    cluster = Cluster.objects.get()
    assert cluster.name == "prod-admin-prod"
    assert cluster.context == "prod-admin@prod"
    stored = yaml.safe_load(cluster.kubeconfig)
    assert [c["name"] for c in stored["contexts"]] == ["prod-admin@prod"]
    assert "dev-token" not in cluster.kubeconfig  # only this context's user
    ca = stored["clusters"][0]["cluster"]["certificate-authority-data"]
    assert base64.b64decode(ca).startswith(b"-----BEGIN CERTIFICATE-----")
    assert "Created cluster prod-admin-prod" in out.getvalue()


@pytest.mark.django_db
def test_all_contexts_then_reimport_updates(tmp_path: Path) -> None:
    path = write_multi_context(tmp_path)
    call_command("import_kubeconfig", str(path), "--all-contexts", "--no-check", stdout=StringIO())
    assert sorted(Cluster.objects.values_list("name", flat=True)) == ["dev", "prod-admin-prod"]
    path.write_text(path.read_text().replace("https://dev:6443", "https://dev2:6443"))
    out = StringIO()
    call_command("import_kubeconfig", str(path), "--context", "dev", "--no-check", stdout=out)
    assert "Updated cluster dev" in out.getvalue()
    assert "https://dev2:6443" in Cluster.objects.get(name="dev").kubeconfig
    assert Cluster.objects.count() == 2


@pytest.mark.django_db
def test_unknown_context_and_missing_file_are_clear_errors(tmp_path: Path) -> None:
    path = write_multi_context(tmp_path)
    with pytest.raises(CommandError, match="Context 'nope' is not in the kubeconfig"):
        call_command("import_kubeconfig", str(path), "--context", "nope")
    with pytest.raises(CommandError, match="No kubeconfig file"):
        call_command("import_kubeconfig", str(tmp_path / "missing"))
    (tmp_path / "ca.crt").unlink()
    with pytest.raises(CommandError, match="cannot read certificate-authority"):
        call_command("import_kubeconfig", str(path))
    assert not Cluster.objects.exists()


# ---------------------------------------------------------------- the real cluster


@pytest.fixture
def fresh_clients() -> Iterator[None]:
    yield
    clear_client_cache()


def node_names(cluster: Cluster) -> list[str]:
    client = cluster_client(cluster)
    nodes = client.call_json(client.core.list_node)["items"]
    return sorted(n["metadata"]["name"] for n in nodes)


@pytest.mark.django_db
def test_the_local_clusters_own_kubeconfig_imports_and_works(
    kube: LocalKube, fresh_clients: None
) -> None:
    out = StringIO()
    call_command("import_kubeconfig", str(kube.kubeconfig_path), stdout=out)
    cluster = Cluster.objects.get()
    assert (cluster.name, cluster.context, cluster.executor) == ("local", "local", "kubernetes")
    stored = yaml.safe_load(cluster.kubeconfig)
    assert stored["clusters"][0]["cluster"]["server"] == kube.server
    assert node_names(cluster) == ["kwok-node-0", "kwok-node-1", "kwok-node-2"]
    assert out.getvalue().splitlines() == [
        "Created cluster local (context local)",
        "  local: API ok, v1.37.2",
    ]
    assert (cluster.api_status, cluster.api_version) == (ApiStatus.OK, "v1.37.2")
    assert Cluster.objects.filter(api_status="ok", api_version="v1.37.2").count() == 1


def write_real_multi_context(kube: LocalKube, kube_ns: str, tmp_path: Path) -> Path:
    """A ~/.kube/config as people keep them: the admin with certificate files next to
    it (relative paths), a service account with a token, and a cluster that is down."""
    cert, key = kube.pki.issue("imported-admin", "imported-admin", "system:masters")
    for source, name in ((kube.ca_path, "ca.crt"), (cert, "admin.crt"), (key, "admin.key")):
        shutil.copyfile(source, tmp_path / name)
    reader = kube.service_account_kubeconfig(
        kube_ns, "reader", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]
    )
    token = yaml.safe_load(reader)["users"][0]["user"]["token"]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        down = f"https://127.0.0.1:{sock.getsockname()[1]}"
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "admin@local",
        "clusters": [
            {
                "name": "local",
                "cluster": {"server": kube.server, "certificate-authority": "ca.crt"},
            },
            {"name": "gone", "cluster": {"server": down, "certificate-authority": "ca.crt"}},
        ],
        "users": [
            {
                "name": "admin",
                "user": {"client-certificate": "admin.crt", "client-key": "admin.key"},
            },
            {"name": "reader", "user": {"token": token}},
        ],
        "contexts": [
            {"name": "admin@local", "context": {"cluster": "local", "user": "admin"}},
            {
                "name": f"system:serviceaccount:{kube_ns}:reader",
                "context": {"cluster": "local", "user": "reader", "namespace": kube_ns},
            },
            {"name": "gone", "context": {"cluster": "gone", "user": "admin"}},
        ],
    }
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.django_db
def test_every_context_of_a_real_multi_context_file_imports_with_its_own_identity(
    kube: LocalKube, kube_ns: str, tmp_path: Path, fresh_clients: None
) -> None:
    path = write_real_multi_context(kube, kube_ns, tmp_path)
    out = StringIO()
    call_command(
        "import_kubeconfig", str(path), "--all-contexts", "--namespace", kube_ns, stdout=out
    )
    sa_name = f"system-serviceaccount-{kube_ns}-reader"[:63].strip("-")
    clusters = {c.name: c for c in Cluster.objects.all()}
    assert set(clusters) == {"admin-local", sa_name, "gone"}
    admin, reader, gone = clusters["admin-local"], clusters[sa_name], clusters["gone"]
    assert admin.context == "admin@local" and reader.context.endswith(":reader")
    assert {c.namespace for c in clusters.values()} == {kube_ns}
    for cluster in (admin, reader):
        stored = yaml.safe_load(cluster.kubeconfig)
        assert stored["clusters"][0]["cluster"]["server"] == kube.server
        assert "certificate-authority-data" in stored["clusters"][0]["cluster"]
    # The files were inlined: the stored copy works with the originals gone.
    for name in ("ca.crt", "admin.crt", "admin.key"):
        (tmp_path / name).unlink()
    assert node_names(admin) == ["kwok-node-0", "kwok-node-1", "kwok-node-2"]
    client = cluster_client(reader)
    assert client.call_json(client.core.list_namespaced_pod, kube_ns)["items"] == []
    with pytest.raises(ApiException) as denied:  # the reader's token, not the admin's
        client.call(client.core.list_node)
    assert denied.value.status == 403
    # Each import was checked; the cluster that is down was imported all the same.
    lines = out.getvalue().splitlines()
    assert "  admin-local: API ok, v1.37.2" in lines
    assert f"  {sa_name}: API ok, v1.37.2" in lines
    [gone_line] = [line for line in lines if line.startswith("  gone: ")]
    assert gone_line.startswith("  gone: API unreachable: ") and "Connection refused" in gone_line
    gone.refresh_from_db()
    assert gone.api_status == ApiStatus.UNREACHABLE and "Connection refused" in gone.api_error


@pytest.mark.django_db
def test_no_check_leaves_the_api_alone(kube: LocalKube) -> None:
    out = StringIO()
    call_command("import_kubeconfig", str(kube.kubeconfig_path), "--no-check", stdout=out)
    assert out.getvalue() == "Created cluster local (context local)\n"
    cluster = Cluster.objects.get()
    assert (cluster.api_status, cluster.api_checked_at) == (ApiStatus.NOT_CHECKED, None)
