from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.kube import LocalKube
from tests.kubeproxy import FaultProxy


@pytest.fixture(autouse=True)
def _fresh_cluster_clients() -> Iterator[None]:
    """Cached API clients point at per-test proxies and service accounts: drop them after."""
    yield
    from apps.clusters.k8s import clear_client_cache

    clear_client_cache()


@pytest.fixture
def fault_proxy(kube: LocalKube) -> Iterator[FaultProxy]:
    """The fault-injecting proxy in front of the local API server (tests/kubeproxy.py)."""
    proxy = FaultProxy(kube)
    yield proxy
    proxy.stop()
