from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from apps.catalog.models import Case
from apps.clusters.models import Cluster


class Trigger(models.TextChoices):
    SCHEDULE = "schedule", _("Schedule")
    EVENT = "event", _("Event")
    MANUAL = "manual", _("Manual")
    GATE = "gate", _("Release gate")


class RunState(models.TextChoices):
    PENDING = "pending", _("Pending")
    DISPATCHED = "dispatched", _("Dispatched")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    ERROR = "error", _("Error")
    TIMED_OUT = "timed_out", _("Timed out")


class RootCause(models.TextChoices):
    """Where a failure's cause lies (apps/diagnosis names it; runs and alerts carry it)."""

    ETCD = "etcd", _("etcd")
    APISERVER = "apiserver", _("API server")
    SCHEDULER = "scheduler", _("Scheduler")
    CONTROLLER = "controller", _("Controllers")
    NODE = "node", _("Kubelet / node")
    RUNTIME = "runtime", _("Container runtime / sandbox")
    NETWORK = "network", _("CNI / network")
    DNS = "dns", _("DNS")
    IMAGE = "image", _("Image registry / pull")
    STORAGE = "storage", _("Storage")
    WEBHOOK = "webhook", _("Admission webhook")
    QUOTA = "quota", _("Quota / limits")
    RBAC = "rbac", _("RBAC / credentials")
    CERTIFICATES = "certificates", _("Certificates")
    CONFIG = "config", _("Configuration drift")
    PROBE = "probe", _("The probe itself")


class RootCauseSource(models.TextChoices):
    RULE = "rule", _("Rule")
    LEARNED = "learned", _("Learned (classifier)")
    OPERATOR = "operator", _("Operator")


ACTIVE_STATES = (RunState.PENDING, RunState.DISPATCHED, RunState.RUNNING)
FINISHED_STATES = (RunState.SUCCEEDED, RunState.FAILED, RunState.ERROR, RunState.TIMED_OUT)


def default_redispatch_after() -> timedelta:
    return timedelta(seconds=settings.KUBEPROBE_REDISPATCH_MIN_SECONDS)


class ProbeRun(models.Model):
    """探测实例: one execution of one case on one cluster."""

    # Every index is paid for on each report's UPDATE, so FKs reuse the
    # composite indexes below or get partial ones instead of their own.
    case = models.ForeignKey(
        Case, on_delete=models.CASCADE, related_name="runs", db_index=False, verbose_name=_("case")
    )
    cluster = models.ForeignKey(
        Cluster,
        on_delete=models.CASCADE,
        related_name="runs",
        db_index=False,
        verbose_name=_("cluster"),
    )
    binding = models.ForeignKey(
        "scheduling.Binding",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="runs",
        db_index=False,
        verbose_name=_("binding"),
    )
    trigger = models.CharField(max_length=20, choices=Trigger.choices, verbose_name=_("trigger"))
    state = models.CharField(
        max_length=20, choices=RunState.choices, default=RunState.PENDING, verbose_name=_("state")
    )
    # (binding, case, cluster, tick) for scheduled runs, so a repeated tick creates nothing.
    idempotency_key = models.CharField(
        max_length=200, null=True, blank=True, verbose_name=_("idempotency key")
    )
    # sha256 of the run's bearer token; the token itself only reaches the pod.
    token_hash = models.CharField(
        max_length=64, blank=True, editable=False, verbose_name=_("token hash")
    )
    event = models.ForeignKey(
        "scheduling.Event",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="runs",
        db_index=False,
        verbose_name=_("event"),
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
        verbose_name=_("requested by"),
    )
    executor = models.CharField(max_length=20, blank=True, verbose_name=_("executor"))
    pod_name = models.CharField(max_length=253, blank=True, verbose_name=_("pod name"))

    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    # When a dispatch was last queued (or a retry becomes due): lost messages are
    # re-sent once redispatch_after has passed since (runs_claim_stuck_pending).
    enqueued_at = models.DateTimeField(default=timezone.now, verbose_name=_("enqueued at"))
    redispatch_after = models.DurationField(
        default=default_redispatch_after, editable=False, verbose_name=_("redispatch after")
    )
    # Launch attempts made by batch dispatch (dispatch_batch.py), for its retry limit.
    dispatch_attempts = models.PositiveSmallIntegerField(
        default=0, editable=False, verbose_name=_("dispatch attempts")
    )
    dispatched_at = models.DateTimeField(null=True, blank=True, verbose_name=_("dispatched at"))
    finished_at = models.DateTimeField(null=True, blank=True, verbose_name=_("finished at"))
    deadline = models.DateTimeField(null=True, blank=True, verbose_name=_("deadline"))
    duration_ms = models.PositiveIntegerField(null=True, blank=True, verbose_name=_("duration ms"))

    ok = models.BooleanField(null=True, blank=True, verbose_name=_("ok"))
    errors = models.JSONField(default=list, blank=True, verbose_name=_("errors"))
    steps = models.JSONField(default=list, blank=True, verbose_name=_("steps"))
    metrics = models.JSONField(default=dict, blank=True, verbose_name=_("metrics"))
    reason = models.TextField(
        blank=True,
        help_text=_("Why the run ended in error or timed out."),
        verbose_name=_("reason"),
    )
    reason_params = models.JSONField(null=True, blank=True, editable=False)  # core/said.py
    log_tail = models.TextField(blank=True, verbose_name=_("log tail"))
    diagnostics = models.JSONField(
        default=dict,
        blank=True,
        help_text=_("Pod status and events."),
        verbose_name=_("diagnostics"),
    )
    # The root cause apps/diagnosis named for a failed run (its evidence is in the
    # diagnosis app's RunDiagnosis); alerts copy these from the run they point at.
    root_cause = models.CharField(
        max_length=20, choices=RootCause.choices, blank=True, verbose_name=_("root cause")
    )
    root_cause_component = models.CharField(
        max_length=200, blank=True, verbose_name=_("root cause component")
    )
    root_cause_confidence = models.FloatField(
        null=True, blank=True, verbose_name=_("root cause confidence")
    )
    root_cause_source = models.CharField(
        max_length=10,
        choices=RootCauseSource.choices,
        blank=True,
        verbose_name=_("root cause source"),
    )
    root_cause_summary = models.TextField(
        blank=True,
        help_text=_("The diagnosis in one sentence."),
        verbose_name=_("root cause summary"),
    )
    # Pod/process bookkeeping for the cleaner: when it was removed, or until when it is kept.
    cleaned_at = models.DateTimeField(null=True, blank=True, verbose_name=_("cleaned at"))
    keep_until = models.DateTimeField(null=True, blank=True, verbose_name=_("keep until"))

    class Meta:
        verbose_name = _("run")
        verbose_name_plural = _("runs")
        ordering = ["-created_at", "-id"]
        permissions = [("run_probe", gettext_noop("Can run probes by hand"))]
        constraints = [
            models.UniqueConstraint(fields=["idempotency_key"], name="run_idempotency_key_uniq")
        ]
        indexes = [
            models.Index(fields=["case", "cluster", "-created_at"], name="run_case_cluster_recent"),
            models.Index(fields=["cluster", "-created_at"], name="run_cluster_recent"),
            models.Index(fields=["-created_at", "-id"], name="run_recent"),
            # Active runs per case and cluster: the "previous run still active" check.
            models.Index(
                fields=["cluster", "case"],
                name="run_active",
                condition=models.Q(state__in=["pending", "dispatched", "running"]),
            ),
            # Pending runs in id order: what batch dispatch claims next (SKIP LOCKED).
            models.Index(fields=["id"], name="run_pending", condition=models.Q(state="pending")),
            models.Index(
                fields=["token_hash"], name="run_token", condition=~models.Q(token_hash="")
            ),
            models.Index(
                fields=["binding"], name="run_binding", condition=models.Q(binding__isnull=False)
            ),
            models.Index(
                fields=["event"], name="run_event", condition=models.Q(event__isnull=False)
            ),
            models.Index(
                fields=["requested_by"],
                name="run_requested_by",
                condition=models.Q(requested_by__isnull=False),
            ),
            # Finished runs in finishing order: the post-run pipeline's watermark
            # scan (apps/alerts/judging.py). The report's UPDATE is not a HOT
            # update anyway (it changes indexed columns), so this costs one
            # b-tree append per finished run, no extra statement.
            models.Index(
                fields=["finished_at", "id"],
                name="run_finished",
                condition=models.Q(finished_at__isnull=False),
            ),
            # Finished runs whose pod is not cleaned up yet.
            models.Index(
                fields=["finished_at"],
                name="run_uncleaned",
                condition=models.Q(cleaned_at__isnull=True, finished_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        # Reads case and cluster: select_related them where many runs are shown.
        return f"Run {self.pk} · {self.case.name} on {self.cluster.name} · {self.state}"

    def get_absolute_url(self) -> str:
        """Its dashboard page (the admin's "View on dashboard")."""
        return reverse("dashboard:run", args=[self.pk])

    def duration_ms_at(self, finished_at: datetime) -> int:
        """The run's duration if it ends at `finished_at`: from dispatch, or from
        creation if it never got that far. The grouped report statement
        (reporting/store.py) computes the same in SQL."""
        started = self.dispatched_at or self.created_at
        return max(0, int((finished_at - started).total_seconds() * 1000))

    @property
    def is_finished(self) -> bool:
        return self.state in FINISHED_STATES


class RunPartition(models.Model):
    """One partition of the runs table on Postgres: a range of run ids opened at a time.

    Partition `number` holds ids [number × STRIDE, (number + 1) × STRIDE); the
    sequence jumps to the next partition's first id when it is opened, so each
    partition holds the runs created in one time window (apps/runs/partitions.py).
    """

    number = models.PositiveIntegerField(primary_key=True)
    # When the id sequence was moved into it (None: created ahead, not opened yet).
    opened_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["number"]

    def __str__(self) -> str:
        return f"runs partition {self.number}"


class RunWatermark(models.Model):
    """How far a consumer of finished runs has got, in (finished_at, run id) order
    (the rollups: apps/runs/rollups.py)."""

    name = models.CharField(max_length=50, primary_key=True)
    finished_at = models.DateTimeField()
    run_id = models.BigIntegerField(default=0)
    moved_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.name}: {self.finished_at:%Y-%m-%d %H:%M:%S} / run {self.run_id}"


class RunRollup(models.Model):
    """Finished runs of one (case, cluster) created in one clock hour, summed up.

    Written only by apps/runs/rollups.py (one upsert per batch of finished runs);
    the 24 h and 7 d statistics read these instead of the runs.
    """

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="+", db_index=False)
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="+", db_index=False)
    hour = models.DateTimeField()
    runs = models.PositiveIntegerField(default=0)
    succeeded = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    errored = models.PositiveIntegerField(default=0)
    timed_out = models.PositiveIntegerField(default=0)
    # Runs with a duration, their sum and maximum (ms).
    timed = models.PositiveIntegerField(default=0)
    duration_sum = models.BigIntegerField(default=0)
    duration_max = models.PositiveIntegerField(null=True, blank=True)
    # Duration histogram: {bucket index: count}, buckets of rollups.BOUNDS.
    histogram = models.JSONField(default=dict)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["case", "cluster", "hour"], name="run_rollup_uniq")
        ]
        indexes = [models.Index(fields=["cluster", "hour"], name="run_rollup_cluster")]

    def __str__(self) -> str:
        return f"rollup {self.case_id}/{self.cluster_id} {self.hour:%Y-%m-%d %H:00}"
