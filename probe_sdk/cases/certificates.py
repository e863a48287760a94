"""Certificate inspection: days to expiry, chain and hostname of TLS endpoints and client certificates.

For every endpoint it opens a verified TLS connection (chain against the CA
bundle, hostname against the certificate) and reads the certificate's expiry;
for every client certificate (PEM files, or the client-certificate-data of
kubeconfig files) it reads the expiry. A step fails when verification fails
(expired, self-signed, unknown issuer, wrong host) or when fewer days than
the threshold are left, with the days in the message. Resident mode
(`KUBEPROBE_CASE=certificates`) runs every check as one sample (`sample()`).

| env | default | meaning |
| --- | --- | --- |
| `CERT_ENDPOINTS` | `kubernetes.default.svc:443`, plus `ETCD_ENDPOINTS` hosts | comma-separated `host:port` (or https URLs) to inspect |
| `CERT_CA_FILE` | in-cluster CA, else system store | CA bundle to verify endpoint chains |
| `CERT_FILES` | | comma-separated PEM certificate files (e.g. mounted Secrets) |
| `CERT_KUBECONFIGS` | | comma-separated kubeconfig files whose client certificates are checked |
| `CERT_MIN_DAYS` | `30` | fewer days left than this fails the step |
| `CERT_TIMEOUT_SECONDS` | `5` | connect timeout per endpoint |
"""

from __future__ import annotations

import base64
import os
import re
import socket
import ssl
import tempfile
import time
from typing import Dict, List, Optional, Tuple
from urllib.parse import urlsplit

from probe_sdk import Probe
from probe_sdk.cases import _env

IN_CLUSTER_CA = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
PEM_RE = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


def _not_after(pem: bytes) -> float:
    """Expiry (unix seconds) of the first certificate in PEM data, standard library only."""
    match = PEM_RE.search(pem)
    if not match:
        raise ValueError("no PEM certificate found")
    with tempfile.NamedTemporaryFile("wb", suffix=".pem", delete=False) as handle:
        handle.write(match.group(0))
    try:
        decoded = ssl._ssl._test_decode_cert(handle.name)  # type: ignore[attr-defined]
    finally:
        os.unlink(handle.name)
    return ssl.cert_time_to_seconds(decoded["notAfter"])


def _days_left(pem: bytes) -> float:
    return (_not_after(pem) - time.time()) / 86400


def _host_port(endpoint: str) -> Tuple[str, int]:
    if "://" in endpoint:
        parts = urlsplit(endpoint)
        return parts.hostname or "", parts.port or 443
    host, _, port = endpoint.rpartition(":")
    if not host:
        return endpoint, 443
    return host.strip("[]"), int(port)


def default_endpoints() -> List[str]:
    found = ["kubernetes.default.svc:443"]
    for url in _env.items("ETCD_ENDPOINTS", ""):
        host, port = _host_port(url)
        found.append("%s:%d" % (host, port))
    return found


def inspect_endpoint(
    endpoint: str, cafile: Optional[str], min_days: float, timeout: float
) -> float:
    """Verify the endpoint's chain and hostname; return days left. Raises with the reason."""
    host, port = _host_port(endpoint)
    # Read the certificate whatever its state, to report its expiry even when it fails.
    raw = ssl.create_default_context()
    raw.check_hostname = False
    raw.verify_mode = ssl.CERT_NONE
    # Nested, not parenthesised, withs: cases run on Python 3.8 images too.
    with socket.create_connection((host, port), timeout=timeout) as sock:  # noqa: SIM117
        with raw.wrap_socket(sock, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
    if not der:
        raise RuntimeError("the server sent no certificate")
    days = _days_left(ssl.DER_cert_to_PEM_cert(der).encode())
    verified = ssl.create_default_context(cafile=cafile)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:  # noqa: SIM117
            with verified.wrap_socket(sock, server_hostname=host):
                pass
    except ssl.SSLCertVerificationError as exc:
        raise RuntimeError(
            "%s (expires in %.0f days)" % (exc.verify_message or exc, days)
        ) from None
    if days < min_days:
        raise RuntimeError("expires in %.1f days, under the %g-day threshold" % (days, min_days))
    return days


def client_certificates() -> List[Tuple[str, bytes]]:
    """(label, PEM) for every configured client certificate."""
    found = []
    for path in _env.items("CERT_FILES", ""):
        with open(path, "rb") as handle:
            found.append(("file " + path, handle.read()))
    for path in _env.items("CERT_KUBECONFIGS", ""):
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        # client-certificate-data values, without a YAML parser (standard library only)
        for number, data in enumerate(re.findall(r"client-certificate-data:\s*(\S+)", text), 1):
            found.append(("kubeconfig %s #%d" % (path, number), base64.b64decode(data)))
    return found


def sample() -> Dict[str, float]:
    """Resident mode (`KUBEPROBE_CASE=certificates`): every check once, raising at the
    first failure, named by its step."""
    from probe_sdk.resident import Steps

    steps = Steps()
    min_days = _env.number("CERT_MIN_DAYS", 30)
    timeout = _env.number("CERT_TIMEOUT_SECONDS", 5)
    endpoints = _env.items("CERT_ENDPOINTS", "") or default_endpoints()
    cafile = _env.text("CERT_CA_FILE", "") or (
        IN_CLUSTER_CA if os.path.exists(IN_CLUSTER_CA) else None
    )
    for endpoint in endpoints:
        with steps.step("tls " + endpoint):
            inspect_endpoint(endpoint, cafile, min_days, timeout)
    for label, pem in client_certificates():
        with steps.step("cert " + label):
            days = _days_left(pem)
            if days < min_days:
                raise RuntimeError(
                    "expires in %.1f days, under the %g-day threshold" % (days, min_days)
                )
    return steps.timings


def main() -> None:
    with Probe() as probe:
        min_days = _env.number("CERT_MIN_DAYS", 30)
        timeout = _env.number("CERT_TIMEOUT_SECONDS", 5)
        endpoints = _env.items("CERT_ENDPOINTS", "") or default_endpoints()
        cafile = _env.text("CERT_CA_FILE", "") or (
            IN_CLUSTER_CA if os.path.exists(IN_CLUSTER_CA) else None
        )
        failures = 0
        for endpoint in endpoints:
            try:
                with probe.step("tls " + endpoint):
                    days = inspect_endpoint(endpoint, cafile, min_days, timeout)
                probe.metric("days_left " + endpoint, round(days, 1))
            except Exception:  # recorded by the step; go on with the others
                failures += 1
        for label, pem in client_certificates():
            try:
                with probe.step("cert " + label):
                    days = _days_left(pem)
                    if days < min_days:
                        raise RuntimeError(
                            "expires in %.1f days, under the %g-day threshold" % (days, min_days)
                        )
                probe.metric("days_left " + label, round(days, 1))
            except Exception:
                failures += 1
        if failures:
            raise RuntimeError("%d certificate check(s) failed" % failures)


if __name__ == "__main__":
    main()
