"""Parsing and checking kubeconfigs without touching the network."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml
from django.core.exceptions import ValidationError

MAX_KUBECONFIG_BYTES = 1024 * 1024


def parse(text: str) -> dict[str, Any]:
    if len(text.encode()) > MAX_KUBECONFIG_BYTES:
        raise ValidationError("The kubeconfig is larger than 1 MiB.")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ValidationError(f"The kubeconfig is not valid YAML{where}.") from exc
    if not isinstance(doc, dict):
        raise ValidationError(
            "The kubeconfig must be a YAML mapping (apiVersion, clusters, contexts, users)."
        )
    return doc


def _named(doc: dict[str, Any], section: str) -> dict[str, dict[str, Any]]:
    """name → body for the clusters/contexts/users lists, checking their shape."""
    entries = doc.get(section) or []
    if not isinstance(entries, list):
        raise ValidationError({"kubeconfig": f"The kubeconfig's '{section}' must be a list."})
    out: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ValidationError(
                {"kubeconfig": f"Every entry of '{section}' must be a mapping with a name."}
            )
        body = entry.get(section[:-1]) or {}
        if not isinstance(body, dict):
            raise ValidationError(
                {"kubeconfig": f"'{section}' entry '{entry['name']}' must hold a mapping."}
            )
        out[entry["name"]] = body
    return out


def context_names(doc: dict[str, Any]) -> list[str]:
    return list(_named(doc, "contexts"))


def resolve_context(doc: dict[str, Any], context: str = "") -> str:
    """The context to use: the one asked for, else current-context."""
    name = context or doc.get("current-context") or ""
    if not name:
        raise ValidationError(
            {"context": "No context given and the kubeconfig has no current-context."}
        )
    if name not in _named(doc, "contexts"):
        known = ", ".join(context_names(doc)) or "none"
        raise ValidationError(
            {"context": f"Context '{name}' is not in the kubeconfig (contexts: {known})."}
        )
    return name


def validate(text: str, context: str = "") -> str:
    """Check a kubeconfig and return the context name it will use.

    Raises ValidationError keyed by `kubeconfig` or `context`.
    """
    try:
        doc = parse(text)
    except ValidationError as exc:
        raise ValidationError({"kubeconfig": exc.messages}) from exc
    name = resolve_context(doc, context)
    ctx = _named(doc, "contexts")[name]
    cluster_name = ctx.get("cluster")
    clusters = _named(doc, "clusters")
    if not isinstance(cluster_name, str) or cluster_name not in clusters:
        raise ValidationError(
            {
                "kubeconfig": f"Context '{name}' names cluster '{cluster_name}', which is not in the kubeconfig."
            }
        )
    server = clusters[cluster_name].get("server")
    if not isinstance(server, str) or not server.startswith(("https://", "http://")):
        raise ValidationError(
            {"kubeconfig": f"Cluster '{cluster_name}' has no server URL (https://…)."}
        )
    user_name = ctx.get("user")
    if user_name and (not isinstance(user_name, str) or user_name not in _named(doc, "users")):
        raise ValidationError(
            {
                "kubeconfig": f"Context '{name}' names user '{user_name}', which is not in the kubeconfig."
            }
        )
    return name


_FILE_FIELDS = {
    "clusters": {"certificate-authority": "certificate-authority-data"},
    "users": {"client-certificate": "client-certificate-data", "client-key": "client-key-data"},
}


def extract_context(doc: dict[str, Any], context: str, base_dir: Path) -> str:
    """A self-contained kubeconfig holding only `context`, with files inlined.

    Certificates referenced by path are read relative to `base_dir` and
    embedded as *-data, so the stored kubeconfig works on any worker.
    """
    ctx = _named(doc, "contexts")[context]
    cluster = dict(_named(doc, "clusters").get(ctx.get("cluster", ""), {}))
    user = dict(_named(doc, "users").get(ctx.get("user", ""), {}))
    for section, entry in (("clusters", cluster), ("users", user)):
        for path_key, data_key in _FILE_FIELDS[section].items():
            if path_key in entry:
                path = Path(str(entry.pop(path_key))).expanduser()
                if not path.is_absolute():
                    path = base_dir / path
                try:
                    entry[data_key] = base64.b64encode(path.read_bytes()).decode()
                except OSError as exc:
                    raise ValidationError(
                        f"Context '{context}': cannot read {path_key} file {path}: {exc.strerror}."
                    ) from exc
    out = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": context,
        "contexts": [{"name": context, "context": ctx}],
        "clusters": [{"name": ctx.get("cluster"), "cluster": cluster}],
        "users": [{"name": ctx.get("user"), "user": user}] if ctx.get("user") else [],
    }
    return yaml.safe_dump(out, sort_keys=False)
