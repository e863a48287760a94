"""The portal as several hosts would run it, for tests: real processes, a load balancer,
websocket dashboards. Used by test_scale_out.py."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

import aiohttp

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Processes:
    """Named subprocesses, each logging to <dir>/<name>.log; all stopped by stop()."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.running: dict[str, tuple[subprocess.Popen[bytes], IO[bytes]]] = {}

    def start(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("wb")
        process = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        self.running[name] = (process, log)
        return process

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def kill_tree(self, name: str) -> list[int]:
        """SIGKILL the process and all its descendants at once, as when its host dies."""
        process, _ = self.running[name]
        pids = [process.pid, *descendants(process.pid)]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait(timeout=10)
        return pids

    def stop(self) -> None:
        for process, _ in self.running.values():
            if process.poll() is None:
                process.terminate()
        for name, (process, log) in self.running.items():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()
            # pytest shows this when the test fails.
            print(f"--- {name} (exit {process.returncode}) ---\n{self.log(name)[-2500:]}")


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return found
    for child in map(int, children):
        found += [child, *descendants(child)]
    return found


def python(*args: str) -> list[str]:
    return [sys.executable, "-m", *args]


def gunicorn(port: int, access_log: Path) -> list[str]:
    # One process of the production command (deploy/portal-image/gunicorn.conf.py: gthread).
    return python(
        "gunicorn", "kubeprobe_site.wsgi:application", "-b", f"127.0.0.1:{port}",
        "-w", "1", "--threads", "4", "-k", "gthread", "--access-logfile", str(access_log),
    )  # fmt: skip


def daphne(port: int) -> list[str]:
    return python("daphne", "-b", "127.0.0.1", "-p", str(port), "kubeprobe_site.asgi:application")


def worker(queues: list[str], name: str) -> list[str]:
    return python(
        "celery", "-A", "kubeprobe_site", "worker", "-Q", ",".join(queues), "-c", "1",
        "-n", f"{name}@%h", "--loglevel", "INFO", "--without-gossip", "--without-mingle",
    )  # fmt: skip


def beat(directory: Path) -> list[str]:
    return python(
        "celery", "-A", "kubeprobe_site", "beat", "--loglevel", "INFO",
        "--pidfile", str(directory / "beat.pid"), "-s", str(directory / "beat-schedule"),
    )  # fmt: skip


class RoundRobin:
    """A TCP load balancer on 127.0.0.1 in front of the web processes: each new
    connection goes to the next backend, as an ingress or Service spreads them."""

    def __init__(self, backends: list[int]) -> None:
        self.next = itertools.cycle(backends)
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = int(self.sock.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                port = next(self.next)
            try:
                upstream = socket.create_connection(("127.0.0.1", port), timeout=10)
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    def close(self) -> None:
        self.sock.close()


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class Dashboards:
    """Websocket clients subscribed to the overview, as open dashboard pages are; each
    keeps every cell it was sent. They run on an event loop in a thread of their own."""

    def __init__(self, ports: list[int], cookie: str) -> None:
        self.ports, self.cookie = ports, cookie
        self.cells: list[list[dict[str, Any]]] = [[] for _ in ports]
        self.errors: list[str] = []
        self.subscribed = [threading.Event() for _ in ports]
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        for index in range(len(ports)):
            asyncio.run_coroutine_threadsafe(self._client(index), self.loop)

    async def _client(self, index: int) -> None:
        port = self.ports[index]
        headers = {"Origin": f"http://127.0.0.1:{port}", "Cookie": f"sessionid={self.cookie}"}
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.ws_connect(f"ws://127.0.0.1:{port}/ws/live/", headers=headers) as ws,
            ):
                await ws.send_json({"type": "subscribe", "scope": "overview"})
                async for message in ws:
                    if message.type != aiohttp.WSMsgType.TEXT:
                        self.errors.append(f"client {index}: {message.type} {message.data}")
                        return
                    frame = json.loads(message.data)
                    if frame["type"] == "subscribed":
                        self.subscribed[index].set()
                    elif frame["type"] == "cells":
                        self.cells[index].extend(frame["cells"])
                    elif frame["type"] == "error":
                        self.errors.append(f"client {index}: {frame}")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # recorded for the test's assertion, never swallowed
            self.errors.append(f"client {index}: {exc!r}")

    async def _shutdown(self) -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()
