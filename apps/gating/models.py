"""Release gate: policies (which case sets gate which components, per cluster
group), the decisions it made (who asked, what it saw, why), and checks
(runs started on purpose, then a decision from their results)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from apps.catalog.models import CaseSet
from apps.clusters.models import Cluster, ClusterGroup
from apps.core.models import ApiToken, TimeStampedModel
from apps.gating import inputs
from apps.scheduling.models import Event


class Verdict(models.TextChoices):
    ALLOW = "allow", _("Allow")
    DENY = "deny", _("Deny")
    UNKNOWN = "unknown", _("Unknown")


# `manage.py gate check` exits with these, so shells and CI pipelines branch on them.
EXIT_CODES = {Verdict.ALLOW: 0, Verdict.DENY: 1, Verdict.UNKNOWN: 2}

DEFAULT_POLICY_NAME = "default (built in)"


class GatePolicy(TimeStampedModel):
    """How the gate decides for the clusters of one group (or of every cluster)."""

    name = models.SlugField(max_length=63, unique=True)
    description = models.TextField(blank=True)
    group = models.ForeignKey(
        ClusterGroup,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="gate_policies",
        help_text=_("Clusters of this group. Empty: every cluster that no group policy covers."),
    )
    priority = models.PositiveSmallIntegerField(
        default=100,
        help_text=_("A cluster in several groups gets the enabled policy with the lowest number."),
    )
    max_result_age_seconds = models.PositiveIntegerField(
        default=inputs.MAX_AGE_DEFAULT_SECONDS,
        validators=inputs.max_age_validators(),
        help_text="A gating case whose latest result is older than this makes the answer "
        "'unknown'.",
    )
    incident_denies = models.BooleanField(
        default=True, help_text=_("An open incident on the cluster denies.")
    )
    alert_denies = models.BooleanField(
        default=True,
        help_text="An alert of a gating case still open after judging the latest result denies "
        "(e.g. it needs more successes to resolve).",
    )
    silenced_denies = models.BooleanField(
        default=True,
        help_text="A gating case failing under a silence (maintenance window) still denies. "
        "Off: it is listed, not counted.",
    )
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["priority", "name"]
        verbose_name_plural = _("gate policies")

    def __str__(self) -> str:
        return self.name


class GateRule(models.Model):
    """One line of a policy: this case set gates this component (empty: every component)."""

    policy = models.ForeignKey(GatePolicy, on_delete=models.CASCADE, related_name="rules")
    component = models.CharField(
        max_length=63,
        blank=True,
        validators=inputs.component_validators(),
        help_text=_("e.g. etcd. Empty: gates every component, and requests naming none."),
    )
    case_set = models.ForeignKey(CaseSet, on_delete=models.PROTECT, related_name="gate_rules")

    class Meta:
        ordering = ["component", "case_set__name"]
        constraints = [
            models.UniqueConstraint(
                fields=["policy", "component", "case_set"], name="gaterule_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.case_set} gates {self.component or 'every component'}"


class DecisionSource(models.TextChoices):
    API = "api", _("API")
    CHECK = "check", _("Check")
    CLI = "cli", _("manage.py gate")
    EVENT = "event", _("component_release event")


class CheckState(models.TextChoices):
    RUNNING = "running", _("Running")
    FINISHED = "finished", _("Finished")
    TIMED_OUT = "timed_out", _("Timed out")


class GateCheck(models.Model):
    """Runs of the gate's cases started now on one cluster; decided when they finish or
    at the deadline, whichever comes first."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="gate_checks")
    component = models.CharField(max_length=63, blank=True)
    case_set = models.ForeignKey(
        CaseSet, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    run_ids = models.JSONField(default=list, blank=True)
    timeout_seconds = models.PositiveIntegerField(validators=inputs.check_timeout_validators())
    deadline = models.DateTimeField()
    state = models.CharField(
        max_length=20, choices=CheckState.choices, default=CheckState.RUNNING, db_index=True
    )
    verdict = models.CharField(max_length=10, choices=Verdict.choices, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    token = models.ForeignKey(
        ApiToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    event = models.ForeignKey(
        Event, null=True, blank=True, on_delete=models.SET_NULL, related_name="gate_checks"
    )
    source = models.CharField(
        max_length=10, choices=DecisionSource.choices, default=DecisionSource.CHECK
    )
    asked_by = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["cluster", "-created_at"], name="gatecheck_cluster")]

    def __str__(self) -> str:
        return f"check {self.pk} on {self.cluster_id}: {self.verdict or self.state}"


class GateDecision(models.Model):
    """One answer of the gate: the verdict, why, what it looked at and who asked."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="gate_decisions")
    component = models.CharField(max_length=63, blank=True)
    verdict = models.CharField(max_length=10, choices=Verdict.choices)
    reasons = models.JSONField(default=list, blank=True)
    inputs = models.JSONField(
        default=dict, blank=True, help_text=_("The request, the policy and every case's result.")
    )
    policy_name = models.CharField(max_length=100)
    source = models.CharField(max_length=10, choices=DecisionSource.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    token = models.ForeignKey(
        ApiToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    asked_by = models.CharField(
        max_length=200, blank=True, help_text=_("The user, and the API token's name, as they were.")
    )
    gate_check = models.ForeignKey(
        GateCheck, null=True, blank=True, on_delete=models.SET_NULL, related_name="decisions"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["cluster", "-created_at"], name="gatedecision_cluster"),
            models.Index(fields=["-created_at", "-id"], name="gatedecision_recent"),
            models.Index(fields=["verdict", "-created_at"], name="gatedecision_verdict"),
        ]

    def __str__(self) -> str:
        return f"{self.verdict} for {self.cluster_id} ({self.created_at:%Y-%m-%d %H:%M:%S})"
