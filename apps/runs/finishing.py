"""Closing a run without a report: errors at dispatch, timeouts and losses found by
the reaper. Reports are taken by apps/runs/reporting/."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.utils import timezone

from apps.core.said import Said, stored
from apps.runs.models import ACTIVE_STATES, ProbeRun, RunState
from apps.runs.reporting.handoff import run_finished_announce


def run_finish(
    *,
    run: ProbeRun,
    state: str,
    ok: bool | None = None,
    errors: Sequence[str] = (),
    reason: Said | str = "",
    log_tail: str = "",
    diagnostics: dict[str, Any] | None = None,
    now: datetime | None = None,
    from_states: Sequence[str] = ACTIVE_STATES,
) -> bool:
    """Move an active run to a final state, once. False if it had already finished."""
    now = now or timezone.now()
    reason_text, reason_params = stored(reason)
    if ok is None:
        ok = state == RunState.SUCCEEDED
    # One conditional UPDATE is the transaction: whoever moves the run out of
    # an active state first wins (report, reaper, a second worker).
    updated = ProbeRun.objects.filter(pk=run.pk, state__in=from_states).update(
        state=state,
        finished_at=now,
        duration_ms=run.duration_ms_at(now),
        ok=ok,
        errors=list(errors),
        reason=reason_text[:10000],
        reason_params=reason_params,
        log_tail=log_tail[-20000:],
        diagnostics=diagnostics or {},
    )
    if not updated:
        return False
    run_finished_announce(
        run_id=run.pk, case_id=run.case_id, cluster_id=run.cluster_id, state=state, ok=ok
    )
    run.state, run.finished_at, run.ok = state, now, ok
    return True
