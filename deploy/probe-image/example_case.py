"""An example case: resolve the cluster DNS and the API server, timing each step.

Env: PROBE_HOST (default kubernetes.default.svc), PROBE_PORT (443),
PROBE_STEP_THRESHOLD_MS (2000).
"""

import os
import socket

from probe_sdk import Probe

host = os.environ.get("PROBE_HOST", "kubernetes.default.svc")
port = int(os.environ.get("PROBE_PORT", "443"))
threshold = float(os.environ.get("PROBE_STEP_THRESHOLD_MS", "2000"))

with Probe() as probe:
    with probe.step("resolve " + host, threshold_ms=threshold):
        address = socket.gethostbyname(host)
    with probe.step(f"connect {address}:{port}", threshold_ms=threshold):
        socket.create_connection((address, port), timeout=5).close()
