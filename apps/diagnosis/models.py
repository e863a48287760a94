"""Diagnosis: rules that name a failed run's root cause, the diagnoses, incidents,
operator labels and the learned classifier's versions."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.alerts.models import Alert
from apps.catalog.models import Case, TemplateKind
from apps.clusters.models import Cluster
from apps.core.models import TimelineEntry
from apps.core.said import render_field
from apps.runs.models import ProbeRun, RootCause, RootCauseSource

_confidence = [MinValueValidator(0.0), MaxValueValidator(1.0)]

# The text fields a rule may match with a regular expression (all given must match).
RULE_PATTERNS = ("case_pattern", "step_pattern", "error_pattern", "reason_pattern", "event_pattern")


class DiagnosisRule(models.Model):
    """One node of the ordered rule tree: the first enabled rule (lowest order)
    whose conditions all hold names the root cause."""

    name = models.SlugField(max_length=100, unique=True)
    order = models.PositiveIntegerField(
        default=1000, help_text=_("Rules are tried in this order; the first that matches wins.")
    )
    enabled = models.BooleanField(default=True)
    category = models.CharField(max_length=20, choices=RootCause.choices)
    component = models.CharField(
        max_length=200, blank=True, help_text=_("The component at fault, when the rule knows it.")
    )
    confidence = models.FloatField(default=0.8, validators=_confidence)
    summary = models.TextField(
        help_text=_("What it means and what to check, in a sentence or two.")
    )
    case_kinds = models.JSONField(
        default=list,
        blank=True,
        help_text='Built-in case modules (or template names) it applies to, e.g. ["etcd"]; '
        "empty: all.",
    )
    template_kind = models.CharField(
        max_length=20, choices=TemplateKind.choices, blank=True, help_text=_("Empty: both.")
    )
    case_pattern = models.CharField(
        max_length=500, blank=True, help_text=_("Regular expression on the case's name.")
    )
    step_pattern = models.CharField(
        max_length=500, blank=True, help_text=_("Regular expression on the failing step's name.")
    )
    error_pattern = models.CharField(
        max_length=1000, blank=True, help_text=_("Regular expression on the error text.")
    )
    reason_pattern = models.CharField(
        max_length=500,
        blank=True,
        help_text=_("Regular expression on the pod's reasons (ImagePullBackOff, OOMKilled, …)."),
    )
    event_pattern = models.CharField(
        max_length=500, blank=True, help_text=_("Regular expression on the pod's events.")
    )
    shipped = models.BooleanField(
        default=False, editable=False, help_text=_("One of KubeProbe's default rules.")
    )

    class Meta:
        ordering = ["order", "name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from apps.diagnosis.rules import pattern_error

        errors = {f: e for f in RULE_PATTERNS if (e := pattern_error(getattr(self, f)))}
        if not any(getattr(self, f) for f in RULE_PATTERNS) and not self.case_kinds:
            errors["error_pattern"] = str(_("A rule needs at least one condition."))
        if errors:
            raise ValidationError(errors)


class RunDiagnosis(models.Model):
    """The diagnosis of one failed run, with its evidence; the run carries a copy of
    the verdict (ProbeRun.root_cause*) for alerts and pages."""

    run = models.OneToOneField(ProbeRun, on_delete=models.CASCADE, related_name="diagnosis")
    category = models.CharField(max_length=20, choices=RootCause.choices, blank=True)
    component = models.CharField(max_length=200, blank=True)
    confidence = models.FloatField(default=0.0)
    source = models.CharField(max_length=10, choices=RootCauseSource.choices, blank=True)
    rule = models.ForeignKey(DiagnosisRule, null=True, blank=True, on_delete=models.SET_NULL)
    summary = models.TextField(blank=True)
    evidence = models.JSONField(
        default=dict, blank=True, help_text=_("Case kind, step, error, pod reasons and events.")
    )
    signature = models.CharField(
        max_length=64, blank=True, help_text=_("The error with its variable parts removed, hashed.")
    )
    learned_category = models.CharField(max_length=20, choices=RootCause.choices, blank=True)
    learned_confidence = models.FloatField(null=True, blank=True)
    labelled_category = models.CharField(
        max_length=20, choices=RootCause.choices, blank=True, help_text=_("An operator's verdict.")
    )
    labelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    labelled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = _("run diagnoses")
        indexes = [
            models.Index(
                fields=["labelled_at"],
                name="diagnosis_labelled",
                condition=~models.Q(labelled_category=""),
            )
        ]

    def __str__(self) -> str:
        return f"run {self.run_id}: {self.category or 'unknown'}"


class IncidentScope(models.TextChoices):
    CASE = "case", _("One case on many clusters")
    CLUSTER = "cluster", _("Many cases on one cluster")


class IncidentState(models.TextChoices):
    OPEN = "open", _("Open")
    RESOLVED = "resolved", _("Resolved")


class Incident(models.Model):
    """Alerts failing together for one cause: the same case with the same signature
    on many clusters, or many cases on one cluster at once."""

    scope = models.CharField(max_length=10, choices=IncidentScope.choices)
    state = models.CharField(
        max_length=10, choices=IncidentState.choices, default=IncidentState.OPEN
    )
    # case id + signature, or cluster id: at most one open incident per key.
    key = models.CharField(max_length=200)
    title = models.CharField(max_length=300)
    title_params = models.JSONField(null=True, blank=True, editable=False)  # apps/core/said.py
    case = models.ForeignKey(Case, null=True, blank=True, on_delete=models.CASCADE)
    cluster = models.ForeignKey(Cluster, null=True, blank=True, on_delete=models.CASCADE)
    category = models.CharField(max_length=20, choices=RootCause.choices, blank=True)
    component = models.CharField(max_length=200, blank=True)
    confidence = models.FloatField(default=0.0)
    source = models.CharField(max_length=10, choices=RootCauseSource.choices, blank=True)
    summary = models.TextField(blank=True)
    alerts = models.ManyToManyField(Alert, through="IncidentMember", related_name="incidents")
    opened_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    labelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    labelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["key"], condition=models.Q(state="open"), name="incident_open_key_uniq"
            )
        ]
        indexes = [models.Index(fields=["state", "-opened_at"], name="incident_state")]

    def __str__(self) -> str:
        return f"#{self.pk} {render_field(self, 'title')}"

    @property
    def ref(self) -> str:
        """What member alerts carry (Alert.incident_ref) so delivery groups their flips."""
        return f"incident-{self.pk}"


class IncidentMember(models.Model):
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="members")
    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="incident_members")
    run = models.ForeignKey(ProbeRun, null=True, blank=True, on_delete=models.SET_NULL)
    joined_at = models.DateTimeField(default=timezone.now)
    left_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["joined_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["incident", "alert"], name="incident_member_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.incident_id}: alert {self.alert_id}"


class IncidentEventKind(models.TextChoices):
    OPENED = "opened", _("Opened")
    JOINED = "joined", _("Alert joined")
    LEFT = "left", _("Alert recovered")
    RESOLVED = "resolved", _("Resolved")
    LABELLED = "labelled", _("Root cause labelled")
    NOTE = "note", _("Note")
    ACTION = "action", _("Action")


class IncidentEvent(TimelineEntry):
    """The incident's timeline, oldest first."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="timeline")
    kind = models.CharField(max_length=20, choices=IncidentEventKind.choices)

    class Meta(TimelineEntry.Meta):
        indexes = [models.Index(fields=["incident", "at"], name="incident_event_at")]


class ClassifierModel(models.Model):
    """One trained version of the learned classifier (a joblib pickle of the pipeline)."""

    version = models.PositiveIntegerField(unique=True)
    trained_at = models.DateTimeField(default=timezone.now)
    samples = models.PositiveIntegerField(help_text=_("Training examples: corpus + labels."))
    labels = models.PositiveIntegerField(default=0, help_text=_("Of them, operators' labels."))
    accuracy = models.FloatField(
        null=True, blank=True, help_text=_("Top-1 accuracy on the held-out part.")
    )
    blob = models.BinaryField(editable=False)

    class Meta:
        ordering = ["-version"]

    def __str__(self) -> str:
        return f"classifier v{self.version}"
