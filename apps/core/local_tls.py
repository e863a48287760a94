"""A local CA with server and client certificates for the quick start.

The trial portal serves TLS and runs a TLS etcd with these, so the built-in
certificate and etcd cases have real targets on one machine. Idempotent:
files that are valid, signed by the current CA, cover the requested hosts
and are not near expiry are kept; anything else is issued again.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")
CA_DAYS = 3650


class LocalTlsError(Exception):
    """The TLS directory cannot be used (permissions, a file that is not PEM, ...)."""


@dataclass(frozen=True)
class LocalPki:
    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.directory / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.directory / "server.key"

    @property
    def client_cert(self) -> Path:
        return self.directory / "client.crt"

    @property
    def client_key(self) -> Path:
        return self.directory / "client.key"


@dataclass
class Issued:
    name: str
    action: str  # issued, renewed, kept
    not_after: dt.datetime
    why: str = ""


Key = ec.EllipticCurvePrivateKey


def _write(path: Path, data: bytes, private: bool) -> None:
    """Write atomically, so a server reading the file never sees half of it."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    tmp.replace(path)


def _load(cert_path: Path, key_path: Path) -> tuple[x509.Certificate, Key] | None:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    if cert.public_key() != key.public_key():
        return None
    return cert, key


def _hosts_of(cert: x509.Certificate) -> set[str]:
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(name) for name in sans.get_values_for_type(x509.DNSName)} | {
        str(ip) for ip in sans.get_values_for_type(x509.IPAddress)
    }


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _builder(
    subject: str, issuer: x509.Name | None, key: Key, days: float, now: dt.datetime
) -> x509.CertificateBuilder:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))  # small clock skew
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


def _issue_ca(pki: LocalPki, now: dt.datetime) -> tuple[x509.Certificate, Key]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder("KubeProbe local CA", None, key, CA_DAYS, now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    _write(pki.ca_key, _key_pem(key), private=True)
    _write(pki.ca_cert, cert.public_bytes(serialization.Encoding.PEM), private=False)
    return cert, key


def _key_pem(key: Key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _issue_leaf(
    ca: tuple[x509.Certificate, Key],
    cert_path: Path,
    key_path: Path,
    *,
    subject: str,
    hosts: Sequence[str],
    server: bool,
    days: int,
    now: dt.datetime,
) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    # Servers get clientAuth too: etcd's JSON gateway dials its own gRPC port
    # with the server certificate (kubeadm issues etcd's certificates this way).
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    builder = (
        _builder(subject, ca[0].subject, key, days, now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca[1].public_key()), critical=False
        )
    )
    if hosts:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_san(h) for h in hosts]), critical=False
        )
    cert = builder.sign(ca[1], hashes.SHA256())
    _write(key_path, _key_pem(key), private=True)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), private=False)
    return cert


def _why_reissue(
    found: tuple[x509.Certificate, Key] | None,
    *,
    ca: x509.Certificate | None,
    hosts: Sequence[str],
    renew_before: dt.datetime,
) -> str:
    """Why the certificate must be issued again, or "" to keep it."""
    if found is None:
        return "missing or unreadable"
    cert = found[0]
    if cert.not_valid_after_utc <= renew_before:
        return f"expires {cert.not_valid_after_utc:%Y-%m-%d}"
    if ca is not None:
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            return "not signed by the current CA"
    missing = set(hosts) - _hosts_of(cert)
    if missing:
        return f"does not cover {', '.join(sorted(missing))}"
    return ""


def local_pki_ensure(
    *,
    directory: Path,
    hosts: Sequence[str] = DEFAULT_HOSTS,
    days: int = 90,
    renew_days: int = 30,
    now: dt.datetime | None = None,
) -> tuple[LocalPki, list[Issued]]:
    """Make sure the CA, server and client certificates exist and are good for `renew_days`."""
    now = now or dt.datetime.now(dt.UTC)
    if days <= renew_days:
        raise LocalTlsError(f"--days ({days}) must be more than --renew-days ({renew_days}).")
    pki = LocalPki(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
    except OSError as exc:
        raise LocalTlsError(f"Cannot use {directory} for TLS files: {exc}") from exc
    renew_before = now + dt.timedelta(days=renew_days)
    done: list[Issued] = []
    try:
        found_ca = _load(pki.ca_cert, pki.ca_key)
        why = _why_reissue(found_ca, ca=None, hosts=(), renew_before=renew_before)
        ca = _issue_ca(pki, now) if why or found_ca is None else found_ca
        done.append(_issued("CA", ca[0], why, existed=found_ca is not None))
        leaves = (
            ("server", pki.server_cert, pki.server_key, tuple(hosts), True),
            ("client", pki.client_cert, pki.client_key, (), False),
        )
        for name, cert_path, key_path, leaf_hosts, server in leaves:
            found = _load(cert_path, key_path)
            why = _why_reissue(found, ca=ca[0], hosts=leaf_hosts, renew_before=renew_before)
            if found is not None and not why:
                cert = found[0]
            else:
                cert = _issue_leaf(
                    ca,
                    cert_path,
                    key_path,
                    subject=f"kubeprobe-local-{name}",
                    hosts=leaf_hosts,
                    server=server,
                    days=days,
                    now=now,
                )
            done.append(_issued(name, cert, why, existed=found is not None))
    except OSError as exc:
        raise LocalTlsError(f"Cannot write TLS files in {directory}: {exc}") from exc
    return pki, done


def _issued(name: str, cert: x509.Certificate, why: str, *, existed: bool) -> Issued:
    action = "kept" if not why else ("renewed" if existed else "issued")
    return Issued(name, action, cert.not_valid_after_utc, why if existed else "")
