from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.alerts.transports.helpers import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP server on 127.0.0.1 that records what it receives."""
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def short_timeout(settings):  # type: ignore[no-untyped-def]
    settings.KUBEPROBE_NOTIFY_TIMEOUT_SECONDS = 0.5
    return 0.5
