"""The certificate inspection against real TLS servers with generated certificates."""

from __future__ import annotations

import base64
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.cases.servers import issue
from tests.portal import run_case as run_module

ROOT = Path(__file__).resolve().parents[2]


class TlsServer:
    """Accepts TLS connections with the given certificate until stopped."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stopped = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (ssl.SSLError, OSError):
                conn.close()  # the client refused our certificate: expected in some tests

    def stop(self) -> None:
        self.stopped.set()
        self.sock.close()


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, object]:
    ca_cert, ca_key, ca_path, _ = issue(tmp_path, "test-ca", ca=None)
    ca = (ca_cert, ca_key)
    made = {
        "valid": issue(tmp_path, "valid", ca=ca, days_valid=365),
        "expiring": issue(tmp_path, "expiring", ca=ca, days_valid=5),
        "expired": issue(tmp_path, "expired", ca=ca, days_valid=-1, not_before_days=30),
        "wronghost": issue(tmp_path, "wronghost", ca=ca, hosts=("other.example",)),
        "selfsigned": issue(tmp_path, "selfsigned", ca=None),
        "client-old": issue(tmp_path, "client-old", ca=ca, days_valid=3, client=True),
        "client-ok": issue(tmp_path, "client-ok", ca=ca, days_valid=200, client=True),
    }
    return {"ca": ca_path, **made}


@pytest.fixture
def servers(pki: dict[str, object]) -> Iterator[dict[str, TlsServer]]:
    running = {
        name: TlsServer(pki[name][2], pki[name][3])  # type: ignore[index]
        for name in ("valid", "expiring", "expired", "wronghost", "selfsigned")
    }
    yield running
    for server in running.values():
        server.stop()


def run_case(**env: str) -> dict:  # type: ignore[type-arg]
    return run_module("certificates", env)[1]


def test_each_kind_of_certificate_problem_is_named(pki, servers, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    endpoints = {name: f"localhost:{server.port}" for name, server in servers.items()}
    kubeconfig = tmp_path / "kubeconfig"
    client_ok = Path(pki["client-ok"][2]).read_bytes()
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "users": [
                    {
                        "name": "admin",
                        "user": {"client-certificate-data": base64.b64encode(client_ok).decode()},
                    }
                ],
            }
        )
    )
    body = run_case(
        CERT_ENDPOINTS=",".join(endpoints.values()),
        CERT_CA_FILE=str(pki["ca"]),
        CERT_MIN_DAYS="30",
        CERT_FILES=str(pki["client-old"][2]),
        CERT_KUBECONFIGS=str(kubeconfig),
    )
    steps = {s["name"]: s for s in body["steps"]}
    assert steps[f"tls {endpoints['valid']}"]["ok"] is True
    assert 363 < body["metrics"][f"days_left {endpoints['valid']}"] <= 365
    assert (
        "expires in 5.0 days, under the 30-day threshold"
        in steps[f"tls {endpoints['expiring']}"]["error"]
    )
    assert "certificate has expired" in steps[f"tls {endpoints['expired']}"]["error"]
    assert "Hostname mismatch" in steps[f"tls {endpoints['wronghost']}"]["error"]
    assert "self" in steps[f"tls {endpoints['selfsigned']}"]["error"].lower()
    assert "under the 30-day threshold" in steps[f"cert file {pki['client-old'][2]}"]["error"]
    assert steps[f"cert kubeconfig {kubeconfig} #1"]["ok"] is True
    assert body["ok"] is False
    assert body["errors"][-1] == "RuntimeError: 5 certificate check(s) failed"


def test_all_good_passes(pki, servers) -> None:  # type: ignore[no-untyped-def]
    body = run_case(
        CERT_ENDPOINTS=f"127.0.0.1:{servers['valid'].port}", CERT_CA_FILE=str(pki["ca"])
    )
    assert body["ok"] is True, body


def test_unreachable_endpoint_fails_with_the_reason() -> None:
    body = run_case(CERT_ENDPOINTS="127.0.0.1:1")
    assert body["ok"] is False and "refused" in body["steps"][0]["error"].lower()
