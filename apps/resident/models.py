"""Resident probes (常驻探测): a probe kept running inside each target cluster by the
ProbeOperator, reporting aggregated sample windows to the center.

The sample windows, the batch ids that make ingestion idempotent and the
per-minute rollups are not Django models: they live in time-partitioned tables
written and read with SQL (apps/resident/storage.py, created by migration 0002).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from apps.alerts.models import Severity
from apps.catalog.models import Case
from apps.clusters.models import Cluster, ClusterGroup
from apps.core.models import TimeStampedModel
from apps.core.validators import validate_env, validate_resources, validate_string_list

# The ProbeConfig's metadata.name (the CRD allows 50: it names the resident Deployment).
NAME_MAX = 50
# Built-in cases the resident runner can run (the CRD's spec.probe.case), by module.
RESIDENT_CASES = ("etcd", "certificates", "api-roundtrip")
# Words the API routes under /api/v1/resident/ and that therefore cannot be names.
RESERVED_NAMES = frozenset({"samples", "rules"})


def validate_resident_env(value: object) -> None:
    validate_env(value)
    reserved = sorted(k for k in value if k.startswith("KUBEPROBE_"))  # type: ignore[attr-defined]
    if reserved:
        raise ValidationError(
            _("KUBEPROBE_* variables are set by the operator: %(names)s."),
            params={"names": ", ".join(reserved)},
        )


def case_module(case: Case) -> str:
    """The resident case name of a built-in catalog case (`python -m probe_sdk.cases.etcd`
    → etcd), or "" if the case does not run a built-in module."""
    command = list(case.template.command)
    if len(command) >= 3 and command[1] == "-m" and command[2].startswith("probe_sdk.cases."):
        return command[2].removeprefix("probe_sdk.cases.").replace("_", "-")
    return ""


def validate_probe_name(value: str) -> None:
    if value in RESERVED_NAMES:
        raise ValidationError(
            _("%(value)r is reserved (it is a path under /api/v1/resident/)."),
            params={"value": value},
        )


class ResidentProbe(TimeStampedModel):
    """A probe that runs continuously in each target cluster (a ProbeConfig there)."""

    name = models.SlugField(
        max_length=NAME_MAX,
        unique=True,
        validators=[validate_probe_name],
        help_text=_("The ProbeConfig's probeName; samples name it."),
    )
    description = models.TextField(blank=True)
    case = models.ForeignKey(
        Case,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="resident_probes",
        help_text=_(
            "A built-in case (python -m probe_sdk.cases.<module>) run by the resident "
            "runner in the default probe image. Set this or an image."
        ),
    )
    image = models.CharField(
        max_length=500,
        blank=True,
        help_text=_("A custom image whose command runs the resident runner. Set this or a case."),
    )
    command = models.JSONField(default=list, blank=True, validators=[validate_string_list])
    args = models.JSONField(default=list, blank=True, validators=[validate_string_list])
    env = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_resident_env],
        help_text=_("Env of the resident pod, over the case's rendered env."),
    )
    resources = models.JSONField(default=dict, blank=True, validators=[validate_resources])
    service_account = models.CharField(max_length=253, blank=True)
    clusters = models.ManyToManyField(Cluster, blank=True, related_name="resident_probes")
    groups = models.ManyToManyField(ClusterGroup, blank=True, related_name="resident_probes")
    interval_ms = models.PositiveIntegerField(
        default=1000,
        validators=[MinValueValidator(100), MaxValueValidator(3_600_000)],
        help_text=_("One sample every this many milliseconds (at least 100)."),
    )
    sample_timeout_ms = models.PositiveIntegerField(
        default=5000, validators=[MinValueValidator(100), MaxValueValidator(600_000)]
    )
    denoise_k = models.PositiveSmallIntegerField(
        default=3,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text=_("The state changes only when k of the last n samples agree."),
    )
    denoise_n = models.PositiveSmallIntegerField(
        default=5, validators=[MinValueValidator(1), MaxValueValidator(100)]
    )
    report_rate = models.FloatField(
        default=1.0,
        validators=[MinValueValidator(0.01), MaxValueValidator(100)],
        help_text=_("Batches per second the runner may send (token bucket refill)."),
    )
    report_burst = models.PositiveIntegerField(
        default=5, validators=[MinValueValidator(1), MaxValueValidator(1000)]
    )
    batch_window_ms = models.PositiveIntegerField(
        default=1000,
        validators=[MinValueValidator(100), MaxValueValidator(600_000)],
        help_text=_("Samples are aggregated into windows of this length."),
    )
    enabled = models.BooleanField(default=True, db_index=True)
    # The token: derived from SECRET_KEY, the id and this nonce (apps/resident/tokens.py);
    # only its sha256 is kept. A new nonce is a rotation.
    token_nonce = models.CharField(max_length=32, blank=True, editable=False)
    token_hash = models.CharField(max_length=64, blank=True, editable=False, db_index=True)
    token_rotated_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The alerts of this probe live on Alert rows of this (disabled) case, one per cluster.
    alert_case = models.OneToOneField(
        Case,
        null=True,
        blank=True,
        editable=False,
        on_delete=models.SET_NULL,
        related_name="resident_subject",
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                name="resident_case_xor_image",
                condition=(
                    models.Q(case__isnull=False, image="")
                    | models.Q(case__isnull=True) & ~models.Q(image="")
                ),
            ),
            models.CheckConstraint(
                name="resident_denoise_k_le_n",
                condition=models.Q(denoise_k__lte=models.F("denoise_n")),
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        errors: dict[str, Any] = {}
        if bool(self.case_id) == bool(self.image):
            errors["image"] = _("Set exactly one of case (built-in) or image.")
        if self.case_id and (self.command or self.args):
            errors["command"] = _("Command and args go with an image; a case runs its own module.")
        if self.case_id and self.case is not None and case_module(self.case) not in RESIDENT_CASES:
            errors["case"] = (
                f"Case {self.case.name} cannot run resident: only the built-in cases "
                f"{', '.join(RESIDENT_CASES)} can (or give an image)."
            )
        if self.denoise_k and self.denoise_n and self.denoise_k > self.denoise_n:
            errors["denoise_k"] = _("k must not exceed n (k of the last n samples agree).")
        if errors:
            raise ValidationError(errors)


def probe_scope_errors(*, clusters: object, groups: object) -> dict[str, str]:
    """A resident probe needs somewhere to run (admin and API alike)."""
    if not (clusters or groups):
        return {"clusters": gettext("Name at least one cluster or group.")}
    return {}


class ResidentTarget(models.Model):
    """One (probe, cluster): what ingestion and the ProbeConfig apply know of it."""

    probe = models.ForeignKey(ResidentProbe, on_delete=models.CASCADE, related_name="targets")
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="+")
    # Ingestion: the newest window's end, when the last batch came, the runner's drop count.
    last_sample_at = models.DateTimeField(null=True, blank=True)
    last_report_at = models.DateTimeField(null=True, blank=True)
    samples_dropped = models.PositiveBigIntegerField(default=0)
    state = models.CharField(max_length=8, blank=True, help_text=_("up/down at the newest window."))
    # The ProbeConfig in the cluster: what was applied, when, and its status read back.
    applied_hash = models.CharField(max_length=64, blank=True)
    applied_namespace = models.CharField(max_length=63, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    apply_error = models.TextField(blank=True)
    config_status = models.JSONField(default=dict, blank=True)
    status_read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["probe", "cluster"], name="resident_target_uniq")
        ]
        indexes = [models.Index(fields=["cluster"], name="resident_target_cluster")]

    def __str__(self) -> str:
        return f"{self.probe_id}@{self.cluster_id}"

    @property
    def ready(self) -> str:
        """The Ready condition's status in the cluster ("True"/"False"/"" unknown)."""
        for condition in self.config_status.get("conditions") or []:
            if condition.get("type") == "Ready":
                return str(condition.get("status", ""))
        return ""


class ResidentRemoval(models.Model):
    """A ProbeConfig (and its token Secret) still to delete from a cluster: its probe was
    deleted. Kept until the cluster confirmed, so an unreachable cluster is retried."""

    name = models.CharField(max_length=NAME_MAX)
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="+")
    namespace = models.CharField(max_length=63)
    created_at = models.DateTimeField(auto_now_add=True)
    error = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["name", "cluster", "namespace"], name="resident_removal_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"remove {self.name} from {self.cluster_id}/{self.namespace}"


class ResidentAlertRule(TimeStampedModel):
    """When a resident probe alerts on a cluster: availability below X% or p99 latency
    above Y ms over the last T minutes. A probe's own rule wins over a global one
    (no probe). Alerts go through the same state machine, silences and channels as
    run alerts (apps/resident/alerting.py)."""

    name = models.SlugField(max_length=63, unique=True)
    enabled = models.BooleanField(default=True)
    probe = models.ForeignKey(
        ResidentProbe,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="alert_rules",
        help_text=_("Empty: every resident probe without a rule of its own."),
    )
    availability_below = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.1), MaxValueValidator(100)],
        help_text=_("Fire when availability (percent of ok samples) in the window is below this."),
    )
    latency_p99_above_ms = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.1)],
        help_text=_("Fire when the window's p99 latency (ms) is above this."),
    )
    window_minutes = models.PositiveIntegerField(
        default=5, validators=[MinValueValidator(1), MaxValueValidator(24 * 60)]
    )
    no_data_minutes = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(24 * 60)],
        help_text=_("Fire when a cluster that reported before sent nothing for this long."),
    )
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        if (
            self.availability_below is None
            and self.latency_p99_above_ms is None
            and self.no_data_minutes is None
        ):
            raise ValidationError(
                {
                    "availability_below": _(
                        "Set at least one condition: availability, p99 latency or no data."
                    )
                }
            )
