"""A case whose second step fails the way a real link probe does."""

from probe_sdk import Probe

with Probe() as probe:
    with probe.step("create statefulset"):
        pass
    with probe.step("wait pod ready"):
        raise RuntimeError("Failed to create pod sandbox: rpc error: code = Unknown")
