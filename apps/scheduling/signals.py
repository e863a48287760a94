from typing import Any

from django.db.models.signals import post_delete
from django.dispatch import Signal, receiver

from apps.scheduling.models import Binding


@receiver(post_delete, sender=Binding, dispatch_uid="binding-delete-periodic-task")
def _delete_periodic_task(sender: type[Binding], instance: Binding, **kwargs: Any) -> None:
    # Runs inside the delete's transaction (also for queryset deletes).
    if instance.periodic_task_id:
        from django_celery_beat.models import PeriodicTask

        PeriodicTask.objects.filter(pk=instance.periodic_task_id).delete()


# event (an Event), bindings (the enabled bindings it fired). Sent inside the
# event's transaction, so receivers' writes (e.g. an upgrade silence) commit with it.
event_recorded = Signal()
