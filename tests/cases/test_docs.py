"""Each built-in case documents its env in its module docstring, and docs/cases.md repeats it."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

import probe_sdk.cases

CASES_DOC = (Path(__file__).resolve().parents[2] / "docs" / "cases.md").read_text()
MODULES = sorted(m.name for m in pkgutil.iter_modules(probe_sdk.cases.__path__))
CASES = [m for m in MODULES if not m.startswith("_")]


def test_all_nine_cases_ship() -> None:
    assert CASES == [
        "api_roundtrip",
        "canary",
        "certificates",
        "config_coverage",
        "etcd",
        "federation",
        "lifecycle",
        "nodes",
        "vcluster",
    ]


@pytest.mark.parametrize("module", [*CASES, "_kube"])
def test_env_table_is_in_the_docstring_and_the_cases_doc(module: str) -> None:
    doc = importlib.import_module(f"probe_sdk.cases.{module}").__doc__ or ""
    rows = [line for line in doc.splitlines() if line.startswith("| `")]
    assert rows, f"{module} has no env table"
    missing = [row for row in rows if row not in CASES_DOC]
    assert not missing, f"docs/cases.md lacks {module}'s rows: {missing}"
    if module != "_kube":
        assert f"`{module}`" in CASES_DOC
