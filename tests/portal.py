"""A stand-in for the portal's report endpoint: a real HTTP server that records reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class Portal:
    def __init__(self) -> None:
        self.answers: list[int] = []
        self.received: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.received.append(
                    {"path": self.path, "auth": self.headers["Authorization"], "body": body}
                )
                status = outer.answers.pop(0) if outer.answers else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b'{"detail": "scripted"}')

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/api/v1/runs/7/report"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def env(self, deadline_in: float = 30) -> dict[str, str]:
        return {
            "KUBEPROBE_REPORT_URL": self.url,
            "KUBEPROBE_RUN_ID": "7",
            "KUBEPROBE_TOKEN": "run-token",
            "KUBEPROBE_DEADLINE": str(time.time() + deadline_in),
            "KUBEPROBE_CLUSTER": "prod-1",
        }

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


ROOT = Path(__file__).resolve().parents[1]


def run_case(
    module: str, env: dict[str, str], portal: Portal | None = None, timeout: float = 180
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Run `python -m probe_sdk.cases.<module>` as a probe pod would; its process and report."""
    own = portal is None
    server = portal or Portal()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "probe_sdk.cases." + module],
            cwd=ROOT,
            env={"PATH": os.environ["PATH"], **server.env(deadline_in=timeout), **env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert server.received, result.stderr
        return result, server.received[-1]["body"]
    finally:
        if own:
            server.stop()
