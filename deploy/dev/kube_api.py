"""Talking to a local cluster's API server as its admin: plain JSON over HTTPS
with the standard library, so kube_local.py needs no Kubernetes client."""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


class KubeError(Exception):
    """The local control plane could not start or answered an error."""


def wait_until(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Poll `check` until it returns something truthy; raise KubeError naming `what`."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (OSError, KubeError, urllib.error.URLError) as exc:
            last = exc
        time.sleep(0.2)
    raise KubeError(
        f"timed out after {timeout:.0f}s waiting for {what}" + (f": {last}" if last else "")
    )


def kubeconfig_yaml(server: str, ca: Path, user: dict[str, str], name: str = "local") -> str:
    """A kubeconfig with everything inline (data, not file paths), as users paste them."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": name,
                    "cluster": {
                        "server": server,
                        "certificate-authority-data": base64.b64encode(ca.read_bytes()).decode(),
                    },
                }
            ],
            "users": [{"name": name, "user": user}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "current-context": name,
        },
        indent=2,
    )


class AdminApi:
    """API calls with the cluster's admin client certificate (a mixin of LocalKube)."""

    server: str
    name: str
    admin_cert: tuple[Path, Path]

    @property
    def ca_path(self) -> Path:
        raise NotImplementedError

    def wait_namespace_ready(self, name: str, timeout: float = 60) -> None:
        raise NotImplementedError

    def _ssl(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_path))
        context.load_cert_chain(*map(str, self.admin_cert))
        return context

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bool = False,
        content_type: str = "application/json",
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.server + path, data=data, method=method, headers={"Content-Type": content_type}
        )
        try:
            with urllib.request.urlopen(req, context=self._ssl(), timeout=30) as response:
                payload = response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            payload = exc.read()
            status = exc.code
        if raw:
            return status, payload
        return status, json.loads(payload) if payload else None

    def api(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        ok: Iterable[int] = (200, 201, 202),
        content_type: str = "application/json",
    ) -> Any:
        """Call the API as cluster admin; raise KubeError on an unexpected status."""
        status, payload = self.request(method, path, body, content_type=content_type)
        if status not in ok:
            message = payload.get("message") if isinstance(payload, dict) else payload
            raise KubeError(f"{method} {path}: HTTP {status}: {message}")
        return payload

    def apply(self, manifest: dict[str, Any], namespace: str | None = None) -> Any:
        """Server-side apply of one object (as `kubectl apply --server-side` would)."""
        api_version, kind = manifest["apiVersion"], manifest["kind"]
        meta = manifest["metadata"]
        plural, namespaced = self.plural(api_version, kind)
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        ns = meta.get("namespace") or namespace
        if namespaced:
            if not ns:
                raise KubeError(f"{kind} {meta['name']} needs a namespace")
            path = f"{base}/namespaces/{ns}/{plural}/{meta['name']}"
        else:
            path = f"{base}/{plural}/{meta['name']}"
        return self.api(
            "PATCH",
            path + "?fieldManager=kubeprobe-dev&force=true",
            manifest,
            content_type="application/apply-patch+yaml",
        )

    def plural(self, api_version: str, kind: str) -> tuple[str, bool]:
        """(plural resource name, namespaced) of a kind, from API discovery."""
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        for resource in self.api("GET", base)["resources"]:
            if resource["kind"] == kind and "/" not in resource["name"]:
                return resource["name"], bool(resource["namespaced"])
        raise KubeError(f"{api_version} {kind} is not served")

    def create_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        self.api("POST", "/api/v1/namespaces", {"metadata": {"name": name, "labels": labels or {}}})
        self.wait_namespace_ready(name)

    def service_account_kubeconfig(
        self,
        namespace: str,
        name: str,
        rules: list[dict[str, Any]] | None = None,
        *,
        cluster_rules: list[dict[str, Any]] | None = None,
        expiration_seconds: int = 86400,
    ) -> str:
        """Create a service account (with a Role/ClusterRole of `rules` bound to it) and a kubeconfig with its token."""
        status, _ = self.request(
            "POST", f"/api/v1/namespaces/{namespace}/serviceaccounts", {"metadata": {"name": name}}
        )
        if status not in (201, 409):
            raise KubeError(f"create service account {namespace}/{name}: HTTP {status}")
        subject = [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]
        if rules is not None:
            self.apply(
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "Role",
                    "metadata": {"name": name, "namespace": namespace},
                    "rules": rules,
                }
            )
            self.apply(
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "RoleBinding",
                    "metadata": {"name": name, "namespace": namespace},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "Role",
                        "name": name,
                    },
                    "subjects": subject,
                }
            )
        if cluster_rules is not None:
            cluster_name = f"{namespace}-{name}"
            self.apply(
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRole",
                    "metadata": {"name": cluster_name},
                    "rules": cluster_rules,
                }
            )
            self.apply(
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRoleBinding",
                    "metadata": {"name": cluster_name},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": cluster_name,
                    },
                    "subjects": subject,
                }
            )
        return self.token_kubeconfig(namespace, name, expiration_seconds)

    def token_kubeconfig(self, namespace: str, name: str, expiration_seconds: int = 86400) -> str:
        """A kubeconfig carrying a fresh token (TokenRequest API) of an existing service account."""
        token = self.api(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": expiration_seconds},
            },
        )["status"]["token"]
        return kubeconfig_yaml(self.server, self.ca_path, {"token": token}, self.name)
