"""A recording stand-in for the center's POST /api/v1/resident/samples.

It speaks the protocol's answers (202 stored, 200 duplicate for a batch id
it has, 401 for a wrong token), records every attempt with its arrival time,
can lose its answer (store, then say 503) and can be stopped and started
again on the same port to play an outage.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "resident-test-token"


@dataclass
class Attempt:
    at: float
    batch_id: str
    body: bytes
    status: int


class Center:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.attempts: list[Attempt] = []
        self.stored: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []  # batch ids in the order they were stored
        self.lose_answers = 0  # store, then answer 503 this many times
        self.port = 0
        self.httpd: ThreadingHTTPServer | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        center = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                status, answer = center.receive(self.path, self.headers, raw)
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Close the listening socket: connections are refused until start()."""
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    def receive(self, path: str, headers: Any, raw: bytes) -> tuple[int, dict[str, Any]]:
        if path != "/api/v1/resident/samples":
            return 404, {"detail": "not found"}
        if headers.get("Authorization") != f"Bearer {TOKEN}":
            return 401, {"detail": "bad token"}
        body = json.loads(raw)
        batch_id = body["batch_id"]
        status: int
        answer: dict[str, Any]
        with self.lock:
            if batch_id in self.stored:
                status, answer = 200, {"duplicate": True}
            else:
                self.stored[batch_id] = body
                self.order.append(batch_id)
                status, answer = 202, {"stored": len(body["windows"])}
                if self.lose_answers:
                    self.lose_answers -= 1
                    status, answer = 503, {"detail": "stored, but the answer is lost"}
            self.attempts.append(Attempt(time.monotonic(), batch_id, raw, status))
        return status, answer

    def windows(self) -> list[dict[str, Any]]:
        """Every stored window, in the order the batches were stored."""
        with self.lock:
            return [w for batch_id in self.order for w in self.stored[batch_id]["windows"]]

    def samples(self) -> int:
        return sum(w["count"] for w in self.windows())
