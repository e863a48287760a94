"""Pure helpers for the fake API server: kinds, Status bodies, selectors, patches."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass
class Kind:
    """One resource type the fake serves (built in, or registered like a CRD)."""

    rid: str  # storage key: "pods", "deployments", "kubedefenders.security.example.com"
    group: str
    versions: list[str]
    plural: str
    kind: str
    namespaced: bool = True
    status_subresource: bool = True
    builtin: bool = True
    short_names: list[str] = field(default_factory=list)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.versions[0]}" if self.group else self.versions[0]

    @property
    def qualified(self) -> str:
        """How the API server names it in messages: `pods`, `deployments.apps`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _builtin(group: str, version: str, plural: str, kind: str, **kw: Any) -> Kind:
    return Kind(rid=plural, group=group, versions=[version], plural=plural, kind=kind, **kw)


BUILTIN_KINDS: list[Kind] = [
    _builtin("", "v1", "pods", "Pod"),
    _builtin("", "v1", "events", "Event", status_subresource=False),
    _builtin("", "v1", "nodes", "Node", namespaced=False),
    _builtin("", "v1", "namespaces", "Namespace", namespaced=False),
    _builtin("", "v1", "services", "Service"),
    _builtin("", "v1", "endpoints", "Endpoints", status_subresource=False),
    _builtin("", "v1", "secrets", "Secret", status_subresource=False),
    _builtin("", "v1", "configmaps", "ConfigMap", status_subresource=False),
    _builtin("", "v1", "serviceaccounts", "ServiceAccount", status_subresource=False),
    _builtin("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim"),
    _builtin("", "v1", "resourcequotas", "ResourceQuota"),
    _builtin("apps", "v1", "deployments", "Deployment"),
    _builtin("apps", "v1", "daemonsets", "DaemonSet"),
    _builtin("apps", "v1", "statefulsets", "StatefulSet"),
    _builtin("apps", "v1", "replicasets", "ReplicaSet"),
    _builtin("apps", "v1", "controllerrevisions", "ControllerRevision", status_subresource=False),
    _builtin("batch", "v1", "jobs", "Job"),
    _builtin("batch", "v1", "cronjobs", "CronJob"),
    _builtin("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", status_subresource=False),
    _builtin("networking.k8s.io", "v1", "ingresses", "Ingress"),
    _builtin("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy"),
    _builtin("coordination.k8s.io", "v1", "leases", "Lease", status_subresource=False),
    _builtin("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget"),
    _builtin(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
    ),
]

# Why each HTTP status is refused, as the API server words it (StatusReason).
REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}

NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_body(
    code: int,
    reason: str,
    message: str,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


def success_body(kind: Kind, obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {
            "name": obj["metadata"]["name"],
            "group": kind.group,
            "kind": kind.plural,
            "uid": obj["metadata"].get("uid"),
        },
    }


class ApiError(Exception):
    """A refusal, answered as a Kubernetes Status body with that HTTP code."""

    def __init__(self, code: int, message: str, *, reason: str = "", **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.body = status_body(code, reason or REASONS.get(code, "Unknown"), message, details)


def not_found(kind: Kind, name: str) -> ApiError:
    return ApiError(
        404, f'{kind.qualified} "{name}" not found', name=name, group=kind.group, kind=kind.plural
    )


def fault_error(
    code: int, verb: str, kind: Kind | None, plural: str, ns: str, name: str
) -> ApiError:
    """A realistic refusal for an injected fault."""
    group = kind.group if kind else ""
    what = kind.qualified if kind else plural
    verbs = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
    k8s_verb = verbs.get(verb, verb.lower())
    if code == 403:
        where = f' in the namespace "{ns}"' if ns else " at the cluster scope"
        return ApiError(
            403,
            f'{what} "{name}" is forbidden: User "system:serviceaccount:kubeprobe:default" '
            f'cannot {k8s_verb} resource "{plural}" in API group "{group}"{where}'
            if name
            else f'{what} is forbidden: User "system:serviceaccount:kubeprobe:default" '
            f'cannot {k8s_verb} resource "{plural}" in API group "{group}"{where}',
            name=name,
            group=group,
            kind=plural,
        )
    if code == 422:
        kind_name = kind.kind if kind else plural
        return ApiError(
            422,
            f'{kind_name} "{name}" is invalid: spec: Invalid value: "injected": injected fault',
            name=name,
            group=group,
            kind=kind_name,
            causes=[
                {
                    "reason": "FieldValueInvalid",
                    "message": "Invalid value: injected",
                    "field": "spec",
                }
            ],
        )
    if code == 500:
        return ApiError(
            500,
            "Internal error occurred: injected fault",
            causes=[{"message": "injected fault"}],
        )
    if code == 409:
        return ApiError(
            409,
            f'Operation cannot be fulfilled on {what} "{name}": the object has been modified; '
            "please apply your changes to the latest version and try again",
            name=name,
            group=group,
            kind=plural,
        )
    if code == 404:
        return ApiError(404, f'{what} "{name}" not found', name=name, group=group, kind=plural)
    if code == 429:
        return ApiError(429, "Too many requests, please try again later.", retryAfterSeconds=1)
    if code == 504:
        return ApiError(504, "Timeout: request did not complete within the allotted timeout")
    if code == 503:
        return ApiError(503, "the server is currently unable to handle the request")
    return ApiError(code, f"injected fault {code}")


# ------------------------------------------------------------------ selectors


def match_labels(labels: dict[str, str], selector: str) -> bool:
    """A labelSelector query string: `a=b,c!=d,e,!f,g in (x,y),h notin (z)`."""
    for term in split_selector(selector):
        m = re.match(r"^([^\s!=]+)\s+(in|notin)\s+\((.*)\)$", term)
        if m:
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if op == "in" and labels.get(key) not in values:
                return False
            if op == "notin" and key in labels and labels[key] in values:
                return False
        elif "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def split_selector(selector: str) -> list[str]:
    """Split on commas outside parentheses."""
    terms, depth, current = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(current.strip())
            current = ""
        else:
            current += ch
    terms.append(current.strip())
    return [t for t in terms if t]


def field_value(obj: dict[str, Any], path: str) -> Any:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def match_fields(obj: dict[str, Any], selector: str) -> bool:
    for term in split_selector(selector):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if str(field_value(obj, key) or "") == value:
                return False
            continue
        key, value = term.replace("==", "=").split("=", 1)
        if str(field_value(obj, key) or "") != value:
            return False
    return True


def match_expression(labels: dict[str, str], expr: dict[str, Any]) -> bool:
    key, op, values = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or []
    if op == "In":
        return labels.get(key) in values
    if op == "NotIn":
        return key not in labels or labels[key] not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    if op in ("Gt", "Lt") and key in labels:
        try:
            a, b = int(labels[key]), int(values[0])
        except (ValueError, IndexError):
            return False
        return a > b if op == "Gt" else a < b
    return False


def match_selector(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A LabelSelector object (matchLabels + matchExpressions). Empty matches all."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    return all(match_expression(labels, e) for e in selector.get("matchExpressions") or [])


def selector_string(selector: dict[str, Any] | None) -> str:
    """A LabelSelector object as the query string the Scale subresource reports."""
    selector = selector or {}
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for e in selector.get("matchExpressions") or []:
        op, key, values = e.get("operator"), e.get("key"), ",".join(e.get("values") or [])
        terms.append(
            {"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})"}.get(
                op, key if op == "Exists" else f"!{key}"
            )
        )
    return ",".join(terms)


# ------------------------------------------------------------------ patches


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


MERGE_KEYS = ("name", "containerPort", "port", "mountPath", "type", "ip", "key")


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Enough of a strategic merge patch: lists of named things merge by their key."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict):
            out[key] = strategic_merge_patch(out.get(key), value)
        elif isinstance(value, list) and isinstance(out.get(key), list):
            out[key] = _merge_list(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _merge_list(current: list[Any], patch: list[Any]) -> list[Any]:
    if not all(isinstance(i, dict) for i in current + patch):
        return copy.deepcopy(patch)
    merge_key = next(
        (k for k in MERGE_KEYS if all(k in i for i in patch if "$patch" not in i)), None
    )
    if merge_key is None or not patch:
        return copy.deepcopy(patch)
    out = [copy.deepcopy(i) for i in current]
    for item in patch:
        index = next(
            (n for n, i in enumerate(out) if i.get(merge_key) == item.get(merge_key)), None
        )
        if item.get("$patch") == "delete":
            if index is not None:
                del out[index]
        elif index is None:
            out.append(copy.deepcopy(item))
        else:
            out[index] = strategic_merge_patch(out[index], item)
    return out


def json_patch(target: Any, ops: list[dict[str, Any]]) -> Any:
    """RFC 6902 JSON patch (add, remove, replace, move, copy, test)."""
    doc = copy.deepcopy(target)

    def parts(path: str) -> list[str]:
        return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]

    def parent(path: str) -> tuple[Any, str]:
        ps = parts(path)
        node = doc
        for p in ps[:-1]:
            node = node[int(p)] if isinstance(node, list) else node[p]
        return node, ps[-1]

    def get(path: str) -> Any:
        node = doc
        for p in parts(path):
            node = node[int(p)] if isinstance(node, list) else node[p]
        return node

    for op in ops:
        kind, path = op.get("op"), op.get("path", "")
        try:
            if kind == "test":
                if get(path) != op.get("value"):
                    raise ApiError(422, f"the server rejected our request: test failed at {path}")
                continue
            if kind in ("move", "copy"):
                value = copy.deepcopy(get(op["from"]))
                if kind == "move":
                    node, last = parent(op["from"])
                    del node[int(last) if isinstance(node, list) else last]
                kind, op = "add", {"path": path, "value": value}
            node, last = parent(path)
            if kind == "add":
                if isinstance(node, list):
                    node.insert(len(node) if last == "-" else int(last), op.get("value"))
                else:
                    node[last] = op.get("value")
            elif kind == "replace":
                if isinstance(node, list):
                    node[int(last)] = op.get("value")
                else:
                    if last not in node:
                        raise KeyError(last)
                    node[last] = op.get("value")
            elif kind == "remove":
                del node[int(last) if isinstance(node, list) else last]
            else:
                raise ApiError(400, f"unknown JSON patch operation {kind!r}")
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise ApiError(
                422, f"the server rejected our request due to an error in our request: {exc}"
            ) from None
    return doc


def short_hash(data: Any, length: int = 10) -> str:
    """A stable hash in the API server's safe alphabet (no vowels, no 0/1/3)."""
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    digest = int(hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest(), 16)
    out = ""
    for _ in range(length):
        digest, rem = divmod(digest, len(alphabet))
        out += alphabet[rem]
    return out


def int_or_percent(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        scaled = int(value[:-1]) * total / 100
        return int(-(-scaled // 1)) if round_up else int(scaled // 1)
    return int(value)


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return c  # type: ignore[no-any-return]
    return None


def set_condition(
    status: dict[str, Any],
    type_: str,
    value: str,
    reason: str = "",
    message: str = "",
    *,
    heartbeat: bool = False,
    touch: bool = False,
) -> None:
    """Set a condition in place, keeping lastTransitionTime unless the status flips.

    `touch` also refreshes lastUpdateTime (Deployment conditions have one)."""
    conditions = status.setdefault("conditions", [])
    now = now_iso()
    current = next((c for c in conditions if c.get("type") == type_), None)
    if current is None:
        current = {"type": type_}
        conditions.append(current)
    changed = (current.get("status"), current.get("reason"), current.get("message")) != (
        value,
        reason or None,
        message or None,
    )
    if current.get("status") != value or "lastTransitionTime" not in current:
        current["lastTransitionTime"] = now
    current["status"] = value
    for key, text in (("reason", reason), ("message", message)):
        if text:
            current[key] = text
        else:
            current.pop(key, None)
    if heartbeat:
        current["lastHeartbeatTime"] = now
    if touch and (changed or "lastUpdateTime" not in current):
        current["lastUpdateTime"] = now
