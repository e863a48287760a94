"""Notification transports: one small class per channel kind, registered by name.

Use :func:`get` to find one by kind (it imports every transport module once, each
registering its class). See :mod:`.base` for the message, error and registry contract.
"""

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
