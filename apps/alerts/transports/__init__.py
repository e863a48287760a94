"""Notification transports: one small class per channel kind, registered by name.

Importing this package registers every transport; use :func:`get` to find one by kind.
See :mod:`.base` for the message, error and registry contract.
"""

from apps.alerts.transports import (  # noqa: F401  (each module registers its class)
    alertmanager,
    dingtalk,
    email,
    feishu,
    pagerduty,
    slack,
    webhook,
    wecom,
)
from apps.alerts.transports.base import (
    AlertItem,
    Message,
    PermanentError,
    TransientError,
    Transport,
    TransportError,
    choices,
    get,
    make_test_message,
    redact,
    register,
    registry,
    validate_config,
)

__all__ = [
    "AlertItem",
    "Message",
    "PermanentError",
    "TransientError",
    "Transport",
    "TransportError",
    "choices",
    "get",
    "make_test_message",
    "redact",
    "register",
    "registry",
    "validate_config",
]
