"""A case that fails while the file named by GATE_FAULT_FILE exists (a fault the test
injects and removes), and passes otherwise."""

import os

from probe_sdk import Probe

with Probe() as probe:
    with probe.step("create pod"):
        pass
    with probe.step("wait pod ready"):
        if os.path.exists(os.environ["GATE_FAULT_FILE"]):
            raise RuntimeError("Failed to create pod sandbox: network plugin not ready")
