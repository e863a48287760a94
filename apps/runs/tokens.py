"""Run tokens: each run's bearer token, derived from SECRET_KEY (stored as core.crypto.hash_token)."""

from __future__ import annotations

import base64
import uuid

from django.utils.crypto import salted_hmac


def run_token(*, run_id: int, kuberhealthy: bool = False) -> str:
    """The run's bearer token, derived from SECRET_KEY and the run id.

    Every dispatch attempt of a run computes the same token, so a pod created
    by an attempt whose answer was lost still holds a valid one.
    """
    digest = salted_hmac("kubeprobe.run-token", str(run_id), algorithm="sha256").digest()
    if kuberhealthy:  # Kuberhealthy's clients carry a UUID
        return str(uuid.UUID(bytes=digest[:16]))
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")
