"""A test run whose test database another session still holds (a daphne or worker a
test started, a leaked connection) still drops it at the end: none is left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]

LEAKY_TEST = """
import psycopg
import pytest

pytestmark = pytest.mark.django_db
LEAKED = []


def test_holds_a_second_session_on_the_test_database():
    from django.db import connection

    s = connection.settings_dict
    LEAKED.append(
        psycopg.connect(
            dbname=s["NAME"], user=s["USER"] or None, password=s["PASSWORD"] or None,
            host=s["HOST"] or None, port=s["PORT"] or None,
        )
    )
    print("TESTDB=" + s["NAME"])
"""


@pytest.mark.django_db
def test_a_held_test_database_is_still_dropped(tmp_path: Path) -> None:
    (tmp_path / "test_leaky.py").write_text(LEAKY_TEST)
    # The project's test-database fixtures, as tests/ gets them.
    (tmp_path / "conftest.py").write_text(
        "from tests.conftest import django_db_modify_db_settings, django_db_setup  # noqa\n"
    )
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-s",
            "-q",
            "--rootdir",
            str(ROOT),
            "-c",
            str(ROOT / "pyproject.toml"),
            str(tmp_path / "test_leaky.py"),
        ],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:]
    name = next(line.split("=", 1)[1] for line in output.splitlines() if "TESTDB=" in line)
    s = connection.settings_dict
    with psycopg.connect(
        dbname="postgres",
        user=s["USER"] or None,
        password=s["PASSWORD"] or None,
        host=s["HOST"] or None,
        port=s["PORT"] or None,
    ) as admin:
        left = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
    assert left is None, f"{name} was left behind:\n{output[-2000:]}"
