"""A case that hangs and never reports."""

import time

print("starting, then hanging", flush=True)
while True:
    time.sleep(1)
