"""The probe image's build context holds probe_sdk, which needs nothing but the standard library."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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
    assert not list(context.rglob("__pycache__"))


def test_sdk_imports_with_the_standard_library_only(context: Path) -> None:
    # -S: no site-packages, -I: no env or cwd on the path. Only the context is added.
    code = f"import sys; sys.path.insert(0, {str(context)!r}); import probe_sdk, probe_sdk.cli; print('ok')"
    result = subprocess.run(
        [sys.executable, "-S", "-I", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.stdout.strip() == "ok", result.stderr
