"""Fixtures the Kubernetes case tests share (defined in kube_helpers.py)."""

from tests.cases.kube_helpers import probe_account  # noqa: F401
