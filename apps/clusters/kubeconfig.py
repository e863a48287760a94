"""Parsing and checking kubeconfigs without touching the network."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

MAX_KUBECONFIG_BYTES = 1024 * 1024


def parse(text: str) -> dict[str, Any]:
    if len(text.encode()) > MAX_KUBECONFIG_BYTES:
        raise ValidationError(_("The kubeconfig is larger than 1 MiB."))
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = (
            _(" (line %(line)s, column %(column)s)")
            % {"line": mark.line + 1, "column": mark.column + 1}
            if mark
            else ""
        )
        raise ValidationError(
            _("The kubeconfig is not valid YAML%(where)s.") % {"where": where}
        ) from exc
    if not isinstance(doc, dict):
        raise ValidationError(
            _("The kubeconfig must be a YAML mapping (apiVersion, clusters, contexts, users).")
        )
    return doc


def _named(doc: dict[str, Any], section: str) -> dict[str, dict[str, Any]]:
    """name → body for the clusters/contexts/users lists, checking their shape."""
    entries = doc.get(section) or []
    if not isinstance(entries, list):
        raise ValidationError(
            {
                "kubeconfig": _("The kubeconfig's '%(section)s' must be a list.")
                % {"section": section}
            }
        )
    out: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ValidationError(
                {
                    "kubeconfig": _("Every entry of '%(section)s' must be a mapping with a name.")
                    % {"section": section}
                }
            )
        body = entry.get(section[:-1]) or {}
        if not isinstance(body, dict):
            raise ValidationError(
                {
                    "kubeconfig": _("'%(section)s' entry '%(name)s' must hold a mapping.")
                    % {"section": section, "name": entry["name"]}
                }
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
            {"context": _("No context given and the kubeconfig has no current-context.")}
        )
    if name not in _named(doc, "contexts"):
        known = ", ".join(context_names(doc)) or "none"
        raise ValidationError(
            {
                "context": _("Context '%(name)s' is not in the kubeconfig (contexts: %(known)s).")
                % {"name": name, "known": known}
            }
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
                "kubeconfig": _(
                    "Context '%(name)s' names cluster '%(cluster_name)s', which is not in the kubeconfig."
                )
                % {"name": name, "cluster_name": cluster_name}
            }
        )
    server = clusters[cluster_name].get("server")
    if not isinstance(server, str) or not server.startswith(("https://", "http://")):
        raise ValidationError(
            {
                "kubeconfig": _("Cluster '%(cluster_name)s' has no server URL (https://…).")
                % {"cluster_name": cluster_name}
            }
        )
    user_name = ctx.get("user")
    if user_name and (not isinstance(user_name, str) or user_name not in _named(doc, "users")):
        raise ValidationError(
            {
                "kubeconfig": _(
                    "Context '%(name)s' names user '%(user_name)s', which is not in the kubeconfig."
                )
                % {"name": name, "user_name": user_name}
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
                        _(
                            "Context '%(context)s': cannot read %(path_key)s file %(path)s: %(strerror)s."
                        )
                        % {
                            "context": context,
                            "path_key": path_key,
                            "path": path,
                            "strerror": exc.strerror,
                        }
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
