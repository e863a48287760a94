"""A circuit breaker per cluster: stop calling an API server that does not answer.

After KUBEPROBE_BREAKER_FAILURES consecutive failures to reach a cluster's API
server (refused, timed out, dropped, TLS) the breaker opens: calls to that
cluster fail at once (no worker waits for a connect timeout) until its
next probe time. Then exactly one call is let through (half-open), claimed with
a conditional UPDATE so concurrent workers do not all try: an answer, any HTTP
status, closes the breaker; another failure pushes the next probe time on.

The state lives on the Cluster row (breaker_* fields); these functions are
the only writers. apps/clusters/k8s.py calls them from ClusterClient.call,
so every caller (dispatch, reaper, cleanup, orphan sweep, the API check) counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from apps.clusters.models import Cluster

ERROR_CHARS = 300


@dataclass(frozen=True)
class BreakerState:
    failures: int = 0
    open_since: datetime | None = None
    next_probe_at: datetime | None = None
    last_error: str = ""

    @property
    def is_open(self) -> bool:
        return self.open_since is not None

    @property
    def clean(self) -> bool:
        """Closed with no failure counted: a success has nothing to reset."""
        return self.open_since is None and self.failures == 0


CLOSED = BreakerState()
_FIELDS = ("breaker_failures", "breaker_open_since", "breaker_next_probe_at", "breaker_last_error")


def breaker_state(cluster: Cluster) -> BreakerState:
    """The breaker as the loaded cluster row holds it (no query)."""
    return BreakerState(
        failures=cluster.breaker_failures,
        open_since=cluster.breaker_open_since,
        next_probe_at=cluster.breaker_next_probe_at,
        last_error=cluster.breaker_last_error,
    )


def breaker_read(cluster_id: int) -> BreakerState:
    row = Cluster.objects.filter(pk=cluster_id).values(*_FIELDS).order_by().first()
    if row is None:
        return CLOSED
    return BreakerState(*(row[f] for f in _FIELDS))


def _probe_interval() -> timedelta:
    return timedelta(seconds=settings.KUBEPROBE_BREAKER_PROBE_SECONDS)


def breaker_record_failure(
    cluster_id: int, reason: str, now: datetime | None = None
) -> BreakerState:
    """Count one failure to reach the cluster; open the breaker at the threshold.

    One UPDATE whose conditions read the row as it was, so concurrent failures
    each count and only the one reaching the threshold sets open_since. An
    open breaker (a failed half-open probe) gets its next probe time pushed.
    """
    now = now or timezone.now()
    at_threshold = Q(breaker_failures__gte=max(0, settings.KUBEPROBE_BREAKER_FAILURES - 1))
    Cluster.objects.filter(pk=cluster_id).update(
        breaker_failures=F("breaker_failures") + 1,
        breaker_last_error=reason[:ERROR_CHARS],
        breaker_open_since=Case(
            When(at_threshold & Q(breaker_open_since__isnull=True), then=Value(now)),
            default=F("breaker_open_since"),
        ),
        breaker_next_probe_at=Case(
            When(at_threshold, then=Value(now + _probe_interval())),
            default=F("breaker_next_probe_at"),
        ),
    )
    return breaker_read(cluster_id)


def breaker_record_success(cluster_id: int) -> None:
    """The API server answered: close the breaker and forget the failures."""
    Cluster.objects.filter(pk=cluster_id).filter(
        Q(breaker_failures__gt=0) | Q(breaker_open_since__isnull=False)
    ).update(
        breaker_failures=0,
        breaker_open_since=None,
        breaker_next_probe_at=None,
        breaker_last_error="",
    )


def breaker_claim_probe(cluster_id: int, now: datetime | None = None) -> bool:
    """Take the one half-open attempt of this interval. True for exactly one caller.

    The conditional UPDATE moves the next probe time on, so whoever comes after
    (another worker, another thread) finds it in the future and fails fast.
    """
    now = now or timezone.now()
    return bool(
        Cluster.objects.filter(
            pk=cluster_id, breaker_open_since__isnull=False, breaker_next_probe_at__lte=now
        ).update(breaker_next_probe_at=now + _probe_interval())
    )


def breaker_message(state: BreakerState) -> str:
    """What a run, a check or a dashboard says about an open breaker."""
    since = state.open_since.astimezone(UTC) if state.open_since else None
    when = f"{since:%Y-%m-%d %H:%M:%S} UTC" if since else "recently"
    return f"cluster unreachable since {when}: {state.last_error or 'no answer'}"
