"""The operator's own API calls (kopf watches; these read and write), as plain JSON.

The official client does configuration, auth and TLS (in-cluster service
account, else KUBECONFIG); one generic `call` speaks to any path, so the
manifests in reconcile.py stay the dicts the API server reads.
"""

from __future__ import annotations

import json
import os
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from kubeprobe_operator import reconcile

REQUEST_TIMEOUT = 15


class ApiError(RuntimeError):
    """An API call failed; the message names the call and the server's answer."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def _explain(exc: ApiException) -> str:
    try:
        message = json.loads(exc.body or "{}").get("message") or exc.reason
    except (TypeError, ValueError, AttributeError):
        message = (str(exc.body or "").strip() or exc.reason or "")[:300]
    return f"HTTP {exc.status}: {message}"


class Api:
    def __init__(self, api: client.ApiClient) -> None:
        self.api = api

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        request = self.api.param_serialize(
            method=method,
            resource_path=path,
            query_params=list((query or {}).items()),
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body,
            auth_settings=["BearerToken"],
        )
        what = f"{method} {path}"
        try:
            answer = self.api.call_api(*request, _request_timeout=REQUEST_TIMEOUT)
            answer.read()
        except ApiException as exc:
            raise ApiError(f"{what}: {_explain(exc)}", exc.status or 0) from None
        except Exception as exc:  # urllib3: refused, TLS, timeouts
            raise ApiError(f"{what}: {type(exc).__name__}: {exc}") from None
        if not 200 <= answer.status < 300:
            raise ApiError(f"{what}: {_explain(ApiException(http_resp=answer))}", answer.status)
        return json.loads(answer.data or b"{}")

    def get(self, path: str) -> dict[str, Any] | None:
        try:
            return self.call("GET", path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    # ---- the objects the operator works with

    def apply_deployment(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply: the operator owns exactly the fields it sets."""
        meta = manifest["metadata"]
        return self.call(
            "PATCH",
            f"/apis/apps/v1/namespaces/{meta['namespace']}/deployments/{meta['name']}",
            manifest,
            query={"fieldManager": reconcile.OPERATOR, "force": "true"},
            content_type="application/apply-patch+yaml",
        )

    def deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")

    def resident_pods(self, namespace: str, config_name: str) -> list[dict[str, Any]]:
        selector = ",".join(f"{k}={v}" for k, v in reconcile.selector_labels(config_name).items())
        answer = self.call(
            "GET", f"/api/v1/namespaces/{namespace}/pods", query={"labelSelector": selector}
        )
        return answer.get("items") or []

    def _config_path(self, namespace: str, name: str) -> str:
        return (
            f"/apis/{reconcile.GROUP}/{reconcile.VERSION}/namespaces/{namespace}"
            f"/{reconcile.PLURAL}/{name}"
        )

    def probeconfig(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get(self._config_path(namespace, name))

    def patch_status(
        self, namespace: str, name: str, status: dict[str, Any], resource_version: str = ""
    ) -> None:
        """Merge-patch the status; with a resourceVersion, only over that version (else 409)."""
        body: dict[str, Any] = {"status": status}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        self.call(
            "PATCH",
            self._config_path(namespace, name) + "/status",
            body,
            content_type="application/merge-patch+json",
        )


def connect() -> Api:
    """A client from the pod's service account, else from KUBECONFIG (or ~/.kube/config)."""
    configuration = client.Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        config.load_incluster_config(client_configuration=configuration)
    else:
        config.load_kube_config(client_configuration=configuration)
    return Api(client.ApiClient(configuration))
