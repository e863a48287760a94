"""Celery entry points for triggers: thin, ids in, services do the work."""

from celery import shared_task

from apps.scheduling.services import binding_fire_schedule


@shared_task(name="apps.scheduling.tasks.fire_binding", ignore_result=True)
def fire_binding(binding_id: int) -> int:
    """A binding's beat tick. Returns how many runs it created."""
    return len(binding_fire_schedule(binding_id=binding_id).created)
