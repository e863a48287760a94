"""Editing a binding (admin, API, any instance loaded before a tick) never writes back
the scheduler's columns: a tick's skips, its claim and an open tick survive the edit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apps.scheduling.models import Binding
from apps.scheduling.services import binding_fire_schedule
from tests.factories import BindingFactory, CaseFactory, ClusterFactory

TICK = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)


@pytest.mark.django_db
def test_saving_an_instance_loaded_before_ticks_keeps_their_skips_and_claim() -> None:
    binding = BindingFactory(name="edited", interval_seconds=60)
    binding.clusters.set([ClusterFactory(name="c0"), ClusterFactory(name="c1")])
    binding.cases.set([CaseFactory(name="case")])
    stale = Binding.objects.get(pk=binding.pk)  # an edit form opened now
    binding_fire_schedule(binding_id=binding.pk, now=TICK)
    # Both runs still active at the next tick: both pairs are skipped and counted.
    second = binding_fire_schedule(binding_id=binding.pk, now=TICK + timedelta(seconds=60))
    assert second.skipped == 2 and not second.created
    stored = Binding.objects.get(pk=binding.pk)
    # The scheduler's tick open on the row, as a worker that died midway leaves it.
    Binding.objects.filter(pk=binding.pk).update(tick_open_at=stored.last_fired_at)

    stale.enabled = False
    stale.description = "paused for maintenance"
    stale.save()

    saved = Binding.objects.get(pk=binding.pk)
    assert (saved.enabled, saved.description) == (False, "paused for maintenance")
    assert saved.skipped_count == 2
    assert saved.last_fired_at == TICK + timedelta(seconds=60)
    assert saved.tick_open_at == TICK + timedelta(seconds=60)
    assert saved.periodic_task_id == stored.periodic_task_id is not None
    assert not saved.periodic_task.enabled  # the beat entry still follows the edit


@pytest.mark.django_db
def test_a_new_binding_and_explicit_update_fields_write_as_asked() -> None:
    binding = Binding(name="fresh", interval_seconds=30, skipped_count=5)
    binding.save()
    assert Binding.objects.get(pk=binding.pk).skipped_count == 5
    binding.skipped_count = 7
    binding.save(update_fields=["skipped_count"])
    assert Binding.objects.get(pk=binding.pk).skipped_count == 7
