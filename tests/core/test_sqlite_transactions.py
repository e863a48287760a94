"""The quick start's SQLite: transactions that read and then write, in several
threads at once (a gate check with `wait` under daphne while the worker stores
runs), queue for the write lock instead of failing with "database is locked"."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

RACE = """
import os, threading, time
import django
django.setup()
from django.db import OperationalError, connection, transaction

with connection.cursor() as cursor:
    cursor.execute("CREATE TABLE race (id integer primary key, n integer)")
connection.close()
errors = []

def work():
    try:
        for i in range(25):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM race")
                cursor.fetchone()
                time.sleep(0.005)  # the work between reading and writing (a verdict)
                cursor.execute("INSERT INTO race (n) VALUES (%s)", [i])
    except OperationalError as error:
        errors.append(str(error))
    finally:
        connection.close()

threads = [threading.Thread(target=work) for _ in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
with connection.cursor() as cursor:
    cursor.execute("SELECT count(*) FROM race")
    print("rows", cursor.fetchone()[0], "errors", errors)
"""


def test_concurrent_read_then_write_transactions_all_commit(tmp_path: Path) -> None:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("KUBEPROBE_", "DATABASE_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="kubeprobe_site.settings",
        KUBEPROBE_DEBUG="1",
        KUBEPROBE_ENV_FILE="",
        DATABASE_URL=f"sqlite:///{tmp_path / 'quickstart.sqlite3'}",
        PYTHONPATH=str(ROOT),  # this tree's settings, not an installed copy's
    )
    done = subprocess.run(
        [sys.executable, "-c", RACE],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "rows 100 errors []", done.stdout
