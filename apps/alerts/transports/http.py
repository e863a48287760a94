"""The one HTTP path every HTTP transport uses: timeout, User-Agent, status classification.

Classification (shared by all receivers, vendors refine it for 200-with-error bodies):

* 2xx: delivered.
* 408, 425, 429, 5xx, connection errors and timeouts: :class:`TransientError`.
* 3xx: :class:`PermanentError`; redirects are not followed, since a webhook that moved
  should be reconfigured, and following one would re-send the body elsewhere.
* any other 4xx: :class:`PermanentError`.

URLs in error messages are redacted: tokens travel in the path (Slack, Feishu) or the
query (DingTalk, WeCom), so messages keep the scheme, host and first path segment only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

import requests
from django.conf import settings

from apps.alerts.transports.base import MASK, PermanentError, TransientError

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 10.0
# Enough for any vendor's error JSON; a receiver answering megabytes gets cut off.
MAX_RESPONSE_BYTES = 64 * 1024
TRANSIENT_STATUS = frozenset({408, 425, 429})


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    headers: Mapping[str, str]

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def timeout_seconds() -> float:
    return float(getattr(settings, "KUBEPROBE_NOTIFY_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS))


@cache
def user_agent() -> str:
    try:
        return f"KubeProbe/{version('kubeprobe')}"
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "KubeProbe"


def request(
    method: str,
    url: str,
    *,
    json_body: Any = None,
    data: bytes | None = None,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    auth: tuple[str, str] | None = None,
) -> Response:
    """Send one request; return the response if it is 2xx, else raise the classified error."""
    if json_body is not None:
        data = json.dumps(json_body, ensure_ascii=False, separators=(",", ":")).encode()
    sent_headers = {"User-Agent": user_agent()}
    if data is not None:
        sent_headers["Content-Type"] = "application/json; charset=utf-8"
    sent_headers.update(headers or {})
    where = redact_url(url)
    timeout = timeout_seconds()
    try:
        with requests.request(
            method,
            url,
            params=params,
            data=data,
            headers=sent_headers,
            auth=auth,
            timeout=timeout,
            allow_redirects=False,
            stream=True,
        ) as raw:
            body = next(raw.iter_content(MAX_RESPONSE_BYTES), b"")
            response = Response(raw.status_code, body, dict(raw.headers))
    except requests.exceptions.SSLError as exc:
        # A certificate that does not verify will not start verifying on its own.
        if "CERTIFICATE_VERIFY_FAILED" in str(exc):
            raise PermanentError(f"TLS certificate of {where} does not verify.") from None
        raise TransientError(f"TLS handshake with {where} failed.") from None
    except requests.exceptions.Timeout:
        raise TransientError(f"No answer from {where} within {timeout:g}s.") from None
    except requests.exceptions.ConnectionError as exc:
        raise TransientError(f"Could not connect to {where}: {_root_cause(exc)}.") from None
    except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema) as exc:
        raise PermanentError(f"Invalid URL {where}: {type(exc).__name__}.") from None
    except requests.exceptions.RequestException as exc:
        raise TransientError(f"Request to {where} failed: {type(exc).__name__}.") from None
    logger.debug("%s %s -> HTTP %s", method, where, response.status)
    raise_for_status(response, url)
    return response


def raise_for_status(response: Response, url: str) -> None:
    status = response.status
    if 200 <= status < 300:
        return
    where = redact_url(url)
    detail = snippet(response.text, url)
    message = f"HTTP {status} from {where}" + (f": {detail}" if detail else "")
    if status in TRANSIENT_STATUS or status >= 500:
        raise TransientError(message, retry_after=retry_after(response.headers))
    if 300 <= status < 400:
        location = response.headers.get("Location", "")
        raise PermanentError(
            f"HTTP {status} from {where}: redirected"
            + (f" to {redact_url(location)}" if location else "")
            + "; configure the final URL."
        )
    raise PermanentError(message)


def check_answer_code(
    response: Response,
    url: str,
    *,
    vendor: str,
    transient: frozenset[int],
    robot: str = "robot",
    code_keys: tuple[str, ...] = ("errcode",),
    message_keys: tuple[str, ...] = ("errmsg",),
    transient_words: tuple[str, ...] = (),
) -> None:
    """Raise for a 200 answer whose JSON carries a non-zero code (the chat robots:
    DingTalk and WeCom ``errcode``/``errmsg``, the default; Feishu ``code``/``msg``).

    The first of ``code_keys`` present is the code and the first non-empty of
    ``message_keys`` the reason; a code in ``transient``, or a reason containing one of
    ``transient_words``, is worth a retry.
    """
    answer = response.json()
    present = [key for key in code_keys if isinstance(answer, dict) and key in answer]
    if not present:
        # The robot API always answers JSON with a code; anything else is not the robot
        # (a proxy page, a wrong URL), and the message did not arrive.
        raise PermanentError(
            f"HTTP {response.status} from {redact_url(url)} without {vendor}'s {code_keys[0]}: "
            f"{snippet(response.text, url, limit=120) or '(empty body)'}; "
            f"is this a {vendor} {robot} URL?"
        )
    try:
        code = int(answer[present[0]])
    except (TypeError, ValueError):
        code = -1
    if code == 0:
        return
    reason = next((answer[key] for key in message_keys if answer.get(key)), "")
    detail = snippet(str(reason), url)
    message = f"{vendor} error {code} from {redact_url(url)}: {detail}"
    lowered = detail.lower()
    if code in transient or any(word in lowered for word in transient_words):
        raise TransientError(message)
    raise PermanentError(message)


def retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def redact_url(url: str, *, keep_path: bool = False) -> str:
    """``url`` without secrets: no credentials, masked query values, and (by default) only
    the first path segment, since webhook tokens often are the rest of the path."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(invalid URL)"
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = (f"{MASK}@" if parts.username or parts.password else "") + host
    if port:
        netloc += f":{port}"
    path = parts.path
    if not keep_path:
        segments = path.split("/")
        if len(segments) > 2 and any(segments[2:]):
            path = "/".join([*segments[:2], MASK])
    query = "&".join(
        f"{quote(k)}={MASK}" for k, _ in parse_qsl(parts.query, keep_blank_values=True)
    )
    return urlunsplit((parts.scheme, netloc, path, query, ""))


def scrub(text: str, url: str) -> str:
    """``text`` with the secret parts of ``url`` (which receivers sometimes echo) masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return text
    secrets = [url, parts.path + ("?" + parts.query if parts.query else "")]
    secrets += [v for _, v in parse_qsl(parts.query)]
    secrets += [seg for seg in parts.path.split("/")[2:] if len(seg) >= 8]
    if parts.password:
        secrets.append(parts.password)
    for secret in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def snippet(text: str, url: str = "", limit: int = 300) -> str:
    """A short one-line excerpt of a response body for an error message."""
    one_line = " ".join(text.split())
    if url:
        one_line = scrub(one_line, url)
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"


def _root_cause(exc: BaseException) -> str:
    """The innermost OS-level reason (e.g. "connection refused"), without URLs."""
    seen: set[int] = set()
    current: BaseException | None = exc
    reason = ""
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            reason = current.strerror.lower()
        nested = current.args[0] if current.args else None
        if isinstance(nested, BaseException) and nested is not current:
            current = nested
            continue
        reason_attr = getattr(current, "reason", None)
        if isinstance(reason_attr, BaseException):
            current = reason_attr
            continue
        current = current.__cause__ or current.__context__
    if reason:
        return reason
    name = type(exc).__name__
    return "name resolution failed" if "NameResolution" in repr(exc) else name
