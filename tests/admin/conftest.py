"""Fixtures for the admin tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _plain_static_storage(settings) -> None:
    """Admin pages use {% static %}; tests never run collectstatic, so the
    manifest storage of production settings has no manifest to read."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
