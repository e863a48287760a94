"""The probe image: its build context, and the packages the built-in cases need in it."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
IMAGE_DIR = ROOT / "deploy" / "probe-image"


@pytest.fixture
def context(tmp_path: Path) -> Path:
    work = tmp_path / "probe-image"
    shutil.copytree(IMAGE_DIR, work, ignore=shutil.ignore_patterns("build"))
    subprocess.run(
        ["make", "-s", "context", f"ROOT={ROOT}"],
        cwd=work,
        check=True,
        capture_output=True,
        timeout=60,
    )
    return work / "build"


def test_context_has_the_sdk_the_case_and_the_dockerfile(context: Path) -> None:
    assert (context / "Dockerfile").is_file()
    assert (context / "case.py").read_text().startswith('"""An example case')
    assert (context / "probe_sdk" / "client.py").is_file()
    assert (context / "requirements.txt").read_text() == (
        IMAGE_DIR / "requirements.txt"
    ).read_text()
    assert (context / "probe_sdk" / "cases" / "lifecycle.py").is_file()
    assert not list(context.rglob("__pycache__"))


def _requirements() -> dict[str, str]:
    lines = (IMAGE_DIR / "requirements.txt").read_text().splitlines()
    pins = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return {re.split(r"[=<>]", pin, maxsplit=1)[0].lower(): pin for pin in pins}


def _third_party_imports() -> set[str]:
    """Top-level modules the built-in cases import that are neither stdlib nor ours."""
    found: set[str] = set()
    for path in (ROOT / "probe_sdk").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found |= {name.split(".")[0] for name in names}
    return {n for n in found if n not in sys.stdlib_module_names and n != "probe_sdk"}


def test_image_requirements_cover_every_import_of_the_cases() -> None:
    import_to_package = {"kubernetes": "kubernetes", "jsonpath_ng": "jsonpath-ng", "yaml": "pyyaml"}
    imports = _third_party_imports()
    assert imports <= set(import_to_package), f"add to requirements.txt: {imports}"
    assert {import_to_package[name] for name in imports} <= set(_requirements())


def test_image_requirements_match_the_portal_pins() -> None:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        portal = tomllib.load(handle)["project"]["dependencies"]
    portal_pins = {re.split(r"[=<>\[]", pin, maxsplit=1)[0].lower(): pin for pin in portal}
    for package, pin in _requirements().items():
        assert portal_pins.get(package, "").replace(" ", "") == pin, package


def test_the_core_sdk_and_the_standard_library_cases_need_no_packages(context: Path) -> None:
    modules = "probe_sdk, probe_sdk.cli, probe_sdk.cases.etcd, probe_sdk.cases.certificates"
    code = f"import sys; sys.path.insert(0, {str(context)!r}); import {modules}; print('ok')"
    result = subprocess.run(
        [sys.executable, "-S", "-I", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_rbac_manifest_grants_what_the_cases_call() -> None:
    docs = list(
        yaml.safe_load_all((ROOT / "deploy" / "kubernetes" / "probe-rbac.yaml").read_text())
    )
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("ServiceAccount", "kubeprobe-probe") in kinds
    from apps.catalog.builtin import PROBE_SERVICE_ACCOUNT

    assert PROBE_SERVICE_ACCOUNT == "kubeprobe-probe"
    [role] = [d for d in docs if d["kind"] == "Role"]
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    needed = [("", "pods", v) for v in ("create", "get", "list", "delete")]
    needed += [
        ("apps", r, v)
        for r in ("deployments", "statefulsets")
        for v in ("create", "patch", "delete")
    ]
    needed += [("", "services", "create"), ("", "events", "list")]
    needed += [("discovery.k8s.io", "endpointslices", "list")]  # canary
    assert not [n for n in needed if n not in granted]
