"""Resident probing: run a case's `sample()` continuously and report denoised,
rate-limited, windowed results to the KubeProbe center (standard library only).

    python -m probe_sdk.resident        # env: see probe_sdk/resident/runner.py

A case opts in with a module-level function `sample()` that raises on failure
(the exception's `step` attribute, set by `Steps`, names the failing step) and
may return its step timings::

    from probe_sdk.resident import Steps

    def sample():
        steps = Steps()
        with steps.step("connect", threshold_ms=500):
            connect()
        return steps.timings

Built-in: `etcd`, `certificates`, `api-roundtrip` (KUBEPROBE_CASE); any other
module or file through KUBEPROBE_SAMPLE.
"""

from probe_sdk.resident.steps import StepFailed, Steps

__all__ = ["StepFailed", "Steps"]
