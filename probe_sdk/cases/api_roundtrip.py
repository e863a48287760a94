"""API round trip: create, read back and delete a ConfigMap through the Kubernetes API.

Pod-less and fast, so it can run every second as a resident probe
(`KUBEPROBE_CASE=api-roundtrip`): it proves the API server accepts writes,
stores them (etcd) and serves them back, timing each step. Standard library
only; credentials from KUBECONFIG or the pod's service account, which needs
`create`, `get` and `delete` on configmaps in its namespace.

| env | default | meaning |
| --- | --- | --- |
| `PROBE_NAMESPACE` | the pod's own namespace, else `kubeprobe` | where the ConfigMap is made |
| `ROUNDTRIP_OP_THRESHOLD_MS` | `1000` | a step slower than this fails |
| `REQUEST_TIMEOUT_SECONDS` | `15` | timeout of one API request |
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any, Dict, Optional

from probe_sdk import Probe
from probe_sdk.cases import _env, _rest

_client: Optional[_rest.RestClient] = None


def roundtrip(probe: Any, client: _rest.RestClient, namespace: str, threshold: float) -> None:
    """The three steps on `probe` (a Probe, or a resident Steps)."""
    name = "kubeprobe-rt-" + uuid.uuid4().hex[:10]
    collection = "/api/v1/namespaces/%s/configmaps" % namespace
    value = uuid.uuid4().hex
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "labels": {
                "app.kubernetes.io/managed-by": "kubeprobe",
                "kubeprobe.io/case": "api-roundtrip",
            },
        },
        "data": {"value": value},
    }
    made = False
    try:
        with probe.step("create", threshold_ms=threshold):
            made = True  # first: a create that timed out may still have made it
            client.call("POST", collection, body)
        with probe.step("get", threshold_ms=threshold):
            got = client.call("GET", collection + "/" + name)
            if (got.get("data") or {}).get("value") != value:
                raise AssertionError("read back a different value than was written")
        with probe.step("delete", threshold_ms=threshold):
            client.call("DELETE", collection + "/" + name)
            made = False
    finally:
        if made:
            # The step's error is the one that matters.
            with contextlib.suppress(_rest.RestError):
                client.call("DELETE", collection + "/" + name)


def sample() -> Dict[str, float]:
    """Resident mode: one round trip (the client is made once)."""
    from probe_sdk.resident import Steps

    global _client
    if _client is None:
        _client = _rest.connect()
    steps = Steps()
    roundtrip(steps, _client, _rest.namespace(), _env.number("ROUNDTRIP_OP_THRESHOLD_MS", 1000))
    return steps.timings


def main() -> None:
    with Probe() as probe:
        roundtrip(
            probe,
            _rest.connect(),
            _rest.namespace(),
            _env.number("ROUNDTRIP_OP_THRESHOLD_MS", 1000),
        )


if __name__ == "__main__":
    main()
