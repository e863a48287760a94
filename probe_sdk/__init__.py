"""probe_sdk: report probe results to KubeProbe from any container.

Standard library only, so it drops into any image with Python 3.8+::

    from probe_sdk import Probe

    with Probe() as probe:
        with probe.step("create pod"):
            create_pod()
        with probe.step("wait ready", threshold_ms=30_000):
            wait_ready()

Or report once by hand: ``report_success()`` / ``report_failure(["why"])``.
The portal passes the env contract: KUBEPROBE_REPORT_URL, KUBEPROBE_RUN_ID,
KUBEPROBE_TOKEN, KUBEPROBE_DEADLINE (unix seconds), KUBEPROBE_CLUSTER.
"""

from probe_sdk.client import (
    AlreadyReported,
    Probe,
    ProbeEnv,
    ProbeEnvError,
    ReportRejected,
    StepFailed,
    report,
    report_failure,
    report_success,
)

__all__ = [
    "AlreadyReported",
    "Probe",
    "ProbeEnv",
    "ProbeEnvError",
    "ReportRejected",
    "StepFailed",
    "report",
    "report_failure",
    "report_success",
]
