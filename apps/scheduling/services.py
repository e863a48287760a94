from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from celery.schedules import crontab
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask, PeriodicTasks

from apps.catalog.models import Case, CaseSetMembership
from apps.clusters.models import Cluster
from apps.clusters.selectors import cluster_group_resolve, clusters_for_targets
from apps.runs.fanout import runs_fan_out
from apps.runs.models import Trigger
from apps.runs.services import CreateResult, manual_key, redispatch_window, runs_create
from apps.scheduling import cron
from apps.scheduling.models import Binding, Event, EventSource
from apps.scheduling.signals import event_recorded

FIRE_BINDING_TASK = "apps.scheduling.tasks.fire_binding"
TICK_LOCK_CLASS = 0x6B70  # advisory lock namespace of schedule ticks ("kp")


def _periodic_task_name(binding: Binding) -> str:
    return f"kubeprobe-binding-{binding.pk}"


def binding_sync_periodic_task(*, binding: Binding) -> PeriodicTask | None:
    """Create, update or delete the binding's beat entry to match it.

    A binding with no schedule has no PeriodicTask; a disabled one keeps its
    PeriodicTask disabled (so its last-run time survives re-enabling).
    """
    task = binding.periodic_task
    if not binding.interval_seconds and not binding.cron:
        if task is not None:
            Binding.objects.filter(pk=binding.pk).update(periodic_task=None)
            binding.periodic_task = None
            task.delete()
        return None

    interval = crontab = None
    if binding.interval_seconds:
        interval, _ = IntervalSchedule.objects.get_or_create(
            every=binding.interval_seconds, period=IntervalSchedule.SECONDS
        )
    else:
        crontab, _ = CrontabSchedule.objects.get_or_create(
            **cron.parse(binding.cron), timezone=settings.TIME_ZONE
        )
    if task is None:
        task = PeriodicTask(name=_periodic_task_name(binding))
    task.task = FIRE_BINDING_TASK
    task.kwargs = json.dumps({"binding_id": binding.pk})
    task.interval = interval
    task.crontab = crontab
    task.enabled = binding.enabled
    task.description = f"KubeProbe binding {binding.name} ({binding.schedule_display})"
    # A tick that waited in the queue longer than one period is dropped, not piled up.
    task.expire_seconds = binding.interval_seconds or 60
    task.save()  # PeriodicTask.save() tells beat that the schedule changed
    if binding.periodic_task_id != task.pk:
        Binding.objects.filter(pk=binding.pk).update(periodic_task=task)
        binding.periodic_task = task
    return task


@transaction.atomic
def bindings_set_enabled(*, binding_ids: Iterable[int], enabled: bool) -> int:
    """Enable or disable many bindings and their beat entries in one go."""
    ids = list(binding_ids)
    count = Binding.objects.filter(pk__in=ids).update(enabled=enabled)
    PeriodicTask.objects.filter(binding__pk__in=ids).update(enabled=enabled)
    # Bulk updates skip PeriodicTask.save(), so tell beat ourselves.
    PeriodicTasks.update_changed()
    return count


# ---------------------------------------------------------------- firing


def binding_period(binding: Binding, now: datetime) -> timedelta | None:
    """How often a binding fires: its interval, or the gap between two cron fires."""
    if binding.interval_seconds:
        return timedelta(seconds=binding.interval_seconds)
    if not binding.cron:
        return None
    schedule = crontab(**cron.parse(binding.cron))
    schedule.nowfun = lambda: now
    first = schedule.remaining_estimate(now)
    # remaining_estimate(t) is "next fire after t, minus now": difference of two = the period.
    return schedule.remaining_estimate(now + first + timedelta(seconds=1)) - first


def binding_redispatch_after(binding: Binding, now: datetime) -> timedelta:
    """How long a run of this binding may stay pending before it is dispatched again."""
    return redispatch_window(binding_period(binding, now))


def binding_cases_queryset(*, binding: Binding) -> QuerySet[Case]:
    """Enabled cases of a binding: its own plus those of its case sets."""
    condition = Q(pk__in=binding.cases.values("pk")) | Q(
        pk__in=CaseSetMembership.objects.filter(case_set__in=binding.case_sets.all()).values(
            "case_id"
        )
    )
    return Case.objects.filter(condition, enabled=True).order_by("pk")


def binding_cases(*, binding: Binding) -> list[Case]:
    return list(binding_cases_queryset(binding=binding).select_related("template", "render_config"))


def binding_clusters_queryset(*, binding: Binding) -> QuerySet[Cluster]:
    """Enabled clusters of a binding (explicit and through groups), as a subquery."""
    return clusters_for_targets(clusters=binding.clusters.all(), groups=binding.groups.all())


def binding_clusters(*, binding: Binding) -> list[Cluster]:
    return list(binding_clusters_queryset(binding=binding))


def _record_skips(binding: Binding, result: CreateResult) -> None:
    if result.skipped:
        Binding.objects.filter(pk=binding.pk).update(
            skipped_count=F("skipped_count") + result.skipped
        )


@contextmanager
def _tick_lock(binding_id: int) -> Iterator[None]:
    """One tick of a binding at a time, across workers: a Postgres session advisory lock.

    A second delivery of the tick waits here, then finds it claimed and done.
    The lock dies with its session, so a worker killed mid-tick never holds it.
    """
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", [TICK_LOCK_CLASS, binding_id])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [TICK_LOCK_CLASS, binding_id])


def _store_tick(binding: Binding, tick: datetime) -> CreateResult:
    """Store every run of an accepted tick that is not stored yet, then close the tick."""
    # Planned and stored by the database (apps/runs/fanout.py): a tick over
    # 10,000 clusters × 20 cases never passes through Python row by row.
    # The idempotency key names the accepted tick, down to the microsecond.
    result = runs_fan_out(
        cases=binding_cases_queryset(binding=binding),
        clusters=binding_clusters_queryset(binding=binding),
        trigger=Trigger.SCHEDULE,
        key=f"schedule:{binding.pk}:{tick.isoformat()}",
        binding_id=binding.pk,
        redispatch_after=binding_redispatch_after(binding, tick),
    )
    Binding.objects.filter(pk=binding.pk, tick_open_at=tick).update(
        tick_open_at=None, skipped_count=F("skipped_count") + result.skipped
    )
    return result


def binding_fire_schedule(*, binding_id: int, now: datetime | None = None) -> CreateResult:
    """A beat tick: create runs for every case × cluster of the binding.

    The tick is claimed by moving the binding's last_fired_at forward, only if
    the last accepted tick is at least half a period old. A duplicated tick (a
    second beat, a redelivered message) finds it moved and creates nothing;
    a tick that waited in the queue still counts. The claim commits first and
    marks the tick open (tick_open_at); its runs are stored in slices that
    commit one by one (runs_fan_out), and the tick is closed when all are in.
    A worker that dies midway leaves the tick open: the next delivery for the
    binding (the redelivered message, a retry or the next tick) stores what is
    missing, under the same idempotency keys, before anything else.
    """
    now = now or timezone.now()
    total = CreateResult()
    with _tick_lock(binding_id):
        binding = Binding.objects.filter(pk=binding_id, enabled=True).first()
        if binding is None:
            return total
        if binding.tick_open_at is not None:
            _add(total, _store_tick(binding, binding.tick_open_at))
        half_period = timedelta(seconds=(binding.interval_seconds or 60) / 2)
        claimed = (
            Binding.objects.filter(pk=binding_id, enabled=True)
            .filter(Q(last_fired_at__isnull=True) | Q(last_fired_at__lte=now - half_period))
            .update(last_fired_at=now, tick_open_at=now)
        )
        if claimed:
            _add(total, _store_tick(binding, now))
    return total


def _add(total: CreateResult, result: CreateResult) -> None:
    total.created += result.created
    total.skipped += result.skipped


def binding_fire_now(
    *,
    binding: Binding,
    requested_by_id: int | None = None,
    clusters: Iterable[Cluster] | None = None,
    cases: Iterable[Case] | None = None,
) -> CreateResult:
    """Run a binding by hand ("Run now"), optionally limited to some clusters or cases."""
    targets = binding_clusters(binding=binding)
    if clusters is not None:
        wanted = {c.pk for c in clusters}
        targets = [c for c in targets if c.pk in wanted]
    subjects = binding_cases(binding=binding)
    if cases is not None:
        wanted_cases = {c.pk for c in cases}
        subjects = [c for c in subjects if c.pk in wanted_cases]
    result = runs_create(
        pairs=[(case, cluster) for cluster in targets for case in subjects],
        trigger=Trigger.MANUAL,
        key=manual_key(),
        binding_id=binding.pk,
        requested_by_id=requested_by_id,
        redispatch_after=binding_redispatch_after(binding, timezone.now()),
    )
    _record_skips(binding, result)
    return result


def bindings_for_event(*, event: Event) -> list[Binding]:
    """Enabled bindings that subscribe to the event and target its cluster."""
    matching = []
    candidates = Binding.objects.filter(enabled=True).exclude(event_triggers=[])
    for binding in candidates.prefetch_related("clusters", "groups"):
        if not any(event.matches(t) for t in binding.event_triggers):
            continue
        if any(c.pk == event.cluster_id for c in binding.clusters.all()) or any(
            cluster_group_resolve(group=g).filter(pk=event.cluster_id).exists()
            for g in binding.groups.all()
        ):
            matching.append(binding)
    return matching


@transaction.atomic
def event_record(
    *,
    cluster: Cluster,
    kind: str,
    component: str = "",
    detail: dict[str, Any] | None = None,
    source: str = EventSource.API,
) -> tuple[Event, CreateResult]:
    """Store an event and fire, at once, every binding that subscribes to it."""
    event = Event.objects.create(
        cluster=cluster, kind=kind, component=component, detail=detail or {}, source=source
    )
    total = CreateResult()
    fired = bindings_for_event(event=event) if cluster.enabled else []
    event_recorded.send(sender=Event, event=event, bindings=fired)
    if fired:
        for binding in fired:
            result = runs_create(
                pairs=[(case, cluster) for case in binding_cases(binding=binding)],
                trigger=Trigger.EVENT,
                key=f"event:{event.pk}:{binding.pk}",
                binding_id=binding.pk,
                event_id=event.pk,
                redispatch_after=binding_redispatch_after(binding, event.created_at),
            )
            _record_skips(binding, result)
            total.created += result.created
            total.skipped += result.skipped
    Event.objects.filter(pk=event.pk).update(runs_created=len(total.created))
    event.runs_created = len(total.created)
    return event, total


def runs_now(
    *,
    clusters: Iterable[Cluster] | None = None,
    cases: Iterable[Case] | None = None,
    requested_by_id: int | None = None,
) -> CreateResult:
    """ "Run now" from the admin: every enabled binding's work, limited to these clusters or cases."""
    cluster_list = list(clusters) if clusters is not None else None
    case_list = list(cases) if cases is not None else None
    total = CreateResult()
    for binding in Binding.objects.filter(enabled=True).order_by("pk"):
        result = binding_fire_now(
            binding=binding, requested_by_id=requested_by_id, clusters=cluster_list, cases=case_list
        )
        total.created += result.created
        total.skipped += result.skipped
    return total
