"""A case that fails and passes in turn on each cluster, so every run changes its alert."""

import os
from pathlib import Path

from probe_sdk import Probe

marker = Path(os.environ["FLIP_STATE_DIR"]) / os.environ["KUBEPROBE_CLUSTER"]
fail = not marker.exists()
if fail:
    marker.touch()
else:
    marker.unlink()
with Probe() as probe, probe.step("flip"):
    if fail:
        raise RuntimeError("failing on purpose: every other run")
