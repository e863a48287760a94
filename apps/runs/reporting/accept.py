"""Taking a report: find the run, check it may still report, validate, store once.

Both protocols end in the same write path (store.store, one conditional
UPDATE) and the same hand-off to the post-run pipeline. A report that cannot
be taken raises ReportRefused with a reason; each protocol's HTTP answer for
that reason is chosen in http.py, not here.
"""

from __future__ import annotations

import enum
import hmac
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from apps.core.crypto import hash_token
from apps.runs.models import FINISHED_STATES, ProbeRun, RunState
from apps.runs.reporting import protocols, store
from apps.runs.reporting.handoff import run_finished_announce


class Refusal(enum.Enum):
    TOO_LARGE = "too large"
    INVALID = "invalid"
    NO_RUN = "no run"
    BAD_TOKEN = "bad token"  # noqa: S105 (a reason, not a secret)
    FINISHED = "finished"
    PAST_DEADLINE = "past deadline"
    UNAVAILABLE = "unavailable"


class ReportRefused(Exception):
    """The report is not taken: `reason` says why, `detail` says it to the probe."""

    def __init__(self, reason: Refusal, detail: Any) -> None:
        super().__init__(str(detail))
        self.reason = reason
        self.detail = detail


def too_large() -> ReportRefused:
    limit = settings.KUBEPROBE_MAX_REPORT_BYTES
    return ReportRefused(Refusal.TOO_LARGE, f"report body is over {limit // 1024} KiB")


def _closed(run: ProbeRun, now: datetime) -> ReportRefused | None:
    """Why this run takes no report any more, if it doesn't."""
    if run.state in FINISHED_STATES:
        return ReportRefused(
            Refusal.FINISHED,
            f"run {run.pk} already finished as {run.state}; the first result stays.",
        )
    grace = timedelta(seconds=settings.KUBEPROBE_REPORT_GRACE_SECONDS)
    if run.deadline is None or now > run.deadline + grace:
        return ReportRefused(
            Refusal.PAST_DEADLINE, f"run {run.pk} is past its deadline; the report is not taken."
        )
    return None


def _why_not_stored(run_id: int, token: str, now: datetime) -> ReportRefused:
    """The store matched nothing: read the run once to say why."""
    run = (
        ProbeRun.objects.only("pk", "state", "token_hash", "deadline")
        .filter(pk=run_id)
        .order_by()  # a primary-key lookup needs no ORDER BY
        .first()
    )
    if run is None:
        return ReportRefused(Refusal.NO_RUN, f"no run {run_id}")
    if (
        not token
        or not run.token_hash
        or not hmac.compare_digest(hash_token(token), run.token_hash)
    ):
        return ReportRefused(Refusal.BAD_TOKEN, "missing or wrong run token")
    return _closed(run, now) or ReportRefused(
        Refusal.FINISHED, f"run {run_id} already finished; the first result stays."
    )


def _store(run_id: int, token_hash: str, report: protocols.Report, now: datetime) -> bool:
    """The one write path of both protocols; True if this report finished the run."""
    item = store.Pending(run_id=run_id, token_hash=token_hash, report=report, now=now)
    try:
        stored = store.store(item)
    except (TimeoutError, *store.DB_ERRORS) as exc:
        raise ReportRefused(
            Refusal.UNAVAILABLE,
            f"the report could not be stored now, retry: {type(exc).__name__}",
        ) from exc
    if stored is None:
        return False
    run_finished_announce(
        run_id=run_id, case_id=stored[0], cluster_id=stored[1], state=_state(report), ok=report.ok
    )
    return True


def _state(report: protocols.Report) -> str:
    return RunState.SUCCEEDED if report.ok else RunState.FAILED


def run_report(*, run_id: int, token: str, body: bytes) -> str:
    """Take a KubeProbe report for a run; returns the run's new state.

    The store is one conditional UPDATE (token hash, active state, deadline);
    only when it matches nothing is the run read to name the reason.
    """
    if len(body) > settings.KUBEPROBE_MAX_REPORT_BYTES:
        raise too_large()
    with store.arriving():
        try:
            report = protocols.validate(protocols.parse_json(body))
        except protocols.InvalidReport as exc:
            raise ReportRefused(Refusal.INVALID, exc.errors) from exc
        now = timezone.now()
        if not _store(run_id, hash_token(token) if token else "", report, now):
            raise _why_not_stored(run_id, token, now)
    return _state(report)


def run_report_kuberhealthy(*, run_uuid: str, body: bytes) -> int:
    """Take a Kuberhealthy v3 report: the kh-run-uuid header is the run's token.

    Returns the run's id.
    """
    if len(body) > settings.KUBEPROBE_MAX_REPORT_BYTES:
        raise too_large()
    if not run_uuid:
        raise ReportRefused(Refusal.NO_RUN, "missing kh-run-uuid header")
    token_hash = hash_token(run_uuid)
    run = (
        ProbeRun.objects.only("pk", "state", "deadline")
        .filter(token_hash=token_hash)
        .order_by()
        .first()
    )
    # Kuberhealthy says the same of an unknown and of an already used uuid.
    spent = ReportRefused(Refusal.NO_RUN, f"run uuid {run_uuid} is invalid or expired")
    if run is None or run.state in FINISHED_STATES:
        raise spent
    now = timezone.now()
    closed = _closed(run, now)
    if closed is not None:
        raise closed
    try:
        report = protocols.validate_kuberhealthy(protocols.parse_json(body))
    except protocols.InvalidReport as exc:
        raise ReportRefused(Refusal.INVALID, str(exc)) from exc
    if not _store(run.pk, token_hash, report, now):
        raise spent  # finished meanwhile, by another report or the reaper
    return run.pk
