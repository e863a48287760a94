"""Encryption of secrets at rest (kubeconfigs, credentials)."""

from __future__ import annotations

import hashlib
from functools import cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


@cache
def _fernet() -> MultiFernet:
    try:
        return MultiFernet([Fernet(key) for key in settings.KUBEPROBE_ENCRYPTION_KEYS])
    except ValueError as exc:  # malformed key: say which setting, never the key
        raise ImproperlyConfigured(
            "KUBEPROBE_ENCRYPTION_KEY must be Fernet keys (32 url-safe base64 bytes), comma-separated"
        ) from exc


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ImproperlyConfigured(
            "A stored secret cannot be decrypted with KUBEPROBE_ENCRYPTION_KEY "
            "(was the key changed without keeping the old one in the list?)"
        ) from exc


def hash_token(token: str) -> str:
    """How every bearer token (API tokens, run tokens) is stored: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def fingerprint(plaintext: str) -> str:
    """A short, non-reversible tag that tells two secrets apart in the UI."""
    return "sha256:" + hashlib.sha256(plaintext.encode()).hexdigest()[:12]


class EncryptedTextField(models.TextField):
    """Text stored as a Fernet token; Python code sees plaintext.

    Empty strings are stored empty, so "not set" stays queryable.
    """

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> str:
        if not value:
            return ""
        return decrypt(value)

    def get_prep_value(self, value: Any) -> str:
        value = super().get_prep_value(value)
        if not value:
            return ""
        return encrypt(value)
