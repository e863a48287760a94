"""Bindings keep their beat entries in step: receivers, so that no caller can forget it."""

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from apps.scheduling.models import Binding
from apps.scheduling.services import binding_sync_periodic_task


# A binding's beat entry follows it wherever it is saved or deleted (admin, API,
# local demo, bulk deletes): receivers, so that no caller can forget it.
@receiver(post_save, sender=Binding, dispatch_uid="binding-save-periodic-task")
def _sync_periodic_task(sender: type[Binding], instance: Binding, **kwargs: Any) -> None:
    # Inside the save's transaction where the caller has one (admin and API writes
    # do), so the schedule row and the binding change together.
    if not kwargs.get("raw"):  # loading a fixture
        binding_sync_periodic_task(binding=instance)


@receiver(post_delete, sender=Binding, dispatch_uid="binding-delete-periodic-task")
def _delete_periodic_task(sender: type[Binding], instance: Binding, **kwargs: Any) -> None:
    # Runs inside the delete's transaction (also for queryset deletes).
    if instance.periodic_task_id:
        from django_celery_beat.models import PeriodicTask

        PeriodicTask.objects.filter(pk=instance.periodic_task_id).delete()
