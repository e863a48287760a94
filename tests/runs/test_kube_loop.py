"""The whole loop once, on the real control plane, with no mocks inside the portal.

A binding ticks (the beat task's own service); a real Celery worker (separate
process, this test's Postgres database and Redis) dispatches the run into the
local cluster; the test plays the pod: it reads the env the API server stored
and runs probe_sdk with it in a process of its own, which reports a failure
over real HTTP to the live portal. The run is stored failed; the worker judges
the pair (default rule: two failures in a row fire) and pushes the dashboard
cell through the real Redis channel layer, where the test listens.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from channels_redis.core import RedisChannelLayer
from django.conf import settings
from django.utils import timezone

from apps.alerts.models import Alert, AlertState
from apps.catalog.models import Case, CaseTemplate
from apps.clusters.models import Cluster
from apps.dashboard import push
from apps.runs.models import FINISHED_STATES, ProbeRun, RunState
from apps.scheduling.models import Binding
from apps.scheduling.services import binding_fire_schedule
from tests.kube import LocalKube
from tests.runs.helpers import env_of, kube_cluster, pod_of
from tests.runs.test_loop import ROOT, worker  # noqa: F401 (the worker fixture)
from tests.utils import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("worker")]

INTERVAL = 3600  # beat itself never ticks during the test: the test ticks

# What the probe in the pod does: one good step, one failing step, through probe_sdk.
PROBE = """
from probe_sdk import Probe

with Probe() as probe:
    with probe.step("create pod"):
        pass
    with probe.step("wait pod ready"):
        raise RuntimeError("0/3 nodes are available: 3 Insufficient cpu")
"""


class GroupListener:
    """Subscribed to Channels groups on the real Redis layer, as a dashboard consumer is."""

    def __init__(self, groups: list[str]) -> None:
        self.messages: list[dict[str, Any]] = []
        # A layer of its own: the process-wide one may be bound to another loop.
        self.layer = RedisChannelLayer(**settings.CHANNEL_LAYERS["default"]["CONFIG"])
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        subscribed = asyncio.run_coroutine_threadsafe(self._subscribe(groups), self.loop)
        self.channel = subscribed.result(timeout=10)
        self.groups = groups
        self.listening = asyncio.run_coroutine_threadsafe(self._listen(), self.loop)

    async def _subscribe(self, groups: list[str]) -> str:
        channel = str(await self.layer.new_channel())
        for group in groups:
            await self.layer.group_add(group, channel)
        return channel

    async def _listen(self) -> None:
        while True:
            self.messages.append(await self.layer.receive(self.channel))

    def cells(self, **match: Any) -> list[dict[str, Any]]:
        # Re-judged pairs arrive in batches (live.cells, apps/dashboard/push.py); dispatch
        # states one by one (live.cell). Both as single cells, typed as a live.cell.
        found = []
        for m in list(self.messages):
            if m.get("type") == "live.cell":
                found.append(m)
            elif m.get("type") == "live.cells":
                found += [{"type": "live.cell", **cell} for cell in m["cells"]]
        return [m for m in found if all(m.get(k) == v for k, v in match.items())]

    def stop(self) -> None:
        async def leave() -> None:
            for group in self.groups:
                await self.layer.group_discard(group, self.channel)

        self.listening.cancel()
        asyncio.run_coroutine_threadsafe(leave(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture
def listener_for() -> Iterator[Any]:
    made: list[GroupListener] = []

    def make(groups: list[str]) -> GroupListener:
        made.append(GroupListener(groups))
        return made[-1]

    yield make
    for listener in made:
        listener.stop()


def probe_case() -> Case:
    template = CaseTemplate.objects.create(
        name="pod-lifecycle-template",
        image="ghcr.io/kubeprobe/probes:1",
        command=["python", "-c", PROBE],
        timeout_seconds=120,
    )
    return Case.objects.create(name="pod-lifecycle", template=template)


def launched_run(kube: LocalKube, binding: Binding, after: int = 0) -> ProbeRun:
    """The binding's next run, once the worker has launched its pod."""

    def running() -> ProbeRun | None:
        run = ProbeRun.objects.filter(binding=binding, pk__gt=after).order_by("pk").first()
        return run if run is not None and run.state == RunState.RUNNING else None

    return wait_for(running, timeout=60, interval=0.2, what="the worker to launch the pod")


def play_the_pod(kube: LocalKube, run: ProbeRun) -> subprocess.CompletedProcess[str]:
    """Run the pod's command with exactly the env the API server stored for it."""
    pod = pod_of(kube, run)
    [container] = pod["spec"]["containers"]
    return subprocess.run(
        [sys.executable, *container["command"][1:]],
        cwd=ROOT,  # where probe_sdk is importable, as it is in the probe image
        env={"PATH": os.environ["PATH"], **env_of(pod)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def finished(run: ProbeRun) -> ProbeRun | None:
    found = ProbeRun.objects.get(pk=run.pk)
    return found if found.state in FINISHED_STATES else None


def test_tick_dispatch_pod_report_alert_and_dashboard(
    kube: LocalKube, kube_ns: str, listener_for: Any
) -> None:
    cluster: Cluster = kube_cluster(kube, namespace=kube_ns, name="kwok-1")
    case = probe_case()
    binding = Binding.objects.create(name="pods-hourly", interval_seconds=INTERVAL)
    binding.clusters.set([cluster])
    binding.cases.set([case])
    listener = listener_for([push.cluster_group(cluster.pk)])

    # Tick 1: the worker dispatches; the pod is in the cluster.
    first_tick = timezone.now()
    assert len(binding_fire_schedule(binding_id=binding.pk, now=first_tick).created) == 1
    first = launched_run(kube, binding)
    assert first.trigger == "schedule"
    pod = pod_of(kube, first)
    assert pod["metadata"]["labels"]["kubeprobe.io/binding"] == "pods-hourly"
    env = env_of(pod)
    assert env["KUBEPROBE_CLUSTER"] == "kwok-1"
    # The dashboard saw it start (pushed by the worker that dispatched it).
    wait_for(
        lambda: listener.cells(run_id=first.pk, run_state="running"),
        timeout=15,
        what="the running cell",
    )

    # The pod reports its failure through probe_sdk, over HTTP, to the live portal.
    played = play_the_pod(kube, first)
    assert played.returncode == 1, played.stderr  # the failing step's exception, re-raised
    assert "RuntimeError: 0/3 nodes are available" in played.stderr
    first = wait_for(lambda: finished(first), timeout=15, what="the report to be stored")
    assert first.state == RunState.FAILED and first.ok is False
    assert first.errors == [
        "step wait pod ready failed: RuntimeError: 0/3 nodes are available: 3 Insufficient cpu"
    ]
    assert [(s["name"], s["ok"]) for s in first.steps] == [
        ("create pod", True),
        ("wait pod ready", False),
    ]
    # One failure: judged, not yet firing (the default rule wants two in a row).
    judged = wait_for(
        lambda: Alert.objects.filter(case=case, cluster=cluster, latest_run=first).first(),
        timeout=30,
        what="the first failure to be judged",
    )
    assert judged.state == AlertState.OK and judged.latest_state == RunState.FAILED

    # Tick 2, a period later: the same again, and now the alert fires.
    later = first_tick + timedelta(seconds=INTERVAL)
    assert len(binding_fire_schedule(binding_id=binding.pk, now=later).created) == 1
    second = launched_run(kube, binding, after=first.pk)
    assert play_the_pod(kube, second).returncode == 1
    second = wait_for(lambda: finished(second), timeout=15, what="the second report")
    assert second.state == RunState.FAILED

    def firing() -> Alert | None:
        alert = Alert.objects.get(case=case, cluster=cluster)
        return alert if alert.state == AlertState.FIRING else None

    alert = wait_for(firing, timeout=30, what="the default rule to fire")
    assert alert.rule is not None and alert.rule.name == "default"
    assert alert.latest_run_id == second.pk and alert.severity == "warning"
    assert alert.step == "wait pod ready"
    assert "Insufficient cpu" in alert.error
    # ... and the dashboard cell turned red (pushed by the worker that judged it).
    [cell, *_] = wait_for(
        lambda: listener.cells(run_id=second.pk, alert_state="firing"),
        timeout=15,
        what="the firing cell",
    )
    assert cell == {
        "type": "live.cell",
        "case_id": case.pk,
        "cluster_id": cluster.pk,
        "run_state": "failed",
        "alert_state": "firing",
        "severity": "warning",
        "run_id": second.pk,
    }
    Binding.objects.update(enabled=False)
