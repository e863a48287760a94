"""Judging one (case, cluster) by its recent runs under one rule: pure functions, no database.

`judge()` says whether the rule's firing conditions hold (and why), and
whether the pair is healthy enough to resolve (R successes in a row, not
stale, not slow). Between the two (failing but
not yet firing, or better but not yet resolved) the alert keeps its state:
that gap is the hysteresis that keeps alerts from chattering.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from apps.alerts import said as m
from apps.core.said import Said, say
from apps.runs.models import RunState


@dataclass(frozen=True)
class RunView:
    id: int
    state: str
    finished_at: datetime | None
    steps: list[dict[str, Any]]
    errors: list[str]
    reason: str
    duration_ms: int | None = None
    # The diagnosis of a failed run (apps/diagnosis), copied onto the alert.
    root_cause: str = ""
    root_cause_component: str = ""
    root_cause_confidence: float | None = None
    root_cause_source: str = ""
    root_cause_summary: str = ""

    @property
    def ok(self) -> bool:
        return self.state == RunState.SUCCEEDED


@dataclass(frozen=True)
class RuleView:
    consecutive_failures: int | None = None
    success_rate_below: float | None = None
    window_runs: int | None = None
    window_minutes: int | None = None
    step_latency_ms: int | None = None
    step_name: str = ""
    stale_factor: float | None = None
    resolve_after_successes: int = 1

    @classmethod
    def of(cls, rule: Any) -> RuleView:
        return cls(**{f: getattr(rule, f) for f in cls.__dataclass_fields__})

    def runs_needed(self) -> int:
        return max(
            self.consecutive_failures or 0,
            self.window_runs or 0,
            self.resolve_after_successes,
            1,
        )


@dataclass(frozen=True)
class Judgement:
    firing: bool
    healthy: bool
    reasons: tuple[Said, ...]  # apps/alerts/said.py: stored with their params
    run: RunView | None  # the run the alert points at (the latest failing one)
    step: str
    error: str


def failure_detail(run: RunView) -> tuple[str, str]:
    """(failing step, error text) of a run: the first failed step, else the run's own error."""
    for step in run.steps:
        if not step.get("ok", True):
            return str(step.get("name", "")), str(step.get("error") or "")
    if run.errors:
        return "", run.errors[0]
    return "", run.reason or f"run {run.state}"


def slow_step(rule: RuleView, run: RunView) -> tuple[str, int] | None:
    if rule.step_latency_ms is None:
        return None
    for step in run.steps:
        name = str(step.get("name", ""))
        if rule.step_name and name != rule.step_name:
            continue
        duration = int(step.get("duration_ms") or 0)
        if duration > rule.step_latency_ms:
            return name, duration
    return None


def judge(
    rule: RuleView,
    runs: list[RunView],
    now: datetime,
    stale_for: timedelta | None = None,
) -> Judgement:
    """runs: finished runs, newest first (at least rule.runs_needed(), or all in the time
    window). stale_for: how long no run has finished, when that exceeds the stale limit."""
    reasons: list[Said] = []
    latest_failed = next((r for r in runs if not r.ok), None)
    step, error = failure_detail(latest_failed) if latest_failed else ("", "")

    n = rule.consecutive_failures
    if n and len(runs) >= n and not any(r.ok for r in runs[:n]):
        reasons.append(say(m.CONSECUTIVE, n=n))

    if rule.success_rate_below is not None:
        if rule.window_minutes:
            since = now - timedelta(minutes=rule.window_minutes)
            window = [r for r in runs if r.finished_at and r.finished_at >= since]
            scope = say(m.LAST_MINUTES, minutes=rule.window_minutes)
        else:
            window = runs[: rule.window_runs or 1]
            scope = say(m.LAST_RUNS, runs=len(window))
        if window:
            rate = 100.0 * sum(r.ok for r in window) / len(window)
            if rate < rule.success_rate_below:
                limit = f"{rule.success_rate_below:g}"
                reasons.append(say(m.SUCCESS_RATE, rate=f"{rate:.1f}", scope=scope, limit=limit))

    latest = runs[0] if runs else None
    slow = slow_step(rule, latest) if latest else None
    if slow:
        name, duration = slow
        reasons.append(say(m.SLOW_STEP, step=name, duration=duration, limit=rule.step_latency_ms))
        if not latest_failed or latest_failed is not latest:
            step, error = name, f"took {duration} ms, over the {rule.step_latency_ms} ms limit"
            latest_failed = latest

    if stale_for is not None:
        minutes = stale_for.total_seconds() / 60
        reasons.append(say(m.NO_RUN_FOR, minutes=f"{minutes:.0f}"))
        if not latest_failed:
            step, error = "", f"the probe stopped running: no result for {minutes:.0f} min"

    r = rule.resolve_after_successes
    healthy = stale_for is None and not slow and len(runs) >= r and all(run.ok for run in runs[:r])
    # A success never starts an alert: otherwise a window still below its rate would
    # fire again right after R successes resolved it.
    bad_news = latest is None or not latest.ok or bool(slow) or stale_for is not None
    return Judgement(
        firing=bool(reasons) and bad_news,
        healthy=healthy,
        reasons=tuple(reasons),
        run=latest_failed or latest,
        step=step,
        error=error,
    )
