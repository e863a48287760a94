"""A case that does two timed steps and reports success through probe_sdk."""

import time

from probe_sdk import Probe

with Probe() as probe:
    with probe.step("create object"):
        time.sleep(0.05)
    with probe.step("read it back"):
        time.sleep(0.02)
    probe.metric("objects", 1)
