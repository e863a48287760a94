"""Celery entry points of the diagnosis app."""

from __future__ import annotations

from celery import shared_task

from apps.diagnosis import services


@shared_task(name="apps.diagnosis.tasks.retrain_classifier", ignore_result=True)
def retrain_classifier(force: bool = False) -> int | None:
    """A new classifier version when operators labelled something since the last one
    (or when there is none yet); its version, or None when nothing changed."""
    model = services.classifier_retrain(min_new_labels=0 if force else 1)
    return model.version if model else None
