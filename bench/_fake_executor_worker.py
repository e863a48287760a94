"""A Celery worker whose `kubernetes` executor launches nothing: dispatch load for benchmarks.

Everything of dispatch runs for real (claiming pending runs with SKIP LOCKED,
tokens, launch specs, the state updates, the dashboard pushes of the batch);
only the pod create call is replaced by a no-op, so the dispatch worker is
busy at the rate runs are fed to it without a Kubernetes API server taking the
machine's CPU. Arguments are the worker's (`-Q …`, `-c …`).

    python bench/_fake_executor_worker.py -Q celery.dispatch -c 2
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kubeprobe_site.settings")
    import django

    django.setup()
    from apps.runs.executors import base, get_executor

    real = get_executor("kubernetes")  # fills the registry first, so ours stays

    class NoPods(type(real)):  # type: ignore[misc]
        def launch(self, cluster: Any, spec: Any) -> str:
            return str(spec.name)

        def poll(self, cluster: Any, runs: list[Any]) -> dict[int, Any]:
            return {}

        def cleanup(self, cluster: Any, run: Any) -> None:
            return None

    base.registry["kubernetes"] = NoPods()
    from kubeprobe_site.celery import app

    app.worker_main(["worker", "--without-gossip", "--without-mingle", *sys.argv[1:]])


if __name__ == "__main__":
    main()
