"""Alert rules, alert state per (case, cluster), its flips (an outbox), silences and channels.

Stored alert states are few (ok, firing, acknowledged, silenced); flapping,
escalation, staleness and dependency suppression are flags or derived. Every
transition is written as an AlertFlip in the same transaction as the state
change; senders claim flips with a conditional UPDATE, so any number of
workers deliver each notification once.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.alerts import inputs
from apps.catalog.models import Case
from apps.clusters.models import Cluster, ClusterGroup
from apps.core.crypto import EncryptedTextField
from apps.core.i18n import default_language
from apps.core.models import TimelineEntry, TimeStampedModel
from apps.runs.models import ProbeRun, RootCause, RootCauseSource
from apps.scheduling.models import Binding


class Severity(models.TextChoices):
    INFO = "info", _("Info")
    WARNING = "warning", _("Warning")
    CRITICAL = "critical", _("Critical")


SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


class AlertState(models.TextChoices):
    OK = "ok", _("OK")
    FIRING = "firing", _("Firing")
    ACKNOWLEDGED = "acknowledged", _("Acknowledged")
    SILENCED = "silenced", _("Silenced")


PROBLEM_STATES = (AlertState.FIRING, AlertState.ACKNOWLEDGED, AlertState.SILENCED)


DEFAULT_RULE = "default"  # created by a migration; applies where no scoped rule does


# Transitions in an hour that make an alert flap, where no rule says otherwise.
DEFAULT_FLAP_THRESHOLD = 6


class AlertRule(TimeStampedModel):
    """When a (case, cluster) alerts. Scope: one of binding, case, cluster or group, or none
    (the default rule). The most specific enabled rule wins: binding, case, cluster, group,
    default."""

    name = models.SlugField(max_length=63, unique=True)
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    binding = models.ForeignKey(
        Binding, null=True, blank=True, on_delete=models.CASCADE, related_name="alert_rules"
    )
    case = models.ForeignKey(
        Case, null=True, blank=True, on_delete=models.CASCADE, related_name="alert_rules"
    )
    cluster = models.ForeignKey(
        Cluster, null=True, blank=True, on_delete=models.CASCADE, related_name="alert_rules"
    )
    group = models.ForeignKey(
        ClusterGroup, null=True, blank=True, on_delete=models.CASCADE, related_name="alert_rules"
    )

    consecutive_failures = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=_("Fire after this many failed runs in a row. Empty: off."),
    )
    success_rate_below = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.1), MaxValueValidator(100)],
        help_text=_(
            "Fire when the success rate (percent) in the window is below this. Empty: off."
        ),
    )
    window_runs = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(1000)],
        help_text=_("Success-rate window: the last M finished runs."),
    )
    window_minutes = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(7 * 24 * 60)],
        help_text=_("Success-rate window: runs finished in the last T minutes."),
    )
    step_latency_ms = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=_("Fire when a step of the latest run took longer than this. Empty: off."),
    )
    step_name = models.CharField(
        max_length=200,
        blank=True,
        help_text=_("The step the latency limit applies to; empty: any."),
    )
    stale_factor = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1.0), MaxValueValidator(1000)],
        help_text=_("Fire when no run finished for K × the binding's schedule. Empty: off."),
    )
    resolve_after_successes = models.PositiveIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(100)]
    )
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    escalate_to = models.CharField(max_length=10, choices=Severity.choices, blank=True)
    escalate_after_minutes = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)]
    )
    flap_threshold = models.PositiveIntegerField(
        default=DEFAULT_FLAP_THRESHOLD,
        validators=[MinValueValidator(2), MaxValueValidator(1000)],
        help_text=_(
            "More transitions than this in an hour is flapping: notified once, then quiet."
        ),
    )
    depends_on = models.ManyToManyField(
        Case,
        blank=True,
        related_name="dependent_rules",
        help_text=inputs.DEPENDS_ON_HELP,
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                name="alertrule_one_scope",
                condition=(
                    models.Q(case__isnull=True, cluster__isnull=True, group__isnull=True)
                    | models.Q(binding__isnull=True, cluster__isnull=True, group__isnull=True)
                    | models.Q(binding__isnull=True, case__isnull=True, group__isnull=True)
                    | models.Q(binding__isnull=True, case__isnull=True, cluster__isnull=True)
                ),
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def scope(self) -> str:
        for field in ("binding", "case", "cluster", "group"):
            target = getattr(self, field)
            if target is not None:
                return f"{field} {target}"
        return "default"

    def clean(self) -> None:
        errors: dict[str, Any] = {}
        scoped = [f for f in ("binding", "case", "cluster", "group") if getattr(self, f"{f}_id")]
        if len(scoped) > 1:
            errors[scoped[1]] = _("A rule applies to one of binding, case, cluster or group.")
        elif scoped and self.name == DEFAULT_RULE:
            errors[scoped[0]] = _("The default rule applies everywhere; it has no scope.")
        if self.success_rate_below is not None and not (self.window_runs or self.window_minutes):
            errors["window_runs"] = _("A success-rate rule needs window_runs or window_minutes.")
        if (self.window_runs or self.window_minutes) and self.success_rate_below is None:
            errors["success_rate_below"] = _("A window needs a success rate to compare with.")
        if self.window_runs and self.window_minutes:
            errors["window_minutes"] = _("Use window_runs or window_minutes, not both.")
        if not any(
            value is not None
            for value in (
                self.consecutive_failures,
                self.success_rate_below,
                self.step_latency_ms,
                self.stale_factor,
            )
        ):
            errors["consecutive_failures"] = _(
                "Set at least one condition: consecutive failures, success rate, "
                "step latency or staleness."
            )
        if bool(self.escalate_to) != bool(self.escalate_after_minutes):
            errors["escalate_after_minutes"] = _("Escalation needs both a severity and a delay.")
        elif (
            self.escalate_to
            and SEVERITY_RANK[Severity(self.escalate_to)] <= SEVERITY_RANK[Severity(self.severity)]
        ):
            errors["escalate_to"] = _("Escalation must raise the severity.")
        if self.step_name and self.step_latency_ms is None:
            errors["step_latency_ms"] = _("A step name needs a latency limit.")
        if errors:
            raise ValidationError(errors)


class Alert(models.Model):
    """The alert of one case on one cluster; created the first time that pair is evaluated."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="alerts")
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="alerts")
    state = models.CharField(
        max_length=20, choices=AlertState.choices, default=AlertState.OK, db_index=True
    )
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    rule = models.ForeignKey(AlertRule, null=True, blank=True, on_delete=models.SET_NULL)
    reason = models.TextField(blank=True, help_text=_("Which condition fired."))
    reason_params = models.JSONField(null=True, blank=True, editable=False)  # apps/core/said.py
    step = models.CharField(max_length=200, blank=True, help_text=_("The failing step."))
    error = models.TextField(blank=True)
    # The diagnosis of last_run (copied from it, see apps/diagnosis).
    root_cause = models.CharField(max_length=20, choices=RootCause.choices, blank=True)
    root_cause_component = models.CharField(max_length=200, blank=True)
    root_cause_confidence = models.FloatField(null=True, blank=True)
    root_cause_source = models.CharField(max_length=10, choices=RootCauseSource.choices, blank=True)
    root_cause_summary = models.TextField(blank=True, help_text=_("The diagnosis in one sentence."))
    # Set by apps/diagnosis while the alert belongs to an open incident: flips of
    # alerts with the same incident_ref are notified as one message (delivery.py).
    incident_ref = models.CharField(max_length=50, blank=True)
    incident_title = models.CharField(max_length=300, blank=True)
    incident_title_params = models.JSONField(null=True, blank=True, editable=False)
    last_run = models.ForeignKey(
        ProbeRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    firing_since = models.DateTimeField(null=True, blank=True)
    # The newest finished run of the pair, whatever the alert state: dashboards read
    # these instead of searching the runs table.
    latest_run = models.ForeignKey(
        ProbeRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    latest_state = models.CharField(max_length=20, blank=True)
    latest_duration_ms = models.PositiveIntegerField(null=True, blank=True)
    last_finished_at = models.DateTimeField(
        null=True, blank=True, help_text=_("When the newest finished run of this pair finished.")
    )
    changed_at = models.DateTimeField(default=timezone.now)
    escalated = models.BooleanField(default=False)
    flapping_since = models.DateTimeField(null=True, blank=True)
    suppressed_by = models.CharField(
        max_length=200, blank=True, help_text=_("The firing dependency that keeps this quiet.")
    )
    ack_note = models.TextField(blank=True)
    ack_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    ack_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-changed_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["case", "cluster"], name="alert_case_cluster_uniq")
        ]
        indexes = [
            models.Index(
                fields=["state", "-changed_at"],
                name="alert_open",
                condition=~models.Q(state="ok"),
            ),
            models.Index(fields=["cluster"], name="alert_cluster"),
        ]

    def __str__(self) -> str:
        return f"{self.case} on {self.cluster}: {self.state}"

    def get_absolute_url(self) -> str:
        """Its row on the dashboard's alerts page (the admin's "View on dashboard")."""
        return f"{reverse('dashboard:alerts')}#alert-{self.pk}"

    @property
    def is_problem(self) -> bool:
        return self.state in PROBLEM_STATES


class JudgeWatermark(models.Model):
    """How far the post-run pipeline has judged finished runs, in (finished_at, run id) order.

    One row per pipeline; a sweep locks it, judges the runs after it and moves
    it in the same transaction (apps/alerts/judging.py).
    """

    name = models.CharField(max_length=50, primary_key=True)
    finished_at = models.DateTimeField()
    run_id = models.BigIntegerField(default=0)
    moved_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.name}: {self.finished_at:%Y-%m-%d %H:%M:%S} / run {self.run_id}"


class FlipEvent(models.TextChoices):
    FIRING = "firing", _("Firing")
    RESOLVED = "resolved", _("Resolved")
    FLAPPING = "flapping", _("Flapping")
    ACKNOWLEDGED = "acknowledged", _("Acknowledged")
    ESCALATED = "escalated", _("Escalated")
    SILENCED = "silenced", _("Silenced")
    TEST = "test", _("Test")  # a channel's "send test": notifications only, never a flip


class AlertFlip(models.Model):
    """One transition of an alert: the outbox that notifications are sent from."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="flips")
    event = models.CharField(max_length=20, choices=FlipEvent.choices)
    old_state = models.CharField(max_length=20, choices=AlertState.choices)
    new_state = models.CharField(max_length=20, choices=AlertState.choices)
    severity = models.CharField(max_length=10, choices=Severity.choices)
    run = models.ForeignKey(ProbeRun, null=True, blank=True, on_delete=models.SET_NULL)
    notify = models.BooleanField(
        default=True, help_text=_("False: recorded only (silenced, flapping, dependency firing).")
    )
    note = models.TextField(blank=True)
    note_params = models.JSONField(null=True, blank=True, editable=False)  # apps/core/said.py
    created_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["created_at"],
                name="flip_unprocessed",
                condition=models.Q(processed_at__isnull=True),
            ),
            models.Index(fields=["alert", "-created_at"], name="flip_alert_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.alert_id}: {self.old_state} → {self.new_state}"


class TimelineKind(models.TextChoices):
    FLIP = "flip", _("Flip")
    NOTIFICATION = "notification", _("Notification")
    ACKNOWLEDGED = "acknowledged", _("Acknowledged")
    RESOLVED = "resolved", _("Resolved by hand")
    NOTE = "note", _("Note")


class AlertTimeline(TimelineEntry):
    """What happened to an alert, in order: flips, notifications and human actions."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="timeline")
    kind = models.CharField(max_length=20, choices=TimelineKind.choices)

    class Meta(TimelineEntry.Meta):
        indexes = [models.Index(fields=["alert", "at"], name="timeline_alert")]


MATCHER_NAMES = ("cluster", "group", "case", "case_set", "label")


class Silence(TimeStampedModel):
    """A maintenance window: alerts matching every matcher are recorded, not notified."""

    matchers = models.JSONField(help_text=inputs.SILENCE_MATCHERS_HELP)
    starts_at = models.DateTimeField(default=timezone.now)
    ends_at = models.DateTimeField()
    comment = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    event = models.ForeignKey(
        "scheduling.Event",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        help_text=_("The upgrade event that opened this silence."),
    )

    class Meta:
        ordering = ["-starts_at", "-id"]
        indexes = [models.Index(fields=["ends_at"], name="silence_ends")]

    def __str__(self) -> str:
        shown = ", ".join(f"{m.get('name')}={m.get('value')}" for m in self.matchers or [])
        return f"{shown} until {self.ends_at:%Y-%m-%d %H:%M}"

    def clean(self) -> None:
        from apps.alerts.inputs import silence_errors
        from apps.alerts.matchers import validate_matchers

        errors: dict[str, Any] = dict(
            silence_errors(starts_at=self.starts_at, ends_at=self.ends_at, comment=self.comment)
        )
        try:
            validate_matchers(self.matchers)
        except ValidationError as exc:
            errors["matchers"] = exc.messages
        if errors:
            raise ValidationError(errors)

    @property
    def is_active(self) -> bool:
        now = timezone.now()
        return self.starts_at <= now < self.ends_at


class Channel(TimeStampedModel):
    """Where notifications go: one transport kind with its config (encrypted, write-only)."""

    name = models.SlugField(max_length=63, unique=True)
    kind = models.CharField(max_length=30)
    config_json = EncryptedTextField(blank=True, help_text=_("The transport's config, encrypted."))
    enabled = models.BooleanField(default=True)
    disabled_reason = models.TextField(
        blank=True, help_text=_("Why the channel was disabled (a receiver refused it for good).")
    )
    severities = models.JSONField(
        default=list, blank=True, help_text='Severities routed here, e.g. ["critical"]; empty: all.'
    )
    matchers = models.JSONField(
        default=list, blank=True, help_text=_("Only alerts matching every matcher; empty: all.")
    )
    send_resolved = models.BooleanField(default=True)
    language = models.CharField(
        _("language"), max_length=15, choices=settings.LANGUAGES, default=default_language,
        help_text=_("The language its messages are written in; JSON field names stay English."),
    )  # fmt: skip

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class NotificationStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    RETRYING = "retrying", _("Retrying")
    FAILED = "failed", _("Failed")
    SKIPPED = "skipped", _("Skipped")


class Notification(models.Model):
    """One message to one channel; grouped messages cover several flips (clusters)."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="notifications")
    flips = models.ManyToManyField(AlertFlip, related_name="notifications")
    event = models.CharField(max_length=20, choices=FlipEvent.choices)
    severity = models.CharField(max_length=10, choices=Severity.choices)
    title = models.CharField(max_length=500)
    status = models.CharField(
        max_length=20, choices=NotificationStatus.choices, default=NotificationStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="notification_due",
                condition=models.Q(status__in=["pending", "retrying", "sending"]),
            )
        ]

    def __str__(self) -> str:
        return f"{self.channel_id}: {self.title[:60]} ({self.status})"


class InboxMessage(models.Model):
    """A notification kept by an `inbox` channel, shown on the dashboard's Inbox page:
    what a chat or mail channel would have received (the quick start's demo channel)."""

    event = models.CharField(max_length=20)
    severity = models.CharField(max_length=10)
    case = models.CharField(max_length=200)
    title = models.CharField(max_length=500)
    text = models.TextField()
    clusters = models.JSONField(default=list)
    run_url = models.CharField(max_length=2048, blank=True)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return self.title
