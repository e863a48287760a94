"""Resident probe tokens: derived from SECRET_KEY, the probe id and a nonce; only the hash is stored.

Deriving (as run tokens do, apps/runs/tokens.py) lets the center write the token
into each cluster's Secret again on every resync without keeping it anywhere;
rotating draws a new nonce, which invalidates the old token at once.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

from django.utils.crypto import salted_hmac

TOKEN_PREFIX = "kpr_"  # noqa: S105 (a marker, not a secret)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_nonce() -> str:
    return secrets.token_hex(16)


def probe_token(*, probe_id: int, nonce: str) -> str:
    digest = salted_hmac("kubeprobe.resident-token", f"{probe_id}:{nonce}", algorithm="sha256")
    return TOKEN_PREFIX + base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")
