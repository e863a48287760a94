"""Real servers for the built-in cases' tests: etcd (Debian's etcd-server) and TLS material."""

from __future__ import annotations

import datetime as dt
import shutil
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def issue(
    directory: Path,
    name: str,
    *,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
    days_valid: float = 365,
    not_before_days: float = 1,
    client: bool = False,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, Path, Path]:
    """A certificate signed by `ca` (self-signed when ca is None)."""
    key = _key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca[0].subject if ca else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=not_before_days))
        .not_valid_after(now + dt.timedelta(days=days_valid))
    )
    if ca is None and not client and name.endswith("-ca"):
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True
        )
    else:
        sans: list[x509.GeneralName] = []
        for host in hosts:
            try:
                import ipaddress

                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        # Servers get clientAuth too: etcd's JSON gateway dials its own gRPC
        # port with the server certificate (kubeadm issues them this way).
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
        if not client:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    cert = builder.sign(ca[1] if ca else key, hashes.SHA256())
    cert_path = directory / f"{name}.crt"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key, cert_path, _write_key(key, directory / f"{name}.key")


def make_pki(directory: Path) -> Pki:
    ca_cert, ca_key, ca_path, _ = issue(directory, "test-ca", ca=None)
    _, _, server_cert, server_key = issue(directory, "server", ca=(ca_cert, ca_key))
    _, _, client_cert, client_key = issue(directory, "client", ca=(ca_cert, ca_key), client=True)
    return Pki(ca_path, server_cert, server_key, client_cert, client_key)


class Etcd:
    """A real etcd on 127.0.0.1, plain or with TLS and client-certificate auth."""

    def __init__(self, directory: Path, pki: Pki | None = None) -> None:
        binary = shutil.which("etcd")
        if binary is None:
            raise RuntimeError("etcd is not installed (apt-get install etcd-server)")
        self.port, peer = free_port(), free_port()
        scheme = "https" if pki else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        args = [
            binary,
            "--name",
            "probe-test",
            "--data-dir",
            str(directory / "etcd-data"),
            "--listen-client-urls",
            self.url,
            "--advertise-client-urls",
            self.url,
            "--listen-peer-urls",
            f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls",
            f"http://127.0.0.1:{peer}",
            "--initial-cluster",
            f"probe-test=http://127.0.0.1:{peer}",
            "--log-level",
            "error",
        ]
        if pki:
            args += [
                "--cert-file",
                str(pki.server_cert),
                "--key-file",
                str(pki.server_key),
                "--trusted-ca-file",
                str(pki.ca),
                "--client-cert-auth",
            ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.pki = pki
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with socket.socket() as sock:
                sock.settimeout(0.5)
                if sock.connect_ex(("127.0.0.1", self.port)) == 0 and (self.pki or self._health()):
                    return
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("etcd did not start")
            time.sleep(0.1)

    def _health(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=1) as answer:
                return b"true" in answer.read()
        except OSError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)
