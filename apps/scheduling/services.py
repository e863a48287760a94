from __future__ import annotations

import json
from collections.abc import Iterable

from django.conf import settings
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask, PeriodicTasks

from apps.scheduling import cron
from apps.scheduling.models import Binding

FIRE_BINDING_TASK = "apps.scheduling.tasks.fire_binding"


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
