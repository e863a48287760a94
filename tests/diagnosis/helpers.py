"""Failed runs as probes leave them, passed through the real post-run pipeline."""

from __future__ import annotations

import uuid
from typing import Any

from django.utils import timezone

from apps.alerts.models import Alert
from apps.catalog.models import Case
from apps.postrun.pipeline import finished_pair_process
from apps.runs.models import ProbeRun
from tests.factories import CaseFactory, CaseTemplateFactory, ProbeRunFactory


def case_of(module: str, name: str = "", kind: str = "probe") -> Case:
    """A case running a built-in module, as seed_catalog makes them."""
    template = CaseTemplateFactory(
        name=f"{module.replace('_', '-')}-{uuid.uuid4().hex[:8]}",
        kind=kind,
        command=["python", "-m", f"probe_sdk.cases.{module}"],
    )
    return CaseFactory(name=name or f"{module}-{uuid.uuid4().hex[:6]}", template=template)


def finish(
    case: Case,
    cluster: Any,
    body: dict[str, Any] | None = None,
    *,
    state: str = "",
    reason: str = "",
    diagnostics: dict[str, Any] | None = None,
) -> tuple[ProbeRun, Alert | None]:
    """A run finished with this report body (or reaped with reason/diagnostics), then the
    pipeline, as the report path or the reaper hands it off."""
    body = body or {"ok": False, "errors": [], "steps": []}
    run = ProbeRunFactory(
        case=case,
        cluster=cluster,
        state=state or ("succeeded" if body.get("ok") else "failed"),
        ok=bool(body.get("ok")),
        finished_at=timezone.now(),
        steps=body.get("steps", []),
        errors=body.get("errors", []),
        reason=reason,
        diagnostics=diagnostics or {},
    )
    alert = finished_pair_process(case_id=case.pk, cluster_id=cluster.pk)
    run.refresh_from_db()
    return run, alert


def failed_step(name: str, error: str) -> dict[str, Any]:
    return {
        "ok": False,
        "errors": [f"step {name} failed: {error}"],
        "steps": [{"name": name, "ok": False, "duration_ms": 100, "error": error}],
    }
