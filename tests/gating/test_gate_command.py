"""`manage.py gate check`: prints the verdict and reasons; the exit code is the verdict."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from apps.gating.models import GateDecision
from apps.runs.models import RunState
from tests.factories import ClusterFactory
from tests.gating.helpers import cases, finished, gating_set, policy
from tests.runs.test_loop import database_url

ROOT = Path(__file__).resolve().parents[2]


def gate(*args: str) -> tuple[int, str]:
    out = StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("gate", "check", *args, stdout=out, stderr=StringIO())
    return int(exited.value.code or 0), out.getvalue()


@pytest.mark.django_db
def test_exit_code_is_the_verdict_and_reasons_are_printed() -> None:
    cluster = ClusterFactory(name="prod-1")
    etcd, dns = cases(2)
    policy([("etcd", gating_set(etcd)), ("coredns", gating_set(dns))])
    finished(etcd, cluster, RunState.FAILED, step="put", error="context deadline exceeded")
    finished(dns, cluster)

    code, out = gate("prod-1", "--component", "etcd")
    assert code == 1
    assert out.splitlines()[0].startswith("DENY: prod-1 / etcd (policy p, decision ")
    assert f"✗ {etcd.name}: failed at step 'put': context deadline exceeded" in out
    assert gate("prod-1", "--component", "coredns")[0] == 0
    GateDecision.objects.all().delete()
    ClusterFactory(name="new-1")
    code, out = gate("new-1")  # the policy's cases have no result there
    assert code == 2 and "no finished run on this cluster yet" in out
    decision = GateDecision.objects.get()
    assert decision.source == "cli" and decision.asked_by.startswith("manage.py gate (")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "No cluster named 'nope'."),
        (["prod-1", "--component", "etdc"], "names 'etdc'"),
        (["prod-1", "--component", "Bad!"], "Must be a lowercase word"),
        (["prod-1", "--wait", "--timeout", "0"], "--timeout: Give between 1 and 900 seconds."),
        (["prod-1", "--case-set", "nope", "--wait"], "no case set named 'nope'"),
        (["prod-1", "--timeout", "soon"], "invalid int value"),
    ],
)
def test_bad_input_exits_3_naming_the_problem(args: list[str], message: str) -> None:
    ClusterFactory(name="prod-1")
    policy([("etcd", gating_set(*cases(1)))])
    with pytest.raises(CommandError, match=message) as refused:
        call_command("gate", "check", *args, stdout=StringIO())
    assert refused.value.returncode == 3


@pytest.mark.django_db(transaction=True)
def test_the_shell_sees_the_exit_codes() -> None:
    cluster = ClusterFactory(name="prod-1")
    [case] = cases(1)
    policy([("", gating_set(case))])
    finished(case, cluster, RunState.FAILED)
    env = {**os.environ, "DATABASE_URL": database_url()}

    def shell(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", "gate", "check", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    denied = shell("prod-1")
    assert denied.returncode == 1, denied.stderr
    assert denied.stdout.startswith("DENY: prod-1")
    bad = shell("prod-2")
    assert bad.returncode == 3 and "No cluster named 'prod-2'." in bad.stderr
    usage = shell()
    assert usage.returncode == 3 and "usage: manage.py gate check CLUSTER" in usage.stderr
