"""Federation link probe: a federated object must reach every member cluster, then leave it.

Creates a federated object on the host cluster (by default a KubeFed
`FederatedConfigMap` placed on every member), waits until the member object
appears in each member cluster carrying this run's token, deletes the
federated object and waits until it is gone from every member. Each member
gets a step `propagated to <member>` and `removed from <member>` with the
time it took; a member that misses the deadline fails its step.

| env | default | meaning |
| --- | --- | --- |
| `FEDERATION_MEMBER_KUBECONFIG_DIR` | | directory with one kubeconfig per member cluster (file name = member name as the federation knows it) |
| `FEDERATION_MEMBER_SECRET` | | `namespace/name` of a Secret on the host, one kubeconfig per member |
| `FEDERATION_API_VERSION` | `types.kubefed.io/v1beta1` | API version of the federated object |
| `FEDERATION_KIND` | `FederatedConfigMap` | its kind |
| `FEDERATION_PLURAL` | `federatedconfigmaps` | its resource (plural) name |
| `FEDERATION_MEMBER_API_VERSION` | `v1` | API version of the object expected in members |
| `FEDERATION_MEMBER_PLURAL` | `configmaps` | its resource name |
| `FEDERATION_OBJECT` | (KubeFed FederatedConfigMap) | JSON of the federated object for other federations (Karmada, OCM...); `$(NAME)`, `$(NAMESPACE)`, `$(TOKEN)` and `$(MEMBERS)` (a JSON list of member names) are substituted |
| `FEDERATION_DEADLINE_SECONDS` | `60` | time to reach, and to leave, every member |

At least one of the first two is required. The probe namespace
(`PROBE_NAMESPACE`) must exist on the host and on every member. Plus the
Kubernetes env shared by all cases (see `probe_sdk.cases._kube`).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Callable, Dict, List, Optional

from probe_sdk import Probe
from probe_sdk.cases import _env, _kube
from probe_sdk.cases._kube import Kube

CASE = "federation-link"


def federated_object(name: str, ns: str, token: str, members: List[str]) -> Dict[str, Any]:
    template = _env.text("FEDERATION_OBJECT", "")
    if template:
        filled = (
            template.replace("$(NAME)", name)
            .replace("$(NAMESPACE)", ns)
            .replace("$(TOKEN)", token)
            .replace('"$(MEMBERS)"', json.dumps(members))
            .replace("$(MEMBERS)", json.dumps(members))
        )
        try:
            body = json.loads(filled)
        except ValueError as exc:
            raise _env.ConfigError("FEDERATION_OBJECT is not valid JSON: %s" % exc) from None
        if not isinstance(body, dict):
            raise _env.ConfigError("FEDERATION_OBJECT must be a JSON object")
        body.setdefault("metadata", {}).update({"name": name, "namespace": ns})
        body["metadata"].setdefault("labels", {}).update(_kube.labels(CASE))
        return body
    return {
        "apiVersion": _env.text("FEDERATION_API_VERSION", "types.kubefed.io/v1beta1"),
        "kind": _env.text("FEDERATION_KIND", "FederatedConfigMap"),
        "metadata": {"name": name, "namespace": ns, "labels": _kube.labels(CASE)},
        "spec": {
            "template": {"data": {"kubeprobe-token": token}},
            "placement": {"clusters": [{"name": member} for member in members]},
        },
    }


def await_members(
    probe: Probe,
    members: Dict[str, Kube],
    label: str,
    arrived: Callable[[Kube], bool],
    deadline: float,
) -> List[str]:
    """Poll every member until arrived(member) or the deadline; one step per member."""
    started = time.monotonic()
    waiting = dict(members)
    last: Dict[str, str] = {}
    while waiting:
        for name, kube in list(waiting.items()):
            try:
                if arrived(kube):
                    elapsed = (time.monotonic() - started) * 1000
                    limit = _kube.threshold(label)
                    error = (
                        ""
                        if elapsed <= limit
                        else "took %d ms, over the %d ms threshold" % (elapsed, limit)
                    )
                    probe.record_step("%s %s" % (label, name), not error, elapsed, error)
                    del waiting[name]
                else:
                    last[name] = "not yet"
            except _kube.KubeError as exc:
                last[name] = str(exc)
        if waiting and time.monotonic() - started > deadline:
            for name in waiting:
                probe.record_step(
                    "%s %s" % (label, name),
                    False,
                    (time.monotonic() - started) * 1000,
                    "not done after %g s (last: %s)" % (deadline, last.get(name, "")),
                )
            break
        if waiting:
            time.sleep(_kube.POLL_SECONDS)
    return sorted(waiting)


def main() -> None:
    with Probe() as probe:
        deadline = _env.number("FEDERATION_DEADLINE_SECONDS", 60)
        member_version = _env.text("FEDERATION_MEMBER_API_VERSION", "v1")
        member_plural = _env.text("FEDERATION_MEMBER_PLURAL", "configmaps")
        host = _kube.connect()
        ns = _kube.namespace()
        configs = _kube.kubeconfig_set(
            "FEDERATION_MEMBER_KUBECONFIG_DIR", "FEDERATION_MEMBER_SECRET", host
        )
        members = {name: _kube.connect(text, label=name) for name, text in configs.items()}
        probe.metric("members", len(members))
        name = _kube.unique_name("fed")
        token = uuid.uuid4().hex
        body = federated_object(name, ns, token, sorted(members))
        version, plural = (
            body.get("apiVersion", ""),
            _env.text("FEDERATION_PLURAL", "federatedconfigmaps"),
        )
        fed_path = _kube.path(ns, plural, name, version)
        member_path = _kube.path(ns, member_plural, name, member_version)

        def carries_token(kube: Kube) -> bool:
            obj: Optional[Dict[str, Any]] = kube.get(member_path)
            # Without $(TOKEN) in a custom object, existence is all we can check.
            return obj is not None and (token in json.dumps(obj) or token not in json.dumps(body))

        created = False
        try:
            with probe.step("create federated object", threshold_ms=_kube.threshold("create")):
                created = True  # first: a create that timed out may still have made it
                host.create(_kube.path(ns, plural, api_version=version), body)
            missing = await_members(probe, members, "propagated to", carries_token, deadline)
            with probe.step("delete federated object", threshold_ms=_kube.threshold("delete")):
                host.delete(fed_path)
                created = False
            stuck = await_members(
                probe, members, "removed from", lambda kube: kube.get(member_path) is None, deadline
            )
            if missing or stuck:
                raise AssertionError(
                    "federation link broken: not propagated to [%s], not removed from [%s]"
                    % (", ".join(missing), ", ".join(stuck))
                )
        finally:
            if created:
                with _kube.cleanup_step(probe, "cleanup"):
                    host.delete(fed_path)


if __name__ == "__main__":
    main()
