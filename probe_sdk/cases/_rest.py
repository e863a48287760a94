"""Kubernetes REST calls with the standard library only (for the pod-less resident cases).

Credentials: the KUBECONFIG file when set (JSON, or YAML when PyYAML is
installed, as in the probe image; token, token file or client certificate),
else the pod's service account, whose token file is read again on every call
(bound tokens rotate).
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import tempfile
import urllib.error
import urllib.request
from typing import Any, Dict, Optional

from probe_sdk.cases import _env

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


class RestError(RuntimeError):
    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class RestClient:
    def __init__(
        self,
        server: str,
        context: Optional[ssl.SSLContext],
        token: str = "",
        token_file: str = "",
        timeout: float = 15,
    ) -> None:
        self.server = server.rstrip("/")
        self.context = context
        self.token = token
        self.token_file = token_file
        self.timeout = timeout

    def _bearer(self) -> str:
        if self.token_file:
            with open(self.token_file) as handle:
                return handle.read().strip()
        return self.token

    def call(self, method: str, path: str, body: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        headers = {"Accept": "application/json", "User-Agent": "kubeprobe-resident"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        bearer = self._bearer()
        if bearer:
            headers["Authorization"] = "Bearer " + bearer
        request = urllib.request.Request(  # noqa: S310 (the API server's URL)
            self.server + path, data=data, method=method, headers=headers
        )
        what = "%s %s" % (method, path)
        try:
            with urllib.request.urlopen(  # noqa: S310
                request, timeout=self.timeout, context=self.context
            ) as answer:
                return json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")
            try:
                message = json.loads(text).get("message") or text
            except ValueError:
                message = text
            raise RestError("%s: HTTP %s: %s" % (what, exc.code, message[:300]), exc.code) from None
        except urllib.error.URLError as exc:
            raise RestError("%s: %s" % (what, exc.reason)) from None


def _load_kubeconfig(path: str) -> Dict[str, Any]:
    with open(path) as handle:
        text = handle.read()
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        import yaml  # the probe image has it; stdlib-only images use JSON kubeconfigs
    except ImportError:
        raise _env.ConfigError(
            "KUBECONFIG=%s is YAML; install PyYAML or give it as JSON" % path
        ) from None
    return yaml.safe_load(text)


def _named(items: Any, name: str, what: str) -> Dict[str, Any]:
    for item in items or []:
        if item.get("name") == name:
            return item.get(what) or {}
    raise _env.ConfigError("kubeconfig has no %s named %r" % (what, name))


def _pem_file(data: str) -> str:
    with tempfile.NamedTemporaryFile("wb", suffix=".pem", delete=False) as handle:
        handle.write(base64.b64decode(data))
    return handle.name


def from_kubeconfig(path: str, timeout: float) -> RestClient:
    config = _load_kubeconfig(path)
    context = _named(config.get("contexts"), config.get("current-context", ""), "context")
    cluster = _named(config.get("clusters"), context.get("cluster", ""), "cluster")
    user = _named(config.get("users"), context.get("user", ""), "user")
    server = cluster.get("server") or ""
    if not server:
        raise _env.ConfigError("KUBECONFIG=%s: the cluster has no server" % path)
    tls = None
    if server.startswith("https://"):
        tls = ssl.create_default_context(cafile=cluster.get("certificate-authority") or None)
        if cluster.get("certificate-authority-data"):
            pem = base64.b64decode(cluster["certificate-authority-data"]).decode()
            tls.load_verify_locations(cadata=pem)
        if cluster.get("insecure-skip-tls-verify"):
            tls.check_hostname = False
            tls.verify_mode = ssl.CERT_NONE
        cert, key = user.get("client-certificate"), user.get("client-key")
        made = []
        if user.get("client-certificate-data"):
            cert = _pem_file(user["client-certificate-data"])
            made.append(cert)
        if user.get("client-key-data"):
            key = _pem_file(user["client-key-data"])
            made.append(key)
        try:
            if cert:
                tls.load_cert_chain(cert, key or None)
        finally:
            for name in made:  # loaded into the context; no key left on disk
                os.unlink(name)
    return RestClient(
        server,
        tls,
        token=user.get("token", ""),
        token_file=user.get("tokenFile", ""),
        timeout=timeout,
    )


def connect() -> RestClient:
    """From KUBECONFIG, else the pod's service account."""
    timeout = _env.number("REQUEST_TIMEOUT_SECONDS", 15)
    path = _env.text("KUBECONFIG", "")
    if path:
        return from_kubeconfig(path, timeout)
    host = os.environ.get("KUBERNETES_SERVICE_HOST", "")
    if not host:
        raise _env.ConfigError("neither KUBECONFIG nor an in-cluster service account is there")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if ":" in host:
        host = "[%s]" % host
    tls = ssl.create_default_context(cafile=os.path.join(SA_DIR, "ca.crt"))
    return RestClient(
        "https://%s:%s" % (host, port),
        tls,
        token_file=os.path.join(SA_DIR, "token"),
        timeout=timeout,
    )


def namespace() -> str:
    explicit = _env.text("PROBE_NAMESPACE", "")
    if explicit:
        return explicit
    try:
        with open(os.path.join(SA_DIR, "namespace")) as handle:
            return handle.read().strip() or "kubeprobe"
    except OSError:
        return "kubeprobe"
