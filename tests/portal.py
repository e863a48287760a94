"""A stand-in for the portal's report endpoint: a real HTTP server that records reports."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
