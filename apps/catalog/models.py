from __future__ import annotations

from typing import Any

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from apps.core.models import TimeStampedModel
from apps.core.validators import validate_env, validate_resources, validate_string_list

MAX_TIMEOUT = 24 * 3600


class TemplateKind(models.TextChoices):
    PROBE = "probe", _("Black-box probe")
    INSPECTION = "inspection", _("Inspection")


class ReportProtocol(models.TextChoices):
    KUBEPROBE = "kubeprobe", _("KubeProbe (probe_sdk)")
    KUBERHEALTHY = "kuberhealthy", _("Kuberhealthy v3 check")


def _timeout_validators() -> list[Any]:
    return [MinValueValidator(1), MaxValueValidator(MAX_TIMEOUT)]


class CaseTemplate(TimeStampedModel):
    """An image + command that runs one kind of probe or inspection."""

    name = models.SlugField(max_length=63, unique=True, verbose_name=_("name"))
    kind = models.CharField(
        max_length=20,
        choices=TemplateKind.choices,
        default=TemplateKind.PROBE,
        verbose_name=_("kind"),
    )
    image = models.CharField(
        max_length=500,
        help_text=_("Container image, e.g. ghcr.io/org/probe:1.2"),
        verbose_name=_("image"),
    )
    command = models.JSONField(
        default=list, blank=True, validators=[validate_string_list], verbose_name=_("command")
    )
    args = models.JSONField(
        default=list, blank=True, validators=[validate_string_list], verbose_name=_("args")
    )
    default_env = models.JSONField(
        default=dict, blank=True, validators=[validate_env], verbose_name=_("default env")
    )
    timeout_seconds = models.PositiveIntegerField(
        default=300, validators=_timeout_validators(), verbose_name=_("timeout seconds")
    )
    resources = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_resources],
        help_text=_(
            '{"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}'
        ),
        verbose_name=_("resources"),
    )
    service_account = models.CharField(
        max_length=253, blank=True, verbose_name=_("service account")
    )
    report_protocol = models.CharField(
        max_length=20,
        choices=ReportProtocol.choices,
        default=ReportProtocol.KUBEPROBE,
        verbose_name=_("report protocol"),
    )
    description = models.TextField(blank=True, verbose_name=_("description"))
    owner = models.CharField(
        max_length=200,
        blank=True,
        help_text=_("Team or person to ask about it."),
        verbose_name=_("owner"),
    )

    class Meta:
        verbose_name = _("case template")
        verbose_name_plural = _("case templates")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Case(TimeStampedModel):
    """A runnable probe: a template rendered with its own render config."""

    name = models.SlugField(max_length=63, unique=True, verbose_name=_("name"))
    template = models.ForeignKey(
        CaseTemplate, on_delete=models.PROTECT, related_name="cases", verbose_name=_("template")
    )
    description = models.TextField(blank=True, verbose_name=_("description"))
    timeout_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=_timeout_validators(),
        help_text=_("Overrides the template's timeout."),
        verbose_name=_("timeout seconds"),
    )
    enabled = models.BooleanField(default=True, db_index=True, verbose_name=_("enabled"))

    class Meta:
        verbose_name = _("case")
        verbose_name_plural = _("cases")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        """Its dashboard page (the admin's "View on dashboard")."""
        return reverse("dashboard:case", args=[self.name])

    def _render(self) -> RenderConfig | None:
        try:
            return self.render_config
        except RenderConfig.DoesNotExist:
            return None

    @property
    def effective_env(self) -> dict[str, str]:
        """Render config env merged over the template's defaults."""
        render = self._render()
        return {**self.template.default_env, **(render.env if render else {})}

    @property
    def effective_args(self) -> list[str]:
        render = self._render()
        if render is not None and render.args is not None:
            return list(render.args)
        return list(self.template.args)

    @property
    def effective_resources(self) -> dict[str, Any]:
        render = self._render()
        if render is not None and render.resources is not None:
            return dict(render.resources)
        return dict(self.template.resources)

    @property
    def effective_timeout(self) -> int:
        return self.timeout_seconds or self.template.timeout_seconds


class RenderConfig(TimeStampedModel):
    """渲染配置: the env (and optional args/resources overrides) that turn a
    template into one case. One template yields many cases this way."""

    case = models.OneToOneField(
        Case, on_delete=models.CASCADE, related_name="render_config", verbose_name=_("case")
    )
    name = models.CharField(
        max_length=100,
        help_text=_("What this rendering targets, e.g. 'meta-etcd'."),
        verbose_name=_("name"),
    )
    env = models.JSONField(
        default=dict, blank=True, validators=[validate_env], verbose_name=_("env")
    )
    args = models.JSONField(
        null=True,
        blank=True,
        validators=[validate_string_list],
        help_text=_("Replaces the template's args when set."),
        verbose_name=_("args"),
    )
    resources = models.JSONField(
        null=True,
        blank=True,
        validators=[validate_resources],
        help_text=_("Replaces the template's resources when set."),
        verbose_name=_("resources"),
    )

    class Meta:
        verbose_name = _("render config")
        verbose_name_plural = _("render configs")

    def __str__(self) -> str:
        return self.name


class CaseSet(TimeStampedModel):
    name = models.SlugField(max_length=63, unique=True, verbose_name=_("name"))
    description = models.TextField(blank=True, verbose_name=_("description"))
    cases = models.ManyToManyField(
        Case,
        through="CaseSetMembership",
        related_name="case_sets",
        blank=True,
        verbose_name=_("cases"),
    )

    class Meta:
        verbose_name = _("case set")
        verbose_name_plural = _("case sets")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class CaseSetMembership(models.Model):
    case_set = models.ForeignKey(
        CaseSet, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("case set")
    )
    case = models.ForeignKey(
        Case, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("case")
    )

    class Meta:
        verbose_name = _("case set membership")
        verbose_name_plural = _("case set memberships")
        constraints = [
            models.UniqueConstraint(
                fields=["case_set", "case"], name="catalog_casesetmembership_uniq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.case_set} ∋ {self.case}"
