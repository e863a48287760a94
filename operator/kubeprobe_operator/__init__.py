"""The ProbeOperator: keeps one resident probe pod running per ProbeConfig (kopf).

Run it with `python -m kubeprobe_operator`; docs/resident.md has the details.
"""
