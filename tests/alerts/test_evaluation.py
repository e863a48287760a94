"""Rule judgement at its boundaries: pure functions over run views, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apps.alerts.evaluation import RuleView, RunView, judge

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def run(ok: bool, minutes_ago: float = 0, steps: list | None = None, n: int = 0) -> RunView:
    return RunView(
        id=n,
        state="succeeded" if ok else "failed",
        finished_at=NOW - timedelta(minutes=minutes_ago),
        steps=steps
        if steps is not None
        else ([] if ok else [{"name": "ready", "ok": False, "error": "ImagePullBackOff"}]),
        errors=[] if ok else ["step ready failed"],
        reason="",
    )


def history(*oks: bool) -> list[RunView]:
    """Newest first."""
    return [run(ok, minutes_ago=i, n=i) for i, ok in enumerate(oks)]


def test_consecutive_failures_fire_exactly_at_n() -> None:
    rule = RuleView(consecutive_failures=3)
    assert not judge(rule, history(False, False, True), NOW).firing
    assert not judge(rule, history(False, False), NOW).firing  # too few runs yet
    verdict = judge(rule, history(False, False, False, True), NOW)
    assert verdict.firing
    assert tuple(r.english for r in verdict.reasons) == ("3 consecutive failed runs",)
    assert (verdict.step, verdict.error) == ("ready", "ImagePullBackOff")
    assert verdict.run is not None and verdict.run.id == 0


def test_success_rate_over_the_last_m_runs_boundary() -> None:
    rule = RuleView(success_rate_below=80, window_runs=5)
    # 4 of 5 = 80%: not below
    assert not judge(rule, history(False, True, True, True, True, False), NOW).firing
    verdict = judge(rule, history(False, False, True, True, True), NOW)
    assert verdict.firing
    assert tuple(r.english for r in verdict.reasons) == (
        "success rate 60.0% over the last 5 runs, below 80%",
    )


def test_success_rate_below_100_fires_on_one_failure() -> None:
    rule = RuleView(success_rate_below=100, window_runs=10)
    assert judge(rule, history(False, *[True] * 9), NOW).firing
    assert not judge(rule, history(*[True] * 10), NOW).firing


def test_success_rate_over_a_time_window_counts_only_runs_inside_it() -> None:
    rule = RuleView(success_rate_below=50, window_minutes=10)
    runs = [run(False, 0), run(True, 9.99), run(False, 10.01), run(False, 11)]
    verdict = judge(rule, runs, NOW)
    assert not verdict.firing  # 1 of 2 inside the window = 50%, not below
    runs = [run(False, 0), run(False, 5), run(True, 9.99)]
    verdict = judge(rule, runs, NOW)
    assert verdict.firing
    assert tuple(r.english for r in verdict.reasons) == (
        "success rate 33.3% over the last 10 min, below 50%",
    )


def test_step_latency_over_the_limit_fires_even_when_the_run_passed() -> None:
    rule = RuleView(step_latency_ms=1000, step_name="scheduled")
    slow = [{"name": "scheduled", "ok": True, "duration_ms": 1001}]
    at_limit = [{"name": "scheduled", "ok": True, "duration_ms": 1000}]
    other = [{"name": "create", "ok": True, "duration_ms": 5000}]
    assert not judge(rule, [run(True, steps=at_limit)], NOW).firing
    assert not judge(rule, [run(True, steps=other)], NOW).firing  # another step
    verdict = judge(rule, [run(True, steps=slow)], NOW)
    assert verdict.firing
    assert verdict.step == "scheduled"
    assert verdict.error == "took 1001 ms, over the 1000 ms limit"
    assert not verdict.healthy


def test_stale_fires_with_no_runs_and_names_the_silence() -> None:
    rule = RuleView(stale_factor=3)
    verdict = judge(rule, [], NOW, stale_for=timedelta(minutes=31))
    assert verdict.firing
    assert tuple(r.english for r in verdict.reasons) == ("no run finished for 31 min",)
    assert verdict.error == "the probe stopped running: no result for 31 min"


def test_resolve_needs_r_successes_in_a_row() -> None:
    rule = RuleView(consecutive_failures=1, resolve_after_successes=3)
    assert not judge(rule, history(True, True, False), NOW).healthy
    assert judge(rule, history(True, True, True, False), NOW).healthy


def test_a_success_never_fires_even_while_the_window_is_below_its_rate() -> None:
    rule = RuleView(success_rate_below=100, window_runs=10, resolve_after_successes=1)
    verdict = judge(rule, history(True, False, True), NOW)
    assert verdict.healthy and not verdict.firing


def test_error_of_a_run_without_steps_is_its_own_error_or_reason() -> None:
    rule = RuleView(consecutive_failures=1)
    timed_out = RunView(
        id=1,
        state="timed_out",
        finished_at=NOW,
        steps=[],
        errors=[],
        reason="no report before the deadline; pod phase Pending",
    )
    verdict = judge(rule, [timed_out], NOW)
    assert verdict.firing
    assert verdict.error == "no report before the deadline; pod phase Pending"
