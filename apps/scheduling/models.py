from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _
from django_celery_beat.models import PeriodicTask

from apps.catalog.models import Case, CaseSet
from apps.clusters.models import Cluster, ClusterGroup
from apps.core.models import TimeStampedModel
from apps.scheduling import cron

EVENT_WORD_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
BUILTIN_EVENT_KINDS = ("component_release", "cluster_change", "upgrade")


def validate_event_triggers(value: Any) -> None:
    """[{"kind": "component_release", "component": "etcd"}, {"kind": "upgrade"}]"""
    if not isinstance(value, list):
        raise ValidationError(_("Event triggers must be a list of {kind, component} objects."))
    for i, item in enumerate(value):
        if not isinstance(item, dict) or set(item) - {"kind", "component"}:
            raise ValidationError(
                _("Event trigger %(i)d must be an object with 'kind' and optional 'component'."),
                params={"i": i},
            )
        kind = item.get("kind")
        if not isinstance(kind, str) or not EVENT_WORD_RE.match(kind):
            raise ValidationError(
                _(
                    "Event trigger %(i)d: kind %(kind)r is not a lowercase word "
                    "(built in: %(builtin)s, or your own)."
                ),
                params={"i": i, "kind": kind, "builtin": ", ".join(BUILTIN_EVENT_KINDS)},
            )
        component = item.get("component", "")
        if not isinstance(component, str) or (component and not EVENT_WORD_RE.match(component)):
            raise ValidationError(
                _("Event trigger %(i)d: component %(c)r is not a lowercase word."),
                params={"i": i, "c": component},
            )


def binding_scope_errors(
    *, clusters: Any, groups: Any, cases: Any, case_sets: Any
) -> dict[str, str]:
    """A binding needs something to run on and something to run (admin and API alike)."""
    errors = {}
    if not (clusters or groups):
        errors["clusters"] = "Name at least one cluster or group."
    if not (cases or case_sets):
        errors["cases"] = "Name at least one case or case set."
    return errors


# Binding columns only the scheduler writes (apps/scheduling/services.py).
SCHEDULER_FIELDS = frozenset({"skipped_count", "last_fired_at", "tick_open_at", "periodic_task"})


class Binding(TimeStampedModel):
    """Targets (clusters, groups) × subjects (cases, case sets), with triggers."""

    name = models.SlugField(max_length=63, unique=True, verbose_name=_("name"))
    description = models.TextField(blank=True, verbose_name=_("description"))
    clusters = models.ManyToManyField(
        Cluster, blank=True, related_name="bindings", verbose_name=_("clusters")
    )
    groups = models.ManyToManyField(
        ClusterGroup, blank=True, related_name="bindings", verbose_name=_("groups")
    )
    cases = models.ManyToManyField(
        Case, blank=True, related_name="bindings", verbose_name=_("cases")
    )
    case_sets = models.ManyToManyField(
        CaseSet, blank=True, related_name="bindings", verbose_name=_("case sets")
    )
    interval_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=_("Run every N seconds. Leave empty for cron or event/manual only."),
        verbose_name=_("interval seconds"),
    )
    cron = models.CharField(
        max_length=100,
        blank=True,
        help_text=_(
            "Five-field cron expression (server time zone), e.g. '*/5 * * * *', or @hourly."
        ),
        verbose_name=_("cron"),
    )
    event_triggers = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_event_triggers],
        help_text=_(
            'Events that run it at once, e.g. [{"kind": "component_release", "component": "etcd"}].'
        ),
        verbose_name=_("event triggers"),
    )
    upgrade_silence_minutes = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=_(
            "When an `upgrade` event fires this binding, silence the cluster's alerts for "
            "this long (an event's detail.duration_minutes wins). Empty: no silence."
        ),
        verbose_name=_("upgrade silence minutes"),
    )
    enabled = models.BooleanField(default=True, db_index=True, verbose_name=_("enabled"))
    skipped_count = models.PositiveBigIntegerField(
        default=0,
        editable=False,
        help_text=_(
            "Runs not started because the previous run of the same case on the same cluster was still active."
        ),
        verbose_name=_("skipped count"),
    )
    last_fired_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text=_("The last schedule tick accepted."),
        verbose_name=_("last fired at"),
    )
    # A tick accepted whose runs are not all stored yet (its slices commit one by
    # one): the next delivery for the binding finishes it first (services.py).
    tick_open_at = models.DateTimeField(
        null=True, blank=True, editable=False, verbose_name=_("tick open at")
    )
    periodic_task = models.OneToOneField(
        PeriodicTask,
        null=True,
        blank=True,
        editable=False,
        on_delete=models.SET_NULL,
        related_name="binding",
        verbose_name=_("periodic task"),
    )

    class Meta:
        verbose_name = _("binding")
        verbose_name_plural = _("bindings")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        # The scheduler moves these columns with conditional UPDATEs while an edit is
        # open (admin, API, a stale instance): a plain save of an existing row would
        # write back the values it loaded, erasing skips and reopening or losing a
        # tick. Only creating a binding writes them.
        if not self._state.adding and kwargs.get("update_fields") is None:
            deferred = self.get_deferred_fields()
            kwargs["update_fields"] = [
                f.name
                for f in self._meta.concrete_fields
                if not f.primary_key
                and f.name not in SCHEDULER_FIELDS
                and f.attname not in deferred
            ]
        super().save(*args, **kwargs)

    @property
    def schedule_display(self) -> str:
        if self.interval_seconds:
            return f"every {self.interval_seconds}s"
        if self.cron:
            return f"cron {self.cron}"
        return "events/manual only"

    def clean(self) -> None:
        super().clean()
        if self.interval_seconds and self.cron:
            raise ValidationError(
                {"cron": _("Set either an interval or a cron expression, not both.")}
            )
        if self.cron:
            try:
                cron.parse(self.cron)
            except ValidationError as exc:
                raise ValidationError({"cron": exc.messages}) from exc


class EventSource(models.TextChoices):
    API = "api", _("API")
    WATCH = "watch", _("Cluster watch")
    ADMIN = "admin", _("Admin")


class Event(models.Model):
    """A change in a cluster (release, upgrade, node change) that may fire bindings."""

    cluster = models.ForeignKey(
        Cluster, on_delete=models.CASCADE, related_name="events", verbose_name=_("cluster")
    )
    kind = models.CharField(
        max_length=63,
        help_text=_("component_release, cluster_change, upgrade, or your own word."),
        verbose_name=_("kind"),
    )
    component = models.CharField(max_length=63, blank=True, verbose_name=_("component"))
    detail = models.JSONField(default=dict, blank=True, verbose_name=_("detail"))
    source = models.CharField(
        max_length=20,
        choices=EventSource.choices,
        default=EventSource.API,
        verbose_name=_("source"),
    )
    created_at = models.DateTimeField(
        auto_now_add=True, db_index=True, verbose_name=_("created at")
    )
    runs_created = models.PositiveIntegerField(default=0, verbose_name=_("runs created"))

    class Meta:
        verbose_name = _("event")
        verbose_name_plural = _("events")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["cluster", "-created_at"], name="event_cluster_recent")]

    def __str__(self) -> str:
        what = f"{self.kind}:{self.component}" if self.component else self.kind
        return f"{what} on {self.cluster_id}"

    def matches(self, trigger: dict[str, str]) -> bool:
        """A binding trigger matches on kind, and on component when it names one."""
        if trigger.get("kind") != self.kind:
            return False
        component = trigger.get("component") or ""
        return not component or component == self.component
