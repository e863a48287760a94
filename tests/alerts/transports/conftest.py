from __future__ import annotations

import pytest


@pytest.fixture
def short_timeout(settings):  # type: ignore[no-untyped-def]
    settings.KUBEPROBE_NOTIFY_TIMEOUT_SECONDS = 0.5
    return 0.5
