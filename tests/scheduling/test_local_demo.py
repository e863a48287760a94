"""`manage.py seed_local_demo`: the quick start's local cluster, cases and binding, idempotent."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django_celery_beat.models import PeriodicTask

from apps.catalog.models import Case, CaseTemplate
from apps.clusters.models import Cluster, Executor
from apps.core.local_tls import LocalPki, local_pki_ensure
from apps.runs.models import ProbeRun
from apps.scheduling.models import Binding
from tests.factories import ClusterFactory

pytestmark = pytest.mark.django_db
DEMO_CASES = ["local-etcd", "local-etcd-tls", "local-portal-tls"]


@pytest.fixture
def pki(tmp_path: Path, settings) -> LocalPki:  # type: ignore[no-untyped-def]
    settings.KUBEPROBE_LOCAL_EXECUTOR_ENABLED = True
    made, _ = local_pki_ensure(directory=tmp_path / "tls")
    return made


def demo(pki: LocalPki, *args: str) -> str:
    out = io.StringIO()
    call_command("seed_local_demo", "--tls-dir", str(pki.directory), *args, stdout=out)
    return out.getvalue()


def test_set_up_twice_leaves_one_copy_and_fires_once_each_time(pki: LocalPki) -> None:
    args = ("--tls-port", "8443", "--etcd", "https://127.0.0.1:12379")
    first = demo(pki, *args)
    assert "cluster local: created" in first and "binding local-demo: created" in first
    assert "Fired local-demo now: 3 runs queued." in first
    assert "/api/v1/runs/?cluster=local" in first
    second = demo(pki, *args, "--no-run-now")
    assert "created" not in second.split("\n", 1)[1] and "updated" not in second
    assert "Fired" not in second

    cluster = Cluster.objects.get()
    assert (cluster.name, cluster.executor) == ("local", Executor.LOCAL)
    assert sorted(
        Case.objects.filter(name__startswith="local-").values_list("name", flat=True)
    ) == (DEMO_CASES)
    binding = Binding.objects.get(name="local-demo")
    assert binding.interval_seconds == 30 and binding.enabled
    assert sorted(binding.cases.values_list("name", flat=True)) == DEMO_CASES
    assert list(binding.clusters.all()) == [cluster]
    assert PeriodicTask.objects.filter(name__startswith="kubeprobe-binding-").count() == 1
    assert ProbeRun.objects.filter(cluster=cluster, trigger="manual").count() == 3
    # The built-in catalog came along.
    assert CaseTemplate.objects.filter(name="etcd-blackbox").exists()

    etcd = Case.objects.get(name="local-etcd")
    assert etcd.template.name == "etcd-blackbox"
    assert etcd.effective_env["ETCD_ENDPOINTS"] == "https://127.0.0.1:12379"
    assert etcd.effective_env["ETCD_CERT"] == str(pki.client_cert)
    portal = Case.objects.get(name="local-portal-tls").effective_env
    assert portal["CERT_ENDPOINTS"] == "127.0.0.1:8443,localhost:8443"
    assert portal["CERT_CA_FILE"] == str(pki.ca_cert)
    assert Case.objects.get(name="local-etcd-tls").effective_env["CERT_ENDPOINTS"] == (
        "127.0.0.1:12379"
    )


def test_new_ports_re_render_and_no_etcd_disables_its_cases(pki: LocalPki) -> None:
    demo(pki, "--tls-port", "8443", "--etcd", "https://127.0.0.1:12379", "--no-run-now")
    out = demo(pki, "--tls-port", "9443", "--interval", "10")
    assert "case local-portal-tls: updated" in out
    assert "case local-etcd: updated  (disabled: no local etcd (no --etcd))" in out
    assert "binding local-demo: updated  (every 10s)" in out
    assert "Fired local-demo now: 1 runs queued." in out
    assert not Case.objects.get(name="local-etcd").enabled
    assert Case.objects.get(name="local-portal-tls").effective_env["CERT_ENDPOINTS"] == (
        "127.0.0.1:9443,localhost:9443"
    )
    assert Binding.objects.get().interval_seconds == 10
    assert ProbeRun.objects.get().case.name == "local-portal-tls"


def test_a_switched_off_demo_stays_off(pki: LocalPki) -> None:
    demo(pki, "--tls-port", "8443", "--no-run-now")
    Binding.objects.filter(name="local-demo").update(enabled=False)
    out = demo(pki, "--tls-port", "8443")
    assert "binding local-demo: unchanged  (disabled; enable it in the admin)" in out
    assert not ProbeRun.objects.exists()


def test_clear_errors(pki: LocalPki, settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CommandError, match="must be an http"):
        demo(pki, "--etcd", "127.0.0.1:2379")
    with pytest.raises(CommandError, match=r"run `manage\.py local_tls` first"):
        call_command("seed_local_demo", "--tls-dir", str(tmp_path / "nothing"))
    ClusterFactory(name="local", executor=Executor.KUBERNETES)
    with pytest.raises(CommandError, match="'local' exists with the kubernetes executor"):
        demo(pki)
    settings.KUBEPROBE_LOCAL_EXECUTOR_ENABLED = False
    with pytest.raises(CommandError, match="KUBEPROBE_LOCAL_EXECUTOR_ENABLED=true"):
        demo(pki)
    assert not Case.objects.filter(name__startswith="local-").exists()
