"""What people type about the gate, defined once.

Model fields take their validators from here, so the admin's model forms and
the API's model serializers refuse the same values with the same messages;
the check request (API serializer and `manage.py gate`) uses the same limits.
No model imports here: models.py imports this module.
"""

from __future__ import annotations

import re
from typing import Any

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.utils.functional import lazy
from django.utils.translation import gettext, gettext_noop
from django.utils.translation import gettext_lazy as _

# A component is the word release platforms and event triggers use ("etcd",
# "coredns", "ingress-nginx"): the same shape as an event's component.
COMPONENT_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
COMPONENT_INVALID = _("Must be a lowercase word (a-z, 0-9, _ . -), e.g. etcd.")

# A result older than this says nothing about the cluster now. Ten seconds is
# the least that is not noise; a week the most that is still a "latest" result.
MAX_AGE_MIN_SECONDS = 10
MAX_AGE_MAX_SECONDS = 7 * 24 * 3600
MAX_AGE_DEFAULT_SECONDS = 3600


def _between(message: str, low: int, high: int) -> str:
    """``message`` (a msgid with %(min)s and %(max)s) translated when it is read."""
    return lazy(lambda: gettext(message) % {"min": low, "max": high}, str)()


MAX_AGE_OUT_OF_RANGE = _between(
    gettext_noop("Give between %(min)s and %(max)s seconds (7 days)."),
    MAX_AGE_MIN_SECONDS,
    MAX_AGE_MAX_SECONDS,
)

# A check with `wait` holds an HTTP request (and a server thread) open: bounded.
CHECK_TIMEOUT_MIN_SECONDS = 1
CHECK_TIMEOUT_MAX_SECONDS = 900
CHECK_TIMEOUT_DEFAULT_SECONDS = 300
CHECK_TIMEOUT_OUT_OF_RANGE = _between(
    gettext_noop("Give between %(min)s and %(max)s seconds."),
    CHECK_TIMEOUT_MIN_SECONDS,
    CHECK_TIMEOUT_MAX_SECONDS,
)


def component_validators() -> list[Any]:
    return [RegexValidator(COMPONENT_RE, COMPONENT_INVALID)]


def max_age_validators() -> list[Any]:
    return [
        MinValueValidator(MAX_AGE_MIN_SECONDS, message=MAX_AGE_OUT_OF_RANGE),
        MaxValueValidator(MAX_AGE_MAX_SECONDS, message=MAX_AGE_OUT_OF_RANGE),
    ]


def check_timeout_validators() -> list[Any]:
    return [
        MinValueValidator(CHECK_TIMEOUT_MIN_SECONDS, message=CHECK_TIMEOUT_OUT_OF_RANGE),
        MaxValueValidator(CHECK_TIMEOUT_MAX_SECONDS, message=CHECK_TIMEOUT_OUT_OF_RANGE),
    ]
