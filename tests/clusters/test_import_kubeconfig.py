from __future__ import annotations

import base64
from io import StringIO
from pathlib import Path

import pytest
import yaml
from django.core.management import CommandError, call_command

from apps.clusters.models import Cluster


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
    call_command("import_kubeconfig", str(write_multi_context(tmp_path)), stdout=out)
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
    call_command("import_kubeconfig", str(path), "--all-contexts", stdout=StringIO())
    assert sorted(Cluster.objects.values_list("name", flat=True)) == ["dev", "prod-admin-prod"]
    path.write_text(path.read_text().replace("https://dev:6443", "https://dev2:6443"))
    out = StringIO()
    call_command("import_kubeconfig", str(path), "--context", "dev", stdout=out)
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
