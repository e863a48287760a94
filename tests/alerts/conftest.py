from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.utils import timezone

from apps.alerts import channels, services
from apps.alerts.models import Alert, AlertRule, Channel
from apps.runs.models import ProbeRun
from tests.alerts.transports.helpers import Receiver
from tests.factories import CaseFactory, ClusterFactory, ProbeRunFactory


@pytest.fixture
def pair(db: None) -> tuple[Any, Any]:
    return CaseFactory(name="pod-lifecycle"), ClusterFactory(name="prod-1")


def add_run(
    case: Any, cluster: Any, ok: bool, error: str = "Failed to create pod sandbox", **kw: Any
) -> ProbeRun:
    now = kw.pop("now", None) or timezone.now()
    steps = kw.pop(
        "steps",
        [{"name": "create", "ok": True, "duration_ms": 20}]
        + ([] if ok else [{"name": "ready", "ok": False, "duration_ms": 900, "error": error}]),
    )
    if not ok:  # as the post-run pipeline's diagnosis step leaves a failed run
        kw.setdefault("root_cause", "runtime")
        kw.setdefault(
            "root_cause_summary", "The container runtime could not create the pod sandbox."
        )
    return ProbeRunFactory(
        case=case,
        cluster=cluster,
        state="succeeded" if ok else "failed",
        ok=ok,
        finished_at=now,
        steps=steps,
        errors=[] if ok else [f"step ready failed: {error}"],
        **kw,
    )


@pytest.fixture
def report(pair: tuple[Any, Any]) -> Callable[..., Alert]:
    """Finish one run of the pair and evaluate it, as the worker would."""
    case, cluster = pair

    def finish(ok: bool, **kw: Any) -> Alert:
        run = add_run(case, cluster, ok, **kw)
        alert = services.alert_evaluate(case_id=case.pk, cluster_id=cluster.pk, now=kw.get("now"))
        assert alert is not None
        alert.refresh_from_db()
        assert run.pk
        return alert

    return finish


@pytest.fixture
def default_rule(db: None) -> AlertRule:
    return AlertRule.objects.get(name="default")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP server on 127.0.0.1 that records what it receives."""
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def webhook(db: None, receiver: Receiver) -> Channel:
    return channels.channel_save(name="ops-hook", kind="webhook", config={"url": receiver.url()})
