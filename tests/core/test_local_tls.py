"""`manage.py local_tls`: the quick start's local CA and certificates, kept until near expiry."""

from __future__ import annotations

import datetime as dt
import io
import socket
import ssl
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from apps.core.local_tls import local_pki_ensure
from tests.cases.test_certificates import TlsServer


def actions(done: list) -> dict[str, str]:  # type: ignore[type-arg]
    return {item.name: item.action for item in done}


def test_issues_once_then_keeps(tmp_path: Path) -> None:
    pki, done = local_pki_ensure(directory=tmp_path / "tls")
    assert actions(done) == {"CA": "issued", "server": "issued", "client": "issued"}
    for key in (pki.ca_key, pki.server_key, pki.client_key):
        assert key.stat().st_mode & 0o777 == 0o600
    before = pki.server_cert.read_bytes()
    _, done = local_pki_ensure(directory=tmp_path / "tls")
    assert actions(done) == {"CA": "kept", "server": "kept", "client": "kept"}
    assert pki.server_cert.read_bytes() == before


def test_a_real_tls_handshake_verifies_for_each_local_name(tmp_path: Path) -> None:
    pki, _ = local_pki_ensure(directory=tmp_path)
    server = TlsServer(pki.server_cert, pki.server_key)
    try:
        context = ssl.create_default_context(cafile=str(pki.ca_cert))
        for host in ("localhost", "127.0.0.1"):
            with (
                socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock,
                context.wrap_socket(sock, server_hostname=host) as tls,
            ):
                assert tls.getpeercert()["subject"] == (
                    (("commonName", "kubeprobe-local-server"),),
                )
    finally:
        server.stop()


def test_renews_near_expiry_and_after_a_new_ca(tmp_path: Path) -> None:
    pki, _ = local_pki_ensure(directory=tmp_path, days=90, renew_days=30)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=65)
    _, done = local_pki_ensure(directory=tmp_path, days=90, renew_days=30, now=later)
    assert actions(done) == {"CA": "kept", "server": "renewed", "client": "renewed"}
    assert "expires" in done[1].why

    pki.ca_key.unlink()
    _, done = local_pki_ensure(directory=tmp_path)
    assert actions(done) == {"CA": "issued", "server": "renewed", "client": "renewed"}
    assert done[1].why == "not signed by the current CA"

    _, done = local_pki_ensure(directory=tmp_path, hosts=("localhost", "portal.test"))
    assert actions(done)["server"] == "renewed"
    assert done[1].why == "does not cover portal.test"


def test_command_output_and_errors(tmp_path: Path) -> None:
    out = io.StringIO()
    call_command("local_tls", "--dir", str(tmp_path), "--host", "portal.test", stdout=out)
    assert "TLS server certificate: issued" in out.getvalue()
    assert f"trust {tmp_path}/ca.crt" in out.getvalue()
    with pytest.raises(CommandError, match=r"--days \(10\) must be more than --renew-days \(30\)"):
        call_command("local_tls", "--dir", str(tmp_path), "--days", "10")
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(CommandError, match="Cannot use"):
        call_command("local_tls", "--dir", str(blocked / "tls"))
