from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from apps.clusters import kubeconfig as kc
from apps.core.crypto import EncryptedTextField, fingerprint
from apps.core.models import TimeStampedModel
from apps.core.validators import validate_labels, validate_string_list

DNS_LABEL_RE = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


def default_watch_namespaces() -> list[str]:
    return ["kube-system"]


class Executor(models.TextChoices):
    """Where a cluster's runs execute: the one list of executor kinds. Each kind has
    its class in apps/runs/executors/ (a test checks they match)."""

    KUBERNETES = "kubernetes", _("Kubernetes (pod in the cluster)")
    LOCAL = "local", _("Local (subprocess on the worker host)")


LOCAL_EXECUTOR_DISABLED = (
    "The local executor is disabled on this portal: it would run the case's command on the "
    "worker host. Set KUBEPROBE_LOCAL_EXECUTOR_ENABLED=true only for trials and demos, or use "
    "the kubernetes executor."
)


class ApiStatus(models.TextChoices):
    """What the cluster's API server answered to the last check (/version, /readyz)."""

    NOT_CHECKED = "", _("not checked")
    OK = "ok", _("ok")
    NOT_READY = "not-ready", _("not ready")
    UNREACHABLE = "unreachable", _("unreachable")
    UNAUTHORIZED = "unauthorized", _("unauthorized")
    ERROR = "error", _("error")


# Written only by the API check (services.cluster_check_api) and the circuit
# breaker (breaker.py): read-only wherever clusters are edited.
API_CHECK_FIELDS = ("api_status", "api_version", "api_checked_at", "api_error")
BREAKER_FIELDS = (
    "breaker_open_since",
    "breaker_failures",
    "breaker_next_probe_at",
    "breaker_last_error",
)


class Cluster(TimeStampedModel):
    name = models.SlugField(
        max_length=63,
        unique=True,
        help_text=_("Unique id used in URLs, API and CLI."),
        verbose_name=_("name"),
    )
    display_name = models.CharField(max_length=200, blank=True, verbose_name=_("display name"))
    description = models.TextField(blank=True, verbose_name=_("description"))
    labels = models.JSONField(
        default=dict, blank=True, validators=[validate_labels], verbose_name=_("labels")
    )
    region = models.CharField(max_length=63, blank=True, db_index=True, verbose_name=_("region"))
    environment = models.CharField(
        max_length=63,
        blank=True,
        db_index=True,
        help_text=_("e.g. prod, staging"),
        verbose_name=_("environment"),
    )
    executor = models.CharField(
        max_length=20,
        choices=Executor.choices,
        default=Executor.KUBERNETES,
        verbose_name=_("executor"),
    )
    kubeconfig = EncryptedTextField(
        blank=True,
        help_text=_("Encrypted at rest; never shown again."),
        verbose_name=_("kubeconfig"),
    )
    kubeconfig_fingerprint = models.CharField(
        max_length=20, blank=True, editable=False, verbose_name=_("kubeconfig fingerprint")
    )
    context = models.CharField(
        max_length=253,
        blank=True,
        help_text=_("Kubeconfig context; empty means current-context."),
        verbose_name=_("context"),
    )
    namespace = models.CharField(
        max_length=63,
        default="kubeprobe",
        help_text=_("Namespace where probe pods run."),
        validators=[RegexValidator(DNS_LABEL_RE, "Not a valid namespace name (DNS label).")],
        verbose_name=_("namespace"),
    )
    api_qps = models.FloatField(
        default=20,
        validators=[MinValueValidator(0.1)],
        help_text=_("Client-side rate limit for this cluster's API."),
        verbose_name=_("api qps"),
    )
    api_timeout_seconds = models.PositiveIntegerField(
        default=10, validators=[MinValueValidator(1)], verbose_name=_("api timeout seconds")
    )
    watch_namespaces = models.JSONField(
        default=default_watch_namespaces,
        blank=True,
        validators=[validate_string_list],
        help_text=_(
            "Namespaces whose Deployments, DaemonSets and StatefulSets `watch_clusters` turns into events."
        ),
        verbose_name=_("watch namespaces"),
    )
    enabled = models.BooleanField(default=True, db_index=True, verbose_name=_("enabled"))
    # Written only by cluster_check_api (apps/clusters/services.py), never by forms.
    api_version = models.CharField(
        max_length=64,
        blank=True,
        editable=False,
        help_text=_("gitVersion from the API server's /version at the last check that reached it."),
        verbose_name=_("api version"),
    )
    api_status = models.CharField(
        max_length=16,
        choices=ApiStatus.choices,
        default=ApiStatus.NOT_CHECKED,
        blank=True,
        editable=False,
        db_index=True,
        help_text=_("The last check of /version and /readyz."),
        verbose_name=_("api status"),
    )
    api_checked_at = models.DateTimeField(
        null=True, blank=True, editable=False, verbose_name=_("api checked at")
    )
    api_error = models.CharField(
        max_length=300,
        blank=True,
        editable=False,
        help_text=_("Why the last check was not ok."),
        verbose_name=_("api error"),
    )
    # The circuit breaker (apps/clusters/breaker.py): written only by it, never by forms.
    breaker_failures = models.PositiveIntegerField(
        default=0,
        editable=False,
        help_text=_("Consecutive failures to reach the API server."),
        verbose_name=_("breaker failures"),
    )
    breaker_open_since = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        db_index=True,
        help_text=_("Unreachable since: calls fail at once, without contacting the cluster."),
        verbose_name=_("breaker open since"),
    )
    breaker_next_probe_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text=_("When one call may try the API server again (half-open)."),
        verbose_name=_("breaker next probe at"),
    )
    breaker_last_error = models.CharField(
        max_length=300,
        blank=True,
        editable=False,
        help_text=_("The last failure to connect."),
        verbose_name=_("breaker last error"),
    )

    class Meta:
        verbose_name = _("cluster")
        verbose_name_plural = _("clusters")
        ordering = ["name"]
        indexes = [models.Index(fields=["environment", "region"])]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        """Its dashboard page (the admin's "View on dashboard")."""
        return reverse("dashboard:cluster", args=[self.name])

    @property
    def has_kubeconfig(self) -> bool:
        return bool(self.kubeconfig_fingerprint)

    @property
    def breaker_open(self) -> bool:
        return self.breaker_open_since is not None

    def clean(self) -> None:
        super().clean()
        self.validate_kubeconfig()

    def validate_kubeconfig(self) -> None:
        """The kubeconfig parses, has the context and a server URL.

        Kubernetes clusters need one; local clusters may leave it empty.
        """
        if self.kubeconfig:
            kc.validate(self.kubeconfig, self.context)
        elif self.executor == Executor.KUBERNETES:
            raise ValidationError(
                {"kubeconfig": _("A kubeconfig is required for the kubernetes executor.")}
            )

    def save(self, *args: object, **kwargs: object) -> None:
        self.validate_kubeconfig()
        self.kubeconfig_fingerprint = fingerprint(self.kubeconfig) if self.kubeconfig else ""
        super().save(*args, **kwargs)  # type: ignore[arg-type]


class ClusterGroup(TimeStampedModel):
    """A named set of clusters: explicit members plus every cluster whose
    labels match the selector (all key=value pairs; empty selects none)."""

    name = models.SlugField(max_length=63, unique=True, verbose_name=_("name"))
    description = models.TextField(blank=True, verbose_name=_("description"))
    members = models.ManyToManyField(
        Cluster, blank=True, related_name="explicit_groups", verbose_name=_("members")
    )
    selector = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_labels],
        help_text=_('Label selector, e.g. {"env": "prod", "region": "eu"}.'),
        verbose_name=_("selector"),
    )
    # Dashboards: users without the global clusters.view_cluster permission see the
    # clusters of the groups that name one of their auth groups here.
    viewer_groups = models.ManyToManyField(
        "auth.Group",
        blank=True,
        related_name="viewable_cluster_groups",
        help_text=_(
            "Users in these groups see this group's clusters on the dashboards "
            "(users with the 'view cluster' permission see every cluster)."
        ),
        verbose_name=_("viewer groups"),
    )

    class Meta:
        verbose_name = _("cluster group")
        verbose_name_plural = _("cluster groups")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
