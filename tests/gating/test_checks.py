"""POST /api/v1/gate/checks against real runs: a Celery worker (separate process)
dispatches the gate's cases to the local executor, the cases report over HTTP to a
live portal, and the check answers when they finish or at its timeout."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from apps.catalog.models import Case, CaseTemplate, RenderConfig
from apps.clusters.models import Cluster, Executor
from apps.runs.models import ProbeRun, RunState
from tests.gating.helpers import gating_set, policy
from tests.runs.test_loop import worker  # noqa: F401 (fixture: the real worker)
from tests.utils import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def operator() -> APIClient:
    # A transactional test's flush removes the roles' permissions: a superuser instead.
    client = APIClient()
    client.force_authenticate(User.objects.create_superuser("release-bot"))
    return client


def local_case(
    name: str, module: str, timeout: int = 30, env: dict[str, str] | None = None
) -> Case:
    template = CaseTemplate.objects.create(
        name=f"{name}-template",
        image="local",
        command=["python", "-m", module],
        timeout_seconds=timeout,
    )
    case = Case.objects.create(name=name, template=template)
    RenderConfig.objects.create(case=case, name=name, env=env or {})
    return case


def test_a_check_runs_the_gates_cases_and_answers_when_they_finish(
    worker: subprocess.Popen[bytes],  # noqa: F811
    operator: APIClient,
    tmp_path: Path,
) -> None:
    fault = tmp_path / "cni-broken"
    fault.touch()
    Cluster.objects.create(name="prod-1", executor=Executor.LOCAL)
    pods = local_case(
        "pod-lifecycle", "tests.gating.cases.fault", env={"GATE_FAULT_FILE": str(fault)}
    )
    basic = local_case("basic", "tests.runs.cases.passing")
    policy([("cni", gating_set(pods, basic))])

    # With the fault: the check waits for both runs and denies, naming the step.
    started = time.monotonic()
    answer = operator.post(
        "/api/v1/gate/checks",
        {"cluster": "prod-1", "component": "cni", "wait": True, "timeout": 90},
    )
    elapsed = time.monotonic() - started
    assert answer.status_code == 200, answer.content
    check = answer.json()
    assert elapsed < 90
    assert check["state"] == "finished" and check["verdict"] == "deny"
    runs = {r["case"]: r for r in check["runs"]}
    assert runs["pod-lifecycle"]["state"] == "failed" and runs["basic"]["state"] == "succeeded"
    assert (
        ProbeRun.objects.filter(pk__in=[r["id"] for r in check["runs"]], trigger="gate").count()
        == 2
    )
    [reason] = check["reasons"]
    assert reason["kind"] == "failing" and reason["step"] == "wait pod ready"
    assert "network plugin not ready" in reason["error"]

    # Fixed: a check without wait answers 202 at once; polling it gives allow.
    fault.unlink()
    accepted = operator.post("/api/v1/gate/checks", {"cluster": "prod-1", "component": "cni"})
    assert accepted.status_code == 202, accepted.content
    assert accepted.json()["state"] == "running" and accepted.json()["verdict"] == ""
    url = accepted["Location"]
    assert url == f"/api/v1/gate/checks/{accepted.json()['id']}"
    done = wait_for(
        lambda: (body := operator.get(url).json())["verdict"] and body,
        timeout=90,
        what="the check to be decided",
    )
    assert done["verdict"] == "allow" and done["state"] == "finished"
    assert all(r["state"] == RunState.SUCCEEDED for r in done["runs"])
    # The gate itself now allows too: the check's runs are the newest results.
    assert (
        operator.get("/api/v1/gate", {"cluster": "prod-1", "component": "cni"}).json()["verdict"]
        == "allow"
    )


def test_a_check_answers_unknown_at_its_timeout(
    worker: subprocess.Popen[bytes],  # noqa: F811
    operator: APIClient,
) -> None:
    Cluster.objects.create(name="prod-1", executor=Executor.LOCAL)
    hanging = local_case("hangs", "tests.runs.cases.silent", timeout=60)
    case_set = gating_set(hanging, name="slow-set")

    started = time.monotonic()
    answer = operator.post(
        "/api/v1/gate/checks",
        {"cluster": "prod-1", "case_set": "slow-set", "wait": True, "timeout": 4},
    )
    elapsed = time.monotonic() - started
    assert answer.status_code == 200, answer.content
    check = answer.json()
    assert 4 <= elapsed < 8, elapsed
    assert check["state"] == "timed_out" and check["verdict"] == "unknown"
    assert check["case_set"] == case_set.name
    [reason] = check["reasons"]
    assert reason["kind"] == "running" and "at the check's timeout" in reason["message"]
