"""Run dispatch: the probe's contract env and launch spec, claiming a pending run, launching it."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.catalog.models import ReportProtocol
from apps.core.crypto import hash_token
from apps.core.logcontext import log_context_update
from apps.core.said import Said
from apps.runs.executors import ExecutorError, LaunchSpec, get_executor
from apps.runs.executors.base import dns_label
from apps.runs.finishing import run_finish
from apps.runs.models import ProbeRun, RunState
from apps.runs.signals import run_state_changed
from apps.runs.tokens import run_token

logger = logging.getLogger(__name__)


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
                "KH_REPORTING_URL": f"{base}/check",
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


def notify_state(run: ProbeRun, state: str) -> None:
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
    log_context_update(run_id=run.pk, cluster=run.cluster.name)
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
        notify_state(run, RunState.DISPATCHED)
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
        logger.warning("dispatch failed, the run ends in error: %s", exc)
        run_finish(run=run, state=RunState.ERROR, reason=str(exc))
        return "error"
    ProbeRun.objects.filter(pk=run_id).update(pod_name=handle[:253])
    with transaction.atomic():
        if ProbeRun.objects.filter(pk=run_id, state=RunState.DISPATCHED).update(
            state=RunState.RUNNING
        ):
            notify_state(run, RunState.RUNNING)
    return "launched"


def run_give_up(*, run_id: int, reason: Said | str) -> None:
    """The dispatch kept failing transiently: end the run as an error.

    Only while it is still pending: if another dispatch claimed it meanwhile,
    that one is in charge now.
    """
    run = ProbeRun.objects.filter(pk=run_id).first()
    if run is not None:
        run_finish(run=run, state=RunState.ERROR, reason=reason, from_states=(RunState.PENDING,))
