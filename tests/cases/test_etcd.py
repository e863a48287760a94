"""The etcd case against a real etcd server (Debian's etcd-server)."""

from __future__ import annotations

import base64
import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cases.servers import Etcd, make_pki
from tests.portal import Portal
from tests.portal import run_case as run_module

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def portal() -> Iterator[Portal]:
    server = Portal()
    yield server
    server.stop()


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[Etcd]:
    server = Etcd(tmp_path)
    yield server
    server.stop()


def run_case(portal: Portal, **env: str) -> tuple[subprocess.CompletedProcess[str], dict]:  # type: ignore[type-arg]
    # A generous threshold unless a test sets one: CI machines are busy.
    return run_module("etcd", {"ETCD_OP_THRESHOLD_MS": "20000", **env}, portal)


def keys_left(etcd: Etcd) -> int:
    body = {
        "key": base64.b64encode(b"\0").decode(),
        "range_end": base64.b64encode(b"\0").decode(),
        "count_only": True,
    }
    request = urllib.request.Request(
        etcd.url + "/v3/kv/range", data=json.dumps(body).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        return int(json.loads(answer.read()).get("count", 0))


def test_every_operation_passes_and_is_timed(portal: Portal, etcd: Etcd) -> None:
    result, body = run_case(portal, ETCD_ENDPOINTS=etcd.url)
    assert result.returncode == 0, result.stderr
    assert body["ok"] is True
    assert [s["name"] for s in body["steps"]] == [
        f"{op} {etcd.url}" for op in ("put", "get", "range", "txn", "delete")
    ]
    assert all(s["ok"] and s["duration_ms"] >= 0 for s in body["steps"])
    assert keys_left(etcd) == 0


def test_tls_with_client_certificates(portal: Portal, tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    server = Etcd(tmp_path, pki)
    try:
        tls = {"ETCD_ENDPOINTS": server.url, "ETCD_CACERT": str(pki.ca)}
        result, body = run_case(
            portal, **tls, ETCD_CERT=str(pki.client_cert), ETCD_KEY=str(pki.client_key)
        )
        assert body["ok"] is True, body
        # Without a client certificate the server refuses the handshake.
        result, body = run_case(portal, **tls)
        assert body["ok"] is False and result.returncode != 0
        assert "put" in body["errors"][0]
    finally:
        server.stop()


def test_stopped_etcd_and_unreachable_endpoint_fail_naming_the_endpoint(
    portal: Portal, etcd: Etcd
) -> None:
    unreachable = "http://127.0.0.1:1"
    _, body = run_case(portal, ETCD_ENDPOINTS=f"{etcd.url},{unreachable}")
    assert body["ok"] is False
    assert any(unreachable in e and "refused" in e.lower() for e in body["errors"])
    assert body["errors"][-1] == "RuntimeError: etcd probe failed on 1 of 2 endpoints"
    assert all(s["ok"] for s in body["steps"] if etcd.url in s["name"])  # the healthy one passed
    etcd.stop()
    _, body = run_case(portal, ETCD_ENDPOINTS=etcd.url)
    assert body["ok"] is False and f"put {etcd.url}" in body["errors"][0]


def test_slow_operations_fail_with_the_measured_time(portal: Portal, etcd: Etcd) -> None:
    _, body = run_case(portal, ETCD_ENDPOINTS=etcd.url, ETCD_OP_THRESHOLD_MS="0")
    assert body["ok"] is False
    assert "over the 0 ms threshold" in body["steps"][0]["error"]
    assert keys_left(etcd) == 0  # cleaned up after the failure too


def test_missing_configuration_is_named(portal: Portal) -> None:
    _, body = run_case(portal)
    assert body["ok"] is False and "ETCD_ENDPOINTS is required" in body["errors"][0]
