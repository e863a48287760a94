"""A recording HTTP receiver on 127.0.0.1 and ready-made messages for transport tests."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from apps.alerts.transports.base import AlertItem, Message

STARTED = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
ENDED = datetime(2025, 3, 4, 6, 0, 0, tzinfo=UTC)
PORTAL = "https://kubeprobe.example.com/alerts/"


def item(cluster: str = "prod-1", **overrides: Any) -> AlertItem:
    run = f"https://kubeprobe.example.com/runs/{cluster}-42/"
    values: dict[str, Any] = {
        "cluster": cluster,
        "fingerprint": f"fp-{cluster}",
        "step": "create-pod",
        "error": "Failed to create pod sandbox: rpc error: code = Unknown",
        "run_url": run,
        "log_url": run + "#log",
        "events_url": run + "#events",
        "started_at": STARTED,
    }
    values.update(overrides)
    return AlertItem(**values)


def message(*clusters: str, **overrides: Any) -> Message:
    items = tuple(item(c) for c in (clusters or ("prod-1",)))
    values: dict[str, Any] = {
        "event": "firing",
        "severity": "critical",
        "case": "statefulset-lifecycle",
        "title": "statefulset-lifecycle failed on prod-1: Failed to create pod sandbox",
        "text": "statefulset-lifecycle failed on prod-1\nstep: create-pod",
        "diagnosis": "Container runtime on the node is unhealthy",
        "root_cause": "runtime",
        "items": items,
        "portal_url": PORTAL,
    }
    values.update(overrides)
    return Message(**values)


@dataclass
class Received:
    method: str
    path: str
    raw_query: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(self.raw_query, keep_blank_values=True)

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class Receiver:
    """Records every request and answers with the configured reply."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.reply = Reply()
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                receiver.requests.append(
                    Received(
                        method=self.command,
                        path=parts.path,
                        raw_query=parts.query,
                        headers={k.lower(): v for k, v in self.headers.items()},
                        body=body,
                    )
                )
                reply = receiver.reply
                if reply.delay:
                    receiver._release.wait(reply.delay)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    # The sender gave up first (the timeout tests want that): nothing to print.
                    pass

            do_POST = do_PUT = do_GET = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def respond(
        self,
        status: int = 200,
        body: bytes | str | dict[str, Any] = b"",
        *,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        if isinstance(body, dict):
            body = json.dumps(body)
            headers = {"Content-Type": "application/json", **(headers or {})}
        if isinstance(body, str):
            body = body.encode()
        self.reply = Reply(status, body, headers or {}, delay)

    @property
    def last(self) -> Received:
        assert self.requests, "the receiver got no request"
        return self.requests[-1]

    def stop(self) -> None:
        self._release.set()  # let a delayed reply finish now
        self.server.shutdown()
        self.server.server_close()
