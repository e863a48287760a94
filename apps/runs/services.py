"""The run loop: create runs, dispatch them, take their reports, close and clean them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import DateTimeField, ExpressionWrapper, F, Q
from django.utils import timezone
from django.utils.crypto import salted_hmac

from apps.catalog.models import Case, ReportProtocol
from apps.clusters.k8s import BreakerOpen, BudgetSpent, call_deadline
from apps.clusters.models import Cluster
from apps.runs import ingest, reports
from apps.runs.executors import ExecutorError, LaunchSpec, RunStatus, get_executor
from apps.runs.executors.base import dns_label
from apps.runs.models import ACTIVE_STATES, FINISHED_STATES, ProbeRun, RunState, Trigger
from apps.runs.signals import run_finished, run_state_changed

logger = logging.getLogger(__name__)

FAILED_STATES = (RunState.FAILED, RunState.ERROR, RunState.TIMED_OUT)
LOG_TAIL_LINES = 50


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def run_token(*, run_id: int, kuberhealthy: bool = False) -> str:
    """The run's bearer token, derived from SECRET_KEY and the run id.

    Every dispatch attempt of a run computes the same token, so a pod created
    by an attempt whose answer was lost still holds a valid one.
    """
    digest = salted_hmac("kubeprobe.run-token", str(run_id), algorithm="sha256").digest()
    if kuberhealthy:  # Kuberhealthy's clients carry a UUID
        return str(uuid.UUID(bytes=digest[:16]))
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


# ---------------------------------------------------------------- creation


@dataclass
class CreateResult:
    created: list[int] = field(default_factory=list)
    skipped: int = 0  # previous run of the same case on the same cluster still active
    duplicates: int = 0  # already created by an earlier identical request (repeated tick)


def redispatch_window(period: timedelta | None) -> timedelta:
    """How long a pending run waits for its dispatch before it is sent again.

    Twice the binding's period: a lost dispatch is noticed within about two
    ticks (each skipped while the run stays active), and frequent schedules
    recover in seconds instead of a fixed minute. Never below the floor, so a
    dispatch queue that is merely busy is not flooded with second copies.
    """
    floor = timedelta(seconds=settings.KUBEPROBE_REDISPATCH_MIN_SECONDS)
    return max(2 * period, floor) if period else floor


def _enqueue_dispatch(run_ids: Sequence[int]) -> None:
    from apps.runs.tasks import dispatch_run

    for run_id in run_ids:
        dispatch_run.delay(run_id)


@transaction.atomic
def runs_create(
    *,
    pairs: Iterable[tuple[Case, Cluster]],
    trigger: str,
    key: str,
    binding_id: int | None = None,
    event_id: int | None = None,
    requested_by_id: int | None = None,
    skip_if_active: bool = True,
    redispatch_after: timedelta | None = None,
) -> CreateResult:
    """Create one pending run per (case, cluster) in bulk and dispatch them after commit.

    `key` identifies the request (a binding's tick, an event, a manual click):
    each run's idempotency key is `key:case:cluster`, so repeating the same
    request creates nothing twice, even from two workers at once.
    `redispatch_after`: see redispatch_window (default: its floor).
    """
    result = CreateResult()
    wanted = {f"{key}:{case.pk}:{cluster.pk}": (case, cluster) for case, cluster in pairs}
    if not wanted:
        return result
    existing = set(
        ProbeRun.objects.filter(idempotency_key__in=wanted).values_list(
            "idempotency_key", flat=True
        )
    )
    result.duplicates = len(existing)
    todo = {k: v for k, v in wanted.items() if k not in existing}
    if skip_if_active and todo:
        case_ids = {case.pk for case, _ in todo.values()}
        cluster_ids = {cluster.pk for _, cluster in todo.values()}
        active = set(
            ProbeRun.objects.filter(
                state__in=ACTIVE_STATES, case_id__in=case_ids, cluster_id__in=cluster_ids
            ).values_list("case_id", "cluster_id")
        )
        before = len(todo)
        todo = {k: (c, k8s) for k, (c, k8s) in todo.items() if (c.pk, k8s.pk) not in active}
        result.skipped = before - len(todo)
    ProbeRun.objects.bulk_create(
        [
            ProbeRun(
                case=case,
                cluster=cluster,
                binding_id=binding_id,
                event_id=event_id,
                trigger=trigger,
                idempotency_key=k,
                requested_by_id=requested_by_id,
                executor=cluster.executor,
                redispatch_after=redispatch_after or redispatch_window(None),
            )
            for k, (case, cluster) in todo.items()
        ],
        batch_size=2000,
        ignore_conflicts=True,  # a racing twin inserted the same keys first
    )
    result.created = list(
        ProbeRun.objects.filter(idempotency_key__in=todo, state=RunState.PENDING).values_list(
            "pk", flat=True
        )
    )
    created = list(result.created)
    transaction.on_commit(lambda: _enqueue_dispatch(created))
    return result


def manual_key() -> str:
    return f"manual:{uuid.uuid4().hex}"


# ---------------------------------------------------------------- dispatch


def run_contract_env(*, run: ProbeRun, token: str, deadline: datetime) -> dict[str, str]:
    """The env every probe gets: the case's rendered env, then the contract on top."""
    base = settings.KUBEPROBE_PUBLIC_URL
    env = dict(run.case.effective_env)
    env.update(
        {
            "KUBEPROBE_REPORT_URL": f"{base}/api/v1/runs/{run.pk}/report",
            "KUBEPROBE_RUN_ID": str(run.pk),
            "KUBEPROBE_TOKEN": token,
            "KUBEPROBE_DEADLINE": str(int(deadline.timestamp())),
            "KUBEPROBE_CLUSTER": run.cluster.name,
        }
    )
    if run.case.template.report_protocol == ReportProtocol.KUBERHEALTHY:
        # What Kuberhealthy v3 injects, so its check images run unchanged.
        env.update(
            {
                "KH_REPORTING_URL": f"{base}/api/v1/kuberhealthy/check",
                "KH_RUN_UUID": token,
                "KH_CHECK_RUN_DEADLINE": str(int(deadline.timestamp())),
                "KH_POD_NAMESPACE": run.cluster.namespace,
            }
        )
    return env


def run_launch_spec(*, run: ProbeRun, token: str, deadline: datetime) -> LaunchSpec:
    case, template = run.case, run.case.template
    return LaunchSpec(
        run_id=run.pk,
        name=f"kp-{dns_label(case.name, 40)}-{run.pk}",
        namespace=run.cluster.namespace,
        image=template.image,
        command=list(template.command),
        args=case.effective_args,
        env=run_contract_env(run=run, token=token, deadline=deadline),
        resources=case.effective_resources,
        service_account=template.service_account,
        timeout_seconds=case.effective_timeout,
        labels={
            "app.kubernetes.io/managed-by": "kubeprobe",
            "kubeprobe.io/installation": dns_label(settings.KUBEPROBE_INSTALLATION, 63),
            "kubeprobe.io/run-id": str(run.pk),
            "kubeprobe.io/case": dns_label(case.name, 63),
            "kubeprobe.io/binding": dns_label(run.binding.name, 63) if run.binding else "none",
            "kubeprobe.io/trigger": run.trigger,
        },
        report_protocol=template.report_protocol,
    )


def _notify(run: ProbeRun, state: str) -> None:
    def send() -> None:
        run_state_changed.send(
            sender=ProbeRun,
            run_id=run.pk,
            case_id=run.case_id,
            cluster_id=run.cluster_id,
            state=state,
        )

    transaction.on_commit(send)


def run_dispatch(*, run_id: int) -> str:
    """Claim a pending run and launch it. Returns what happened, for logs and tests.

    Raises TransientExecutorError (after giving the run back) so the task retries.
    """
    run = (
        ProbeRun.objects.select_related(
            "case__template", "case__render_config", "cluster", "binding"
        )
        .filter(pk=run_id)
        .order_by()  # a primary-key lookup needs no ORDER BY
        .first()
    )
    if run is None or run.state != RunState.PENDING:
        return "not pending"
    token = run_token(
        run_id=run.pk, kuberhealthy=run.case.template.report_protocol == ReportProtocol.KUBERHEALTHY
    )
    now = timezone.now()
    deadline = now + timedelta(seconds=run.case.effective_timeout)
    spec = run_launch_spec(run=run, token=token, deadline=deadline)
    with transaction.atomic():
        claimed = ProbeRun.objects.filter(pk=run_id, state=RunState.PENDING).update(
            state=RunState.DISPATCHED,
            dispatched_at=now,
            deadline=deadline,
            token_hash=hash_token(token),
            executor=run.cluster.executor,
            pod_name=spec.name,
        )
        if not claimed:
            return "claimed elsewhere"
        _notify(run, RunState.DISPATCHED)
    run.state, run.dispatched_at, run.deadline = RunState.DISPATCHED, now, deadline
    try:
        if not run.cluster.enabled:
            raise ExecutorError(f"Cluster '{run.cluster.name}' is disabled.")
        executor = get_executor(run.cluster.executor)
        handle = executor.launch(run.cluster, spec)
    except ExecutorError as exc:
        from apps.runs.executors import TransientExecutorError

        if isinstance(exc, TransientExecutorError):
            # Give the run back so the retry can claim it again.
            # enqueued_at tells the reaper a retry is already on its way.
            ProbeRun.objects.filter(pk=run_id, state=RunState.DISPATCHED).update(
                state=RunState.PENDING,
                token_hash="",
                dispatched_at=None,
                deadline=None,
                enqueued_at=timezone.now(),
            )
            raise
        run_finish(run=run, state=RunState.ERROR, reason=str(exc))
        return "error"
    ProbeRun.objects.filter(pk=run_id).update(pod_name=handle[:253])
    with transaction.atomic():
        if ProbeRun.objects.filter(pk=run_id, state=RunState.DISPATCHED).update(
            state=RunState.RUNNING
        ):
            _notify(run, RunState.RUNNING)
    return "launched"


def run_give_up(*, run_id: int, reason: str) -> None:
    """The dispatch kept failing transiently: end the run as an error.

    Only while it is still pending: if another dispatch claimed it meanwhile,
    that one is in charge now.
    """
    run = ProbeRun.objects.filter(pk=run_id).first()
    if run is not None:
        run_finish(run=run, state=RunState.ERROR, reason=reason, from_states=(RunState.PENDING,))


# ---------------------------------------------------------------- finishing


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


# ---------------------------------------------------------------- reaping


@dataclass
class ReapResult:
    timed_out: int = 0
    failed_early: int = 0
    redispatched: int = 0


def _diagnose(
    executor: Any, cluster: Cluster, run: ProbeRun, status: RunStatus | None
) -> tuple[dict[str, Any], str]:
    diagnostics: dict[str, Any] = {}
    if status is not None:
        diagnostics.update(status.details)
        diagnostics.setdefault("phase", status.phase)
        if status.reason:
            diagnostics["status_reason"] = status.reason
    # Best effort, each part on its own: the run still closes, and a part that
    # failed (no RBAC for events or pods/log, the node's kubelet unreachable)
    # says why instead of hiding the other.
    try:
        diagnostics["events"] = executor.events(cluster, run)
    except Exception as exc:
        diagnostics["events_error"] = _error_text(exc)
    log_tail = ""
    try:
        log_tail = executor.logs(cluster, run, LOG_TAIL_LINES)
    except Exception as exc:
        diagnostics["log_error"] = _error_text(exc)
    return diagnostics, log_tail


def _error_text(exc: Exception) -> str:
    return str(exc) if isinstance(exc, ExecutorError) else f"{type(exc).__name__}: {exc}"


def runs_reap_cluster(*, cluster_id: int, now: datetime | None = None) -> ReapResult:
    """Close this cluster's runs that are past their deadline or whose pod already failed."""
    now = now or timezone.now()
    result = ReapResult()
    grace = timedelta(seconds=settings.KUBEPROBE_REPORT_GRACE_SECONDS)
    runs = list(
        ProbeRun.objects.select_related("cluster", "case__template")
        .filter(cluster_id=cluster_id, state__in=(RunState.DISPATCHED, RunState.RUNNING))
        .order_by("pk")
    )
    if not runs:
        return result
    cluster = runs[0].cluster
    statuses: dict[int, RunStatus] = {}
    poll_error = ""
    executor = None
    try:
        executor = get_executor(cluster.executor)
        statuses = executor.poll(cluster, runs)
    except Exception as exc:  # overdue runs must close even when polling breaks
        if not isinstance(exc, ExecutorError):
            logger.exception("polling runs of cluster %s failed", cluster.name)
        poll_error = f"polling the cluster failed: {exc}"

    def close(run: ProbeRun, status: RunStatus | None, state: str, reason: str) -> bool:
        # run_finish only moves an active run: a report that landed since the poll wins.
        diagnostics, log_tail = _diagnose(executor, cluster, run, status) if executor else ({}, "")
        if poll_error:
            diagnostics["poll_error"] = poll_error
        return run_finish(
            run=run, state=state, reason=reason, diagnostics=diagnostics, log_tail=log_tail, now=now
        )

    for run in runs:
        status = statuses.get(run.pk)
        if run.deadline is not None and now > run.deadline + grace:
            why = f"no report within the case timeout of {run.case.effective_timeout}s"
            if status is not None and status.reason:
                why += f"; pod: {status.reason}"
            elif poll_error:
                why += f"; {poll_error}"
            result.timed_out += close(run, status, RunState.TIMED_OUT, why)
            continue
        if status is None:
            continue
        early_reason = ""
        if status.failed_early:
            early_reason = status.reason
        elif status.phase == "succeeded":
            early_reason = "the probe exited without reporting a result"
        elif (
            status.phase == "missing"
            and run.state == RunState.RUNNING  # launched: the create call has returned
            and run.dispatched_at
            and now - run.dispatched_at > grace
        ):
            early_reason = status.reason or "the pod is gone"
        if early_reason:
            result.failed_early += close(run, status, RunState.ERROR, early_reason)
    return result


def runs_claim_stuck_pending(*, now: datetime | None = None, limit: int = 1000) -> list[int]:
    """Pending runs whose dispatch message was lost (a worker died before acking).

    A run is due once its own redispatch_after has passed since enqueued_at
    (one query: the window is stored on the run). Each is claimed by moving its
    enqueued_at forward, so it is sent again at most once per window however
    many reapers run, and never while a retry of its own is waiting in the
    queue (run_requeued moves enqueued_at to when that retry is delivered).
    """
    now = now or timezone.now()
    due = ExpressionWrapper(F("enqueued_at") + F("redispatch_after"), output_field=DateTimeField())
    with transaction.atomic():
        ids = list(
            ProbeRun.objects.select_for_update(skip_locked=True)
            .alias(due=due)
            .filter(state=RunState.PENDING, due__lt=now)
            .order_by("pk")
            .values_list("pk", flat=True)[:limit]
        )
        ProbeRun.objects.filter(pk__in=ids).update(enqueued_at=now)
    return ids


def run_requeued(*, run_id: int, due: datetime) -> None:
    """A retry of the run's dispatch is queued for `due`: the reaper waits for it."""
    ProbeRun.objects.filter(pk=run_id, state=RunState.PENDING).update(enqueued_at=due)


def clusters_with_active_runs() -> list[int]:
    return list(
        ProbeRun.objects.filter(state__in=(RunState.DISPATCHED, RunState.RUNNING))
        .order_by()
        .values_list("cluster_id", flat=True)
        .distinct()
    )


# ---------------------------------------------------------------- cleanup


# A kept pod is looked at again this often, so newer failures push it out.
KEEP_RECHECK = timedelta(seconds=60)
# A cleanup that failed (cluster unreachable) is retried after this.
CLEANUP_RETRY = timedelta(minutes=5)


def _keep_for_debugging(run: ProbeRun, now: datetime) -> bool:
    """The newest few failed pods per case and cluster stay for a while."""
    if run.state not in FAILED_STATES or settings.KUBEPROBE_KEEP_FAILED_PODS <= 0:
        return False
    keep_for = timedelta(seconds=settings.KUBEPROBE_KEEP_FAILED_POD_SECONDS)
    if run.finished_at is None or now - run.finished_at > keep_for:
        return False
    newer_failures = ProbeRun.objects.filter(
        case_id=run.case_id,
        cluster_id=run.cluster_id,
        state__in=FAILED_STATES,
        finished_at__gt=run.finished_at,
    ).count()
    return newer_failures < settings.KUBEPROBE_KEEP_FAILED_PODS


def _stopped_by(exc: Exception) -> BreakerOpen | BudgetSpent | None:
    """The open breaker or spent budget behind an executor's error, if that is what it was."""
    cause = exc if isinstance(exc, (BreakerOpen, BudgetSpent)) else exc.__cause__
    return cause if isinstance(cause, (BreakerOpen, BudgetSpent)) else None


def _budget_deadline() -> float:
    return time.monotonic() + settings.KUBEPROBE_CLEANUP_BUDGET_SECONDS


def runs_cleanup(
    *, now: datetime | None = None, limit: int = 500, run_ids: Iterable[int] | None = None
) -> int:
    """Delete the pods/processes of finished runs, keeping recent failures. Returns how many.

    keep_until is "not before": a kept run is judged again a minute later (its
    rank among failures changes), a failed cleanup is retried five minutes later.
    Each cluster gets KUBEPROBE_CLEANUP_BUDGET_SECONDS per pass (its calls' timeouts
    are cut to what is left), so one unreachable cluster cannot hold the pass up;
    when its breaker is open or its budget spent, its remaining runs wait
    (keep_until) instead of being tried again on every pass.
    """
    now = now or timezone.now()
    qs = ProbeRun.objects.select_related("cluster").filter(
        cleaned_at__isnull=True, finished_at__isnull=False
    )
    if run_ids is not None:
        qs = qs.filter(pk__in=list(run_ids))
    qs = qs.filter(Q(keep_until__isnull=True) | Q(keep_until__lt=now))
    cleaned = 0
    deadlines: dict[int, float] = {}
    stopped: dict[int, BreakerOpen | BudgetSpent] = {}
    left: dict[int, list[int]] = {}
    for run in qs.order_by("finished_at")[:limit]:
        if run.cluster_id in stopped:
            left.setdefault(run.cluster_id, []).append(run.pk)
            continue
        if _keep_for_debugging(run, now):
            ProbeRun.objects.filter(pk=run.pk).update(keep_until=now + KEEP_RECHECK)
            continue
        deadline = deadlines.setdefault(run.cluster_id, _budget_deadline())
        try:
            with call_deadline(deadline):
                get_executor(run.cluster.executor).cleanup(run.cluster, run)
        except Exception as exc:  # one unreachable cluster must not stop the rest
            stop = _stopped_by(exc)
            if stop is not None:
                stopped[run.cluster_id] = stop
                left.setdefault(run.cluster_id, []).append(run.pk)
                continue
            logger.warning("cleanup of run %s on %s failed: %s", run.pk, run.cluster.name, exc)
            # Kept on the run, so the admin shows why its pod is still there.
            ProbeRun.objects.filter(pk=run.pk).update(
                keep_until=now + CLEANUP_RETRY,
                diagnostics={**run.diagnostics, "cleanup_error": _error_text(exc)},
            )
            continue
        done: dict[str, Any] = {"cleaned_at": now, "keep_until": None}
        if "cleanup_error" in run.diagnostics:  # an earlier attempt failed; this one did not
            done["diagnostics"] = {k: v for k, v in run.diagnostics.items() if k != "cleanup_error"}
        ProbeRun.objects.filter(pk=run.pk).update(**done)
        cleaned += 1
    for cluster_id, run_pks in left.items():
        # An open breaker: after its next attempt at the earliest, and not every
        # pass; a spent budget: the next pass but one, so other runs get their turn.
        stop = stopped[cluster_id]
        wait = CLEANUP_RETRY if isinstance(stop, BreakerOpen) else KEEP_RECHECK
        logger.warning("cleanup left %d run(s) of cluster %s: %s", len(run_pks), cluster_id, stop)
        ProbeRun.objects.filter(pk__in=run_pks).update(keep_until=now + wait)
    return cleaned


def cluster_sweep_orphans(*, cluster: Cluster, now: datetime | None = None) -> int:
    """Remove probe pods whose run is unknown or already cleaned up.

    Pods of active runs, and of finished runs the cleanup has not judged yet
    (kept failures included), are the cleanup's business and stay. Bounded by
    the cluster's cleanup budget; a cluster whose breaker is open is skipped
    (its orphans are found once it answers again).
    """
    now = now or timezone.now()
    executor = get_executor(cluster.executor)
    removed = 0
    try:
        with call_deadline(_budget_deadline()):
            handles = executor.managed_handles(cluster)
            if not handles:
                return 0
            known = {
                r.pk: r
                for r in ProbeRun.objects.filter(pk__in=list(handles)).only(
                    "pk", "state", "cleaned_at", "pod_name", "cluster_id"
                )
            }
            for run_id, handle in handles.items():
                run = known.get(run_id)
                if run is not None and run.cleaned_at is None:
                    continue
                orphan = run or ProbeRun(pk=run_id, cluster=cluster)
                orphan.pod_name = run.pod_name if run is not None and run.pod_name else handle
                executor.cleanup(cluster, orphan)
                removed += 1
    except ExecutorError as exc:
        stop = _stopped_by(exc)
        if stop is None:
            raise
        logger.warning("orphan sweep of cluster %s stopped: %s", cluster.name, stop)
    return removed


def runs_purge(*, now: datetime | None = None, batch: int = 5000, max_batches: int = 100) -> int:
    """Delete finished runs older than the retention, in batches."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.KUBEPROBE_RUN_RETENTION_DAYS)
    deleted = 0
    for _ in range(max_batches):
        ids = list(
            ProbeRun.objects.filter(finished_at__lt=cutoff)
            .order_by("pk")
            .values_list("pk", flat=True)[:batch]
        )
        if not ids:
            break
        ProbeRun.objects.filter(pk__in=ids).delete()
        deleted += len(ids)
    return deleted


def runs_for_manual_request(
    *, cases: Sequence[Case], clusters: Sequence[Cluster], requested_by_id: int | None
) -> CreateResult:
    pairs = [(case, cluster) for case in cases for cluster in clusters]
    return runs_create(
        pairs=pairs, trigger=Trigger.MANUAL, key=manual_key(), requested_by_id=requested_by_id
    )
