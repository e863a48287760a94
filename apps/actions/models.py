"""Severity → action: what happens when an incident opens or an alert joins one.

A policy matches an incident's root-cause category and the joining alert's
severity; it may notify channels, escalate (a high-urgency page: sent at
severity critical, which PagerDuty turns into a high-urgency incident), and run
one self-heal action (a webhook, or a Kubernetes Job from a template) with
safeguards: a rate limit per cluster, dry-run, and approval for disruptive ones.
Every action and its outcome is an ActionRun and a line on the incident's timeline.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from apps.alerts.models import Channel, Severity
from apps.clusters.models import DNS_LABEL_RE, Cluster
from apps.core.crypto import EncryptedTextField
from apps.core.models import TimeStampedModel
from apps.diagnosis.models import Incident
from apps.runs.models import RootCause


class ActionKind(models.TextChoices):
    NONE = "", _("None (notify / escalate only)")
    WEBHOOK = "webhook", _("Webhook")
    JOB = "job", _("Kubernetes Job")


def validate_http_url(value: str) -> None:
    from apps.alerts.transports.base import http_url

    try:
        http_url(value)
    except Exception as exc:  # DRF's ValidationError: keep its sentence
        detail = getattr(exc, "detail", None)
        raise ValidationError(str(detail[0] if isinstance(detail, list) else exc)) from exc


def validate_job_template(value: Any) -> None:
    """A Job's `spec` (with $(VARS)): an object holding a pod template with containers."""
    if not isinstance(value, dict):
        raise ValidationError(_("The Job template must be an object: the Job's spec."))
    containers = value.get("template", {}).get("spec", {}).get("containers")
    if not isinstance(containers, list) or not containers:
        raise ValidationError(_("The Job template needs template.spec.containers (a list)."))


class ActionPolicy(TimeStampedModel):
    name = models.SlugField(max_length=63, unique=True)
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    category = models.CharField(
        max_length=20, choices=RootCause.choices, blank=True, help_text=_("Empty: any root cause.")
    )
    severity = models.CharField(
        max_length=10,
        choices=Severity.choices,
        blank=True,
        help_text=_("The joining alert's severity, or higher. Empty: any."),
    )
    notify_channels = models.ManyToManyField(
        Channel, blank=True, related_name="+", help_text=_("Told at the incident's severity.")
    )
    escalate_channels = models.ManyToManyField(
        Channel,
        blank=True,
        related_name="+",
        help_text=_("Paged at severity critical (PagerDuty: a high-urgency incident)."),
    )
    action = models.CharField(max_length=10, choices=ActionKind.choices, blank=True)
    webhook_url = models.CharField(max_length=500, blank=True, validators=[validate_http_url])
    webhook_secret = EncryptedTextField(
        blank=True, help_text=_("Signs each request (X-KubeProbe-Signature). Write-only.")
    )
    job_template = models.JSONField(
        default=dict,
        blank=True,
        help_text=_(
            "The Job's spec. $(INCIDENT), $(CATEGORY), $(COMPONENT), $(CLUSTER), "
            "$(CASE), $(SEVERITY), $(TITLE) are replaced in every string."
        ),
    )
    job_namespace = models.CharField(
        max_length=63,
        default="kubeprobe",
        validators=[RegexValidator(DNS_LABEL_RE, "Not a valid namespace name (DNS label).")],
    )
    disruptive = models.BooleanField(
        default=False, help_text=_("Runs only after an admin approves it (admin action).")
    )
    dry_run = models.BooleanField(
        default=False, help_text=_("Record what would be done, do nothing.")
    )
    rate_limit_count = models.PositiveIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(1000)],
        help_text=_("At most this many actions per cluster…"),
    )
    rate_limit_minutes = models.PositiveIntegerField(
        default=60,
        validators=[MinValueValidator(1), MaxValueValidator(7 * 24 * 60)],
        help_text=_("…within this many minutes (all policies together)."),
    )
    order = models.PositiveSmallIntegerField(default=100)

    class Meta:
        ordering = ["order", "name"]
        verbose_name_plural = _("action policies")

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        if self.action == ActionKind.WEBHOOK and not self.webhook_url:
            raise ValidationError({"webhook_url": _("A webhook action needs a URL.")})
        if self.action == ActionKind.JOB:
            try:
                validate_job_template(self.job_template)
            except ValidationError as exc:
                raise ValidationError({"job_template": exc.messages}) from exc


class ActionState(models.TextChoices):
    AWAITING_APPROVAL = "awaiting_approval", _("Awaiting approval")
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    DRY_RUN = "dry_run", _("Dry run (nothing done)")
    RATE_LIMITED = "rate_limited", _("Rate limited (nothing done)")
    REJECTED = "rejected", _("Rejected")


# What counts against a cluster's rate limit: actions that did, or will, act on it.
COUNTED_STATES = (
    ActionState.AWAITING_APPROVAL,
    ActionState.QUEUED,
    ActionState.RUNNING,
    ActionState.SUCCEEDED,
    ActionState.FAILED,
)


class ActionRun(models.Model):
    """One policy's response to one incident on one cluster, and how it went."""

    policy = models.ForeignKey(ActionPolicy, on_delete=models.CASCADE, related_name="runs")
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="actions")
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="+")
    severity = models.CharField(max_length=10, choices=Severity.choices)
    kind = models.CharField(max_length=10, choices=ActionKind.choices, blank=True)
    state = models.CharField(max_length=20, choices=ActionState.choices, db_index=True)
    request = models.JSONField(
        default=dict, blank=True, help_text=_("What was (or would be) sent.")
    )
    outcome = models.TextField(blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Notify and escalate are sent once, whatever happens to the action (approval...).
    announced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["policy", "incident", "cluster"], name="actionrun_once_per_incident"
            )
        ]
        indexes = [models.Index(fields=["cluster", "-created_at"], name="actionrun_cluster")]

    def __str__(self) -> str:
        return f"{self.policy_id} on incident {self.incident_id}: {self.state}"
