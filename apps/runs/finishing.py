"""Run finishing: moving a run to its final state once, and taking probes' reports."""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from apps.runs import ingest, reports
from apps.runs.models import ACTIVE_STATES, FINISHED_STATES, ProbeRun, RunState
from apps.runs.signals import run_finished, run_state_changed
from apps.runs.tokens import hash_token


def run_finish(
    *,
    run: ProbeRun,
    state: str,
    ok: bool | None = None,
    errors: Sequence[str] = (),
    steps: Sequence[dict[str, Any]] = (),
    metrics: dict[str, float] | None = None,
    reason: str = "",
    log_tail: str = "",
    diagnostics: dict[str, Any] | None = None,
    now: datetime | None = None,
    from_states: Sequence[str] = ACTIVE_STATES,
) -> bool:
    """Move an active run to a final state, once. False if it had already finished."""
    now = now or timezone.now()
    started = run.dispatched_at or run.created_at
    duration = max(0, int((now - started).total_seconds() * 1000)) if started else None
    if ok is None:
        ok = state == RunState.SUCCEEDED
    # One conditional UPDATE is the transaction: whoever moves the run out of
    # an active state first wins (report, reaper, a second worker).
    updated = ProbeRun.objects.filter(pk=run.pk, state__in=from_states).update(
        state=state,
        finished_at=now,
        duration_ms=duration,
        ok=ok,
        errors=list(errors),
        steps=list(steps),
        metrics=dict(metrics or {}),
        reason=reason[:10000],
        log_tail=log_tail[-20000:],
        diagnostics=diagnostics or {},
    )
    if not updated:
        return False
    _finished_signals(run.pk, run.case_id, run.cluster_id, state=state, ok=ok)
    run.state, run.finished_at, run.ok = state, now, ok
    return True


class ReportRejected(Exception):
    """The report cannot be taken; `status` is the HTTP answer."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(str(detail))
        self.status = status
        self.detail = detail


def _check_open(run: ProbeRun, now: datetime, gone_status: int = 410) -> None:
    if run.state in FINISHED_STATES:
        raise ReportRejected(
            409,
            {"detail": f"run {run.pk} already finished as {run.state}; the first result stays."},
        )
    grace = timedelta(seconds=settings.KUBEPROBE_REPORT_GRACE_SECONDS)
    if run.deadline is None or now > run.deadline + grace:
        raise ReportRejected(
            gone_status, {"detail": f"run {run.pk} is past its deadline; the report is not taken."}
        )


def _store(run: ProbeRun, report: reports.Report, now: datetime) -> None:
    state = RunState.SUCCEEDED if report.ok else RunState.FAILED
    if not run_finish(
        run=run,
        state=state,
        ok=report.ok,
        errors=report.errors,
        steps=report.steps,
        metrics=report.metrics,
        now=now,
    ):
        raise ReportRejected(
            409, {"detail": f"run {run.pk} already finished; the first result stays."}
        )


def _finished_signals(run_id: int, case_id: int, cluster_id: int, state: str, ok: bool) -> None:
    """Tell alerting and dashboards, after commit; a failing receiver is logged, not raised
    (it must not turn a stored report into an error answer)."""

    def send() -> None:
        run_state_changed.send_robust(
            sender=ProbeRun, run_id=run_id, case_id=case_id, cluster_id=cluster_id, state=state
        )
        run_finished.send_robust(
            sender=ProbeRun,
            run_id=run_id,
            case_id=case_id,
            cluster_id=cluster_id,
            state=state,
            ok=ok,
        )

    # In autocommit the report is committed already: send at once (on_commit
    # would too, but first opens this thread's connection to ask about autocommit).
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(send)
    else:
        send()


def _why_not_stored(run_id: int, token: str, now: datetime) -> ReportRejected:
    """The report matched nothing: say why (404, 401, 409 or 410)."""
    run = (
        ProbeRun.objects.only("pk", "state", "token_hash", "deadline")
        .filter(pk=run_id)
        .order_by()  # a primary-key lookup needs no ORDER BY
        .first()
    )
    if run is None:
        return ReportRejected(404, {"detail": f"no run {run_id}"})
    if (
        not token
        or not run.token_hash
        or not hmac.compare_digest(hash_token(token), run.token_hash)
    ):
        return ReportRejected(401, {"detail": "missing or wrong run token"})
    try:
        _check_open(run, now)
    except ReportRejected as exc:
        return exc
    return ReportRejected(
        409, {"detail": f"run {run_id} already finished; the first result stays."}
    )


def run_report(*, run_id: int, token: str, body: bytes) -> str:
    """Take a probe's report (KubeProbe protocol); returns the run's new state.

    The store is one conditional UPDATE (token hash, active state, deadline);
    only when it matches nothing is the run read to name the reason.
    Raises ReportRejected.
    """
    if len(body) > settings.KUBEPROBE_MAX_REPORT_BYTES:
        raise ReportRejected(413, {"detail": "report body is over 256 KiB"})
    with ingest.arriving():
        try:
            report = reports.validate(reports.parse_json(body))
        except reports.InvalidReport as exc:
            raise ReportRejected(400, exc.errors) from exc
        now = timezone.now()
        item = ingest.Pending(
            run_id=run_id, token_hash=hash_token(token) if token else "", report=report, now=now
        )
        try:
            stored = ingest.store(item)
        except (TimeoutError, *ingest.DB_ERRORS) as exc:
            raise ReportRejected(
                503, {"detail": f"the report could not be stored now, retry: {type(exc).__name__}"}
            ) from exc
    if stored is None:
        raise _why_not_stored(run_id, token, now)
    state = RunState.SUCCEEDED if report.ok else RunState.FAILED
    _finished_signals(run_id, *stored, state=state, ok=report.ok)
    return state


def run_report_kuberhealthy(*, run_uuid: str, body: bytes) -> ProbeRun:
    """Take a report the way Kuberhealthy v3 does: the kh-run-uuid header names the run.

    Kuberhealthy answers 400 for a missing, unknown or already used uuid and
    for a bad body, 410 after the run's deadline, 200 when stored.
    """
    if len(body) > settings.KUBEPROBE_MAX_REPORT_BYTES:
        raise ReportRejected(413, "report body is over 256 KiB")
    if not run_uuid:
        raise ReportRejected(400, "missing kh-run-uuid header")
    run = (
        ProbeRun.objects.only(
            "pk",
            "state",
            "token_hash",
            "deadline",
            "dispatched_at",
            "created_at",
            "case_id",
            "cluster_id",
        )
        .filter(token_hash=hash_token(run_uuid))
        .order_by()
        .first()
    )
    if run is None or run.state in FINISHED_STATES:
        raise ReportRejected(400, f"run uuid {run_uuid} is invalid or expired")
    now = timezone.now()
    _check_open(run, now)
    try:
        report = reports.validate_kuberhealthy(reports.parse_json(body))
    except reports.InvalidReport as exc:
        raise ReportRejected(400, str(exc)) from exc
    try:
        _store(run, report, now)
    except ReportRejected as exc:
        raise ReportRejected(400, f"run uuid {run_uuid} is invalid or expired") from exc
    except DatabaseError as exc:
        raise ReportRejected(503, "the report could not be stored now, retry") from exc
    return run
