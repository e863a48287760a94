"""What every notification transport shares: the message, the errors, the registry.

A transport turns one :class:`Message` into one vendor call. It does not record,
retry or disable anything itself; it tells its caller what happened by how it
returns: normally on success, :class:`TransientError` when a later retry may work,
:class:`PermanentError` when the channel's configuration (or the receiver) must be
fixed first. This module imports no Django models, so transports run anywhere
settings are configured.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import pkgutil
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, ClassVar, TypeVar
from urllib.parse import parse_qs, urlsplit

from django.utils.translation import gettext as _
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

EVENTS = ("firing", "resolved", "flapping", "acknowledged", "escalated", "test")
SEVERITIES = ("info", "warning", "critical")
MASK = "••••"


@dataclass(frozen=True)
class AlertItem:
    """One (case, cluster) alert inside a message."""

    cluster: str
    fingerprint: str  # stable id of the (case, cluster) alert: dedup key for PagerDuty
    step: str  # failing step name ("" if none)
    error: str  # error text of the failing run
    run_url: str  # absolute URL of the run page
    log_url: str  # run page anchor with the pod log tail
    events_url: str  # run page anchor with the pod events
    started_at: datetime  # when this alert started firing (aware UTC)
    case: str = ""  # its case (an incident's message holds several)


@dataclass(frozen=True)
class Message:
    """One notification: a case failing (or recovering) on one or more clusters."""

    event: str  # one of EVENTS
    severity: str  # one of SEVERITIES
    case: str
    title: str  # one line
    text: str  # plain multi-line body, ready to show
    diagnosis: str  # the root cause in one line, apps/diagnosis ("" if none)
    items: tuple[AlertItem, ...]  # one per cluster
    note: str = ""  # dependency suppression or acknowledgement note
    portal_url: str = ""  # absolute URL of the portal's alerts page
    ended_at: datetime | None = None  # set for "resolved"
    root_cause: str = ""  # its category (etcd, image, …) or ""
    incident: str = ""  # the open incident the alerts belong to, or ""

    @property
    def clusters(self) -> list[str]:
        return [item.cluster for item in self.items]

    def items_or_case(self) -> tuple[AlertItem, ...]:
        """The items, or one stand-in keyed by the case when a message has none, for
        receivers that need one event per alert (PagerDuty, Alertmanager)."""
        return self.items or (placeholder_item(f"case:{self.case}"),)


def placeholder_item(key: str, *, cluster: str = "", link: str = "") -> AlertItem:
    """An item that stands for no real (case, cluster) alert, fingerprinted by ``key``,
    every link leading to ``link``."""
    return AlertItem(
        cluster=cluster,
        fingerprint=hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest(),
        step="",
        error="",
        run_url=link,
        log_url=link,
        events_url=link,
        started_at=datetime.now(UTC),
    )


class TransportError(Exception):
    """A send failed. Raise one of the two subclasses, never this class itself."""


class TransientError(TransportError):
    """Retry later with backoff: timeouts, refused connections, 429, 5xx, rate limits.

    ``retry_after`` is the receiver's own wait hint in seconds (Retry-After), if any.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(TransportError):
    """Retrying cannot help until someone fixes the channel: disable it and show why.

    The message never holds a secret (tokens in URLs are redacted).
    """


class TransportConfig(serializers.Serializer):
    """Base for transport configs: unknown fields are errors rather than silently dropped."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class Transport:
    """One notification kind. Subclasses set the class attributes and implement send()."""

    kind: ClassVar[str]
    label: ClassVar[str]
    Config: ClassVar[type[serializers.Serializer]]
    secret_fields: ClassVar[tuple[str, ...]] = ()
    # URL fields shown with credentials and query values masked (may carry tokens).
    url_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: dict[str, Any]) -> None:
        # Fill defaults so a config stored before a field was added still works.
        self.config: dict[str, Any] = {**_defaults(self.Config), **config}

    def send(self, message: Message) -> None:
        raise NotImplementedError

    def resend_interval(self) -> float | None:
        """Seconds after which the caller must send a still-firing alert again, or None.

        Only receivers that expire alerts they stop hearing about need it
        (Alertmanager); everything else is notified once per flip.
        """
        return None


T = TypeVar("T", bound=type[Transport])

registry: dict[str, type[Transport]] = {}


def register(cls: T) -> T:
    """Class decorator: make a transport available under its ``kind``."""
    if cls.kind in registry and registry[cls.kind] is not cls:
        raise RuntimeError(f"Two transports claim the kind {cls.kind!r}.")
    registry[cls.kind] = cls
    return cls


# Modules of the package that hold no transport.
HELPERS = frozenset({"base", "http", "render"})


@cache
def _load_all() -> None:
    """Import every transport module once: each registers its class. (Not from the
    package's __init__: the modules import the package's helpers, a cycle.)"""
    package = importlib.import_module(__package__ or "apps.alerts.transports")
    for module in pkgutil.iter_modules(package.__path__):
        if module.name not in HELPERS:
            importlib.import_module(f"{package.__name__}.{module.name}")


def get(kind: str) -> type[Transport]:
    _load_all()
    try:
        return registry[kind]
    except KeyError:
        raise KeyError(
            f"Unknown channel kind {kind!r} (known: {', '.join(sorted(registry))})."
        ) from None


def choices() -> list[tuple[str, str]]:
    """(kind, label) pairs for a model field's choices or an admin select."""
    _load_all()
    return [(kind, cls.label) for kind, cls in sorted(registry.items())]


def validate_config(kind: str, data: Any) -> dict[str, Any]:
    """The validated config for ``kind``, or a ValidationError naming each bad field."""
    try:
        cls = get(kind)
    except KeyError as exc:
        raise ValidationError({"kind": [exc.args[0]]}) from None
    if not isinstance(data, Mapping):
        raise ValidationError({"config": ["Must be an object of field: value pairs."]})
    serializer = cls.Config(data=dict(data))
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def redact(config: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """A copy of ``config`` safe to show: secret fields that are set become ``••••``.

    A secret mapping (such as extra HTTP headers) keeps its keys and masks its values.
    """
    from apps.alerts.transports.http import redact_url

    cls = get(kind)
    shown: dict[str, Any] = {}
    for name, value in config.items():
        if name in cls.secret_fields and value:
            shown[name] = {k: MASK for k in value} if isinstance(value, Mapping) else MASK
        elif name in cls.url_fields and isinstance(value, str) and value:
            shown[name] = redact_url(value, keep_path=True)
        else:
            shown[name] = value
    return shown


def _defaults(config_cls: type[serializers.Serializer]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, field in config_cls().fields.items():
        if field.default is not serializers.empty:
            out[name] = field.get_default()
    return out


def make_test_message(*, portal_url: str = "", case: str = "kubeprobe-test") -> Message:
    """The message a channel's "send test" action sends through the real path."""
    # No run exists for a test: its links lead to the portal.
    link = portal_url or "http://kubeprobe.invalid/"
    return Message(
        event="test",
        severity="info",
        case=case,
        title=_("KubeProbe test notification: this channel works"),
        text=_(
            "This is a test notification from KubeProbe.\n"
            "If you can read it, alerts sent to this channel will arrive here."
        ),
        diagnosis="",
        items=(placeholder_item(f"test:{case}", cluster="test-cluster", link=link),),
        portal_url=portal_url,
    )


# -- field helpers shared by transport configs ------------------------------------------


def optional_text(max_length: int, **kwargs: Any) -> serializers.CharField:
    """A config string that may be left empty (and is empty by default)."""
    return serializers.CharField(
        required=False, default="", allow_blank=True, max_length=max_length, **kwargs
    )


def require_username_with_password(attrs: Mapping[str, Any]) -> None:
    if attrs.get("password") and not attrs.get("username"):
        raise ValidationError({"username": "Required with a password."})


def http_url(value: str) -> None:
    """An absolute http(s) URL with a host; internal names like ``alertmanager:9093`` are fine."""
    if any(ch.isspace() for ch in value):
        raise ValidationError("Must not contain whitespace.")
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError on a bad port
    except ValueError:
        raise ValidationError("Not a valid URL.") from None
    if parts.scheme not in ("http", "https"):
        raise ValidationError(
            f"Must be an http:// or https:// URL (got {parts.scheme}://)."
            if parts.scheme
            else "Must be an absolute http:// or https:// URL."
        )
    if not parts.hostname:
        raise ValidationError("The URL has no host.")
    if port == 0:
        raise ValidationError("Not a valid port.")


class HttpUrlField(serializers.CharField):
    """A URL field for receivers: http/https only, no TLD required (cluster-internal names)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 2048)
        super().__init__(**kwargs)
        self.validators.append(http_url)


_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def header_map(value: Mapping[str, str]) -> Mapping[str, str]:
    for name, val in value.items():
        if not _HEADER_NAME.match(name):
            raise ValidationError(f"Not a valid HTTP header name: {name!r}.")
        if "\r" in val or "\n" in val:
            raise ValidationError(f"Header {name} must be one line.")
    return value


def require_query_param(url: str, name: str) -> None:
    if not parse_qs(urlsplit(url).query).get(name):
        raise ValidationError(f"The webhook URL has no {name} parameter.")


def utc_iso(moment: datetime) -> str:
    """RFC 3339 in UTC with a Z, as Alertmanager, PagerDuty and most receivers expect."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def dedupe(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))


# -- signing ----------------------------------------------------------------------------


def hmac_sha256(key: str, message: str | bytes) -> bytes:
    data = message.encode() if isinstance(message, str) else message
    return hmac.new(key.encode(), data, hashlib.sha256).digest()


def signature_fields(
    secret: str, timestamp: int, sign: Callable[[str, int], str]
) -> dict[str, str]:
    """The ``timestamp`` and ``sign`` pair a signed chat robot checks (DingTalk as query
    parameters, Feishu in the body), or nothing when the channel has no secret."""
    if not secret:
        return {}
    return {"timestamp": str(timestamp), "sign": sign(secret, timestamp)}
