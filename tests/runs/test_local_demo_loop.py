"""The quick start's demo produces real results, end to end.

Real targets as the quick start starts them: the local CA of `local_tls`, the
portal's app served over TLS by daphne, a TLS etcd with client-certificate
auth. The real worker harness (Celery worker + beat, local executor, live
report server) runs the demo binding; the cases succeed, and fail naming the
reason once their targets are stopped.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apps.catalog.models import RenderConfig
from apps.core.local_tls import LocalPki, local_pki_ensure
from apps.runs.models import FINISHED_STATES, ProbeRun, RunState
from apps.scheduling.local_demo import local_demo_setup
from tests.cases.servers import Etcd, Pki, free_port
from tests.runs.test_loop import ROOT, database_url, worker  # noqa: F401 (the worker fixture)
from tests.utils import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("worker")]


def accepting(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def pki(tmp_path: Path) -> LocalPki:
    made, _ = local_pki_ensure(directory=tmp_path / "tls")
    return made


@pytest.fixture
def tls_portal(pki: LocalPki, tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """The portal's app over TLS, served the way deploy/quickstart.sh serves it."""
    port = free_port()
    endpoint = (
        f"ssl:{port}:interface=127.0.0.1:privateKey={pki.server_key}:certKey={pki.server_cert}"
    )
    log = (tmp_path / "daphne.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-e", endpoint, "kubeprobe_site.asgi:application"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url()},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    wait_for(
        lambda: accepting(port) or process.poll() is not None, timeout=60, what="daphne to listen"
    )
    assert process.poll() is None, (tmp_path / "daphne.log").read_text()
    yield port, process
    process.terminate()
    process.wait(timeout=20)
    log.close()


@pytest.fixture
def etcd(pki: LocalPki, tmp_path: Path) -> Iterator[Etcd]:
    server = Etcd(
        tmp_path,
        Pki(pki.ca_cert, pki.server_cert, pki.server_key, pki.client_cert, pki.client_key),
    )
    yield server
    server.stop()


def next_finished(case: str, after: int = 0) -> ProbeRun | None:
    return (
        ProbeRun.objects.filter(case__name=case, pk__gt=after, state__in=FINISHED_STATES)
        .order_by("pk")
        .first()
    )


def step_errors(run: ProbeRun) -> str:
    return " ".join(s.get("error", "") for s in run.steps)


def test_the_demo_cases_succeed_then_fail_with_the_reason(
    pki: LocalPki,
    tls_portal: tuple[int, subprocess.Popen[bytes]],
    etcd: Etcd,
    settings: Any,
) -> None:
    settings.KUBEPROBE_LOCAL_EXECUTOR_ENABLED = True
    port, daphne = tls_portal
    result = local_demo_setup(pki=pki, tls_port=port, etcd_url=etcd.url, interval_seconds=2)
    assert len(result.fired.created) == 3
    cases = ("local-portal-tls", "local-etcd", "local-etcd-tls")

    ok = {case: wait_for(lambda c=case: next_finished(c), timeout=90, what=case) for case in cases}
    for case, run in ok.items():
        assert run.state == RunState.SUCCEEDED, (case, run.state, run.errors, run.steps, run.reason)
    portal_steps = [s["name"] for s in ok["local-portal-tls"].steps]
    assert portal_steps == [
        f"tls 127.0.0.1:{port}",
        f"tls localhost:{port}",
        f"cert file {pki.ca_cert}",
    ]
    assert [s["name"].split()[0] for s in ok["local-etcd"].steps] == [
        "put",
        "get",
        "range",
        "txn",
        "delete",
    ]
    assert 89 < ok["local-etcd-tls"].metrics[f"days_left 127.0.0.1:{etcd.port}"] <= 90
    # The schedule keeps running them.
    later = wait_for(
        lambda: ProbeRun.objects.filter(case__name="local-etcd", trigger="schedule").first(),
        timeout=60,
        what="a scheduled run",
    )
    assert later.binding.name == "local-demo"

    # Targets down: the runs created from now on fail and say why.
    etcd.stop()
    daphne.terminate()
    daphne.wait(timeout=20)
    last = ProbeRun.objects.order_by("-pk").first()
    assert last is not None
    failed = {
        case: wait_for(lambda c=case: next_finished(c, last.pk), timeout=90, what=case)
        for case in cases
    }
    for case, run in failed.items():
        assert run.state == RunState.FAILED, (case, run.state, run.reason)
        assert "refused" in step_errors(run).lower(), (case, run.steps)
    assert failed["local-etcd"].errors[-1] == "RuntimeError: etcd probe failed on 1 of 1 endpoints"
    assert failed["local-portal-tls"].errors[-1] == "RuntimeError: 2 certificate check(s) failed"
    # The demo's render config is what ran: nothing was patched for the test.
    assert RenderConfig.objects.get(case__name="local-etcd").env["ETCD_ENDPOINTS"] == etcd.url
