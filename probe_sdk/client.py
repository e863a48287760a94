"""The report client and the Probe context manager (standard library only)."""

from __future__ import annotations

import http.client
import json
import os
import random
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence

ENV_VARS = (
    "KUBEPROBE_REPORT_URL",
    "KUBEPROBE_RUN_ID",
    "KUBEPROBE_TOKEN",
    "KUBEPROBE_DEADLINE",
)
# Keep well under the portal's 256 KiB body limit.
MAX_ERROR_CHARS = 4000
MAX_ERRORS = 50
_TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}


class ProbeEnvError(RuntimeError):
    """The env contract is missing or malformed (not started by KubeProbe?)."""


class ReportRejected(RuntimeError):
    """The portal refused the report for good (bad token, deadline passed, bad body)."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"KubeProbe rejected the report: HTTP {status}: {body[:500]}")
        self.status = status
        self.body = body


class AlreadyReported(RuntimeError):
    """This process already reported; a run reports once."""


class StepFailed(AssertionError):
    """Raised by a step that exceeded its latency threshold."""


@dataclass(frozen=True)
class ProbeEnv:
    report_url: str
    run_id: str
    token: str
    deadline: float
    cluster: str

    @classmethod
    def from_environ(cls, environ: Optional[Mapping[str, str]] = None) -> ProbeEnv:
        env = os.environ if environ is None else environ
        missing = [name for name in ENV_VARS if not env.get(name)]
        if missing:
            raise ProbeEnvError(
                "probe_sdk needs the env KubeProbe sets on probe pods; missing: "
                + ", ".join(missing)
            )
        try:
            deadline = float(env["KUBEPROBE_DEADLINE"])
        except ValueError:
            raise ProbeEnvError(
                "KUBEPROBE_DEADLINE must be unix seconds, got %r" % env["KUBEPROBE_DEADLINE"]
            ) from None
        return cls(
            report_url=env["KUBEPROBE_REPORT_URL"],
            run_id=env["KUBEPROBE_RUN_ID"],
            token=env["KUBEPROBE_TOKEN"],
            deadline=deadline,
            cluster=env.get("KUBEPROBE_CLUSTER", ""),
        )


MAX_STEPS = 500
MAX_NAME = 200
MAX_STEP_ERROR = 2000


def _text(value: Any, limit: int) -> str:
    """A string the portal stores: no NUL, no lone surrogates, not too long."""
    text = str(value).replace("\x00", "")
    text = text.encode("utf-8", "replace").decode("utf-8")
    return text[:limit]


def _clean_steps(steps: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    # Within the portal's limits, so a result is never refused for its form.
    out = []
    for step in list(steps)[:MAX_STEPS]:
        duration = step.get("duration_ms", 0)
        if (
            not isinstance(duration, (int, float))
            or isinstance(duration, bool)
            or duration != duration
        ):
            duration = 0
        out.append(
            {
                "name": _text(step.get("name") or "step", MAX_NAME) or "step",
                "ok": bool(step.get("ok")),
                "duration_ms": max(0, min(float(duration), 1e12)),
                "error": _text(step.get("error") or "", MAX_STEP_ERROR),
            }
        )
    return out


def _clean_metrics(metrics: Optional[Mapping[str, float]]) -> Dict[str, float]:
    out = {}
    for name, value in list((metrics or {}).items())[:500]:
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            continue
        if number == number and abs(number) < 1e300:  # drops NaN and infinities
            out[_text(name, MAX_NAME) or "metric"] = number
    return out


_lock = threading.Lock()
_reported = False


def _post(env: ProbeEnv, body: bytes, timeout: float) -> tuple[int, str]:
    request = urllib.request.Request(  # noqa: S310 (the portal's URL, http or https)
        env.report_url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Authorization": "Bearer " + env.token,
            "User-Agent": "kubeprobe-probe-sdk",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def report(
    ok: bool,
    errors: Sequence[str] = (),
    steps: Sequence[Mapping[str, Any]] = (),
    metrics: Optional[Mapping[str, float]] = None,
    env: Optional[ProbeEnv] = None,
) -> None:
    """Send the run's one result, retrying transient failures until the deadline."""
    global _reported
    env = env or ProbeEnv.from_environ()
    errors = [_text(e, MAX_ERROR_CHARS) or "(empty message)" for e in errors][:MAX_ERRORS]
    if not ok and not errors:
        errors = ["probe reported failure without a message"]
    if ok and errors:
        raise ValueError("a successful report carries no errors")
    body = json.dumps(
        {
            "ok": ok,
            "errors": errors,
            "steps": _clean_steps(steps),
            "metrics": _clean_metrics(metrics),
        }
    ).encode()
    with _lock:
        if _reported:
            raise AlreadyReported("this run already reported its result")
        delay = 0.5
        last = "no attempt made"
        while True:
            remaining = env.deadline - time.time()
            if remaining <= 0:
                raise ReportRejected(0, "deadline passed before the report got through: " + last)
            try:
                status, text = _post(env, body, timeout=max(1.0, min(10.0, remaining)))
            except (OSError, urllib.error.URLError, http.client.HTTPException) as exc:
                # refused, reset, DNS, timeout, a broken answer: all worth another try
                status, text = 0, str(exc)
            if 200 <= status < 300 or status == 409:
                # 409: the portal already has a result for this run; do not send again.
                _reported = True
                return
            if status and status not in _TRANSIENT_STATUS:
                raise ReportRejected(status, text)
            last = "HTTP %s: %s" % (status, text[:200]) if status else text
            sleep = min(delay, max(0.0, env.deadline - time.time()))
            time.sleep(sleep * (0.5 + random.random() / 2))  # noqa: S311 (jitter)
            delay = min(delay * 2, 10.0)


def report_success(**kwargs: Any) -> None:
    """Report that the run succeeded."""
    report(True, **kwargs)


def report_failure(errors: Sequence[str], **kwargs: Any) -> None:
    """Report that the run failed, with its error messages."""
    if isinstance(errors, str):
        errors = [errors]
    report(False, errors=errors, **kwargs)


class Probe:
    """Times named steps, records failures and reports once on exit.

    An exception escaping a step fails that step and the run; it is then
    re-raised so the process exits non-zero and the traceback lands in the log.
    """

    def __init__(self, env: Optional[ProbeEnv] = None) -> None:
        self.env = env or ProbeEnv.from_environ()
        self.steps: List[Dict[str, Any]] = []
        self.errors: List[str] = []
        self.metrics: Dict[str, float] = {}
        self._started = time.monotonic()

    def __enter__(self) -> Probe:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc is not None and not getattr(exc, "_kubeprobe_recorded", False):
            self.errors.append("%s: %s" % (exc_type.__name__, exc))
        self.metrics.setdefault("total_ms", round((time.monotonic() - self._started) * 1000))
        ok = not self.errors
        try:
            report(ok, errors=self.errors, steps=self.steps, metrics=self.metrics, env=self.env)
        except (ReportRejected, AlreadyReported) as report_exc:
            print("probe_sdk: %s" % report_exc, file=sys.stderr)
            if exc is None:
                raise

    @property
    def ok(self) -> bool:
        return not self.errors

    def metric(self, name: str, value: float) -> None:
        self.metrics[name] = float(value)

    def record_step(self, name: str, ok: bool, duration_ms: float, error: str = "") -> None:
        """Record a step timed elsewhere (e.g. one of many waited on together)."""
        if not ok and not error:
            error = "failed"
        self.steps.append(
            {"name": name, "ok": ok, "duration_ms": round(duration_ms), "error": error}
        )
        if not ok:
            self.errors.append("step %s failed: %s" % (name, error))

    @contextmanager
    def step(self, name: str, threshold_ms: Optional[float] = None) -> Iterator[Dict[str, Any]]:
        """Time a step; fail it on an exception or when it is slower than threshold_ms."""
        record: Dict[str, Any] = {"name": name, "ok": True, "duration_ms": 0, "error": ""}
        start = time.monotonic()
        try:
            yield record
        except BaseException as exc:
            record["ok"] = False
            record["error"] = "%s: %s" % (type(exc).__name__, exc)
            self.errors.append("step %s failed: %s" % (name, record["error"]))
            exc._kubeprobe_recorded = True  # type: ignore[attr-defined]
            raise
        finally:
            record["duration_ms"] = round((time.monotonic() - start) * 1000)
            self.steps.append(record)
        if threshold_ms is not None and record["duration_ms"] > threshold_ms:
            record["ok"] = False
            record["error"] = "took %d ms, over the %d ms threshold" % (
                record["duration_ms"],
                threshold_ms,
            )
            self.errors.append("step %s failed: %s" % (name, record["error"]))
            failure = StepFailed(record["error"])
            failure._kubeprobe_recorded = True  # type: ignore[attr-defined]
            raise failure
