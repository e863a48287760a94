"""Built-in probe and inspection cases, each runnable as `python -m probe_sdk.cases.<name>`.

Every case is configured by env vars only (see each module's docstring),
reports timed steps through probe_sdk, and cleans up what it creates.
"""
