from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django_celery_beat.models import PeriodicTask, PeriodicTasks

from apps.scheduling.models import Binding
from apps.scheduling.services import FIRE_BINDING_TASK, bindings_set_enabled
from tests.factories import BindingFactory


def task_of(binding: Binding) -> PeriodicTask:
    return PeriodicTask.objects.get(binding__pk=binding.pk)


@pytest.mark.django_db
def test_saving_a_binding_creates_its_periodic_task() -> None:
    binding = BindingFactory(interval_seconds=30)
    task = task_of(binding)
    assert task.task == FIRE_BINDING_TASK
    assert json.loads(task.kwargs) == {"binding_id": binding.pk}
    assert task.interval.every == 30 and task.interval.period == "seconds"
    assert task.crontab is None
    assert task.enabled


@pytest.mark.django_db
def test_changing_the_schedule_updates_the_same_task() -> None:
    binding = BindingFactory(interval_seconds=30)
    before = task_of(binding).pk
    binding.interval_seconds = None
    binding.cron = "*/5 2 * * 1-5"
    binding.save()
    task = task_of(binding)
    assert task.pk == before
    assert task.interval is None
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("*/5", "2", "1-5")
    assert PeriodicTask.objects.count() == 1


@pytest.mark.django_db
def test_macro_cron_is_expanded() -> None:
    binding = BindingFactory(interval_seconds=None, cron="@hourly")
    assert (task_of(binding).crontab.minute, task_of(binding).crontab.hour) == ("0", "*")


@pytest.mark.django_db
def test_disabling_keeps_the_task_but_disables_it() -> None:
    binding = BindingFactory(interval_seconds=10)
    binding.enabled = False
    binding.save()
    assert not task_of(binding).enabled
    binding.enabled = True
    binding.save()
    assert task_of(binding).enabled


@pytest.mark.django_db
def test_removing_the_schedule_deletes_the_task() -> None:
    binding = BindingFactory(interval_seconds=10)
    binding.interval_seconds = None
    binding.save()
    assert PeriodicTask.objects.count() == 0
    assert Binding.objects.get(pk=binding.pk).periodic_task is None


@pytest.mark.django_db
def test_deleting_the_binding_deletes_the_task_also_for_queryset_deletes() -> None:
    one, two = BindingFactory(), BindingFactory()
    assert PeriodicTask.objects.count() == 2
    one.delete()
    assert list(PeriodicTask.objects.values_list("binding__pk", flat=True)) == [two.pk]
    Binding.objects.all().delete()
    assert PeriodicTask.objects.count() == 0


@pytest.mark.django_db
def test_binding_and_task_change_in_one_transaction() -> None:
    binding = BindingFactory(interval_seconds=10)
    with pytest.raises(RuntimeError), transaction.atomic():
        binding.interval_seconds = 99
        binding.save()
        raise RuntimeError("roll back")
    assert task_of(binding).interval.every == 10
    assert Binding.objects.get(pk=binding.pk).interval_seconds == 10


@pytest.mark.django_db
def test_bulk_enable_disable_updates_tasks_and_tells_beat() -> None:
    bindings = [BindingFactory(), BindingFactory(), BindingFactory()]
    PeriodicTasks.objects.all().delete()
    count = bindings_set_enabled(binding_ids=[b.pk for b in bindings[:2]], enabled=False)
    assert count == 2
    assert [task_of(b).enabled for b in bindings] == [False, False, True]
    # Beat reloads its schedule when this marker changes.
    assert PeriodicTasks.last_change() is not None


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"cron": "61 * * * *"}, "Invalid cron expression"),
        ({"cron": "* * *"}, "five fields"),
        ({"cron": "*/5 * * * *", "interval_seconds": 10}, "not both"),
    ],
)
@pytest.mark.django_db
def test_bad_schedules_fail_clean_naming_cron(fields: dict[str, object], fragment: str) -> None:
    binding = Binding(name="x", **{"interval_seconds": None, **fields})
    with pytest.raises(ValidationError) as info:
        binding.full_clean()
    assert any(fragment in m for m in info.value.message_dict["cron"])
