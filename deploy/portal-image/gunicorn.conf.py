"""gunicorn settings of the portal image (gunicorn reads ./gunicorn.conf.py by default).

Prometheus multiprocess mode: every worker process writes its metrics to files
in PROMETHEUS_MULTIPROC_DIR and /metrics sums them, so a scrape counts what all
workers did, whichever answers it. The folder is emptied when the server starts
(a restarted container keeps its emptyDir) and a dead worker's gauges are dropped.
"""

import os
import shutil
from pathlib import Path

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
# docs/operating.md, "Running it in production": 2 processes per core, 8 threads each.
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
worker_class = "gthread"
# Kubernetes sends SIGTERM, then waits terminationGracePeriodSeconds (30 s by default).
graceful_timeout = 25
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
# /tmp is the only writable path in the image (an emptyDir in the chart).
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR", "/tmp")  # noqa: S108


def on_starting(server):  # type: ignore[no-untyped-def]
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        shutil.rmtree(directory, ignore_errors=True)
        Path(directory).mkdir(parents=True, exist_ok=True)


def child_exit(server, worker):  # type: ignore[no-untyped-def]
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
