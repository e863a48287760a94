"""Riding out a database outage (a Postgres restart or failover) in Celery tasks."""

from __future__ import annotations

from django.conf import settings
from django.db import InterfaceError, OperationalError

# What a lost or refused database connection raises; worth retrying, unlike a bad query.
DATABASE_ERRORS = (OperationalError, InterfaceError)
BACKOFF_CAP_SECONDS = 30


def db_retry_countdown(retries: int) -> int | None:
    """Seconds to wait before retry number `retries + 1`, or None once the budget is spent.

    1, 2, 4, 8, 16, 30, 30, … seconds, as long as their sum stays within
    KUBEPROBE_DB_RETRY_SECONDS: a bounded wait, so a long outage ends in one clear
    error instead of a pile of retries that all land when the database is back.
    """
    waited = sum(min(BACKOFF_CAP_SECONDS, 2**i) for i in range(retries))
    countdown = min(BACKOFF_CAP_SECONDS, 2**retries)
    if waited + countdown > settings.KUBEPROBE_DB_RETRY_SECONDS:
        return None
    return countdown
