"""The resident runner: sample at the interval, denoise, aggregate, send.

Configured by the env the ProbeOperator sets (docs/resident.md):

| env | default | meaning |
| --- | --- | --- |
| `KUBEPROBE_RESIDENT_URL` | (required) | the center's base URL; batches go to `<url>/api/v1/resident/samples` |
| `KUBEPROBE_TOKEN` | (required) | the resident probe's token |
| `KUBEPROBE_RESIDENT_PROBE` | (required) | the ResidentProbe's name at the center |
| `KUBEPROBE_CLUSTER` | (required) | this cluster's name at the center |
| `KUBEPROBE_CASE` | | a built-in case: `etcd`, `certificates`, `api-roundtrip` |
| `KUBEPROBE_SAMPLE` | | a custom sample function: `module`, `module:function` or `/path/file.py[:function]` (function default `sample`) |
| `KUBEPROBE_INTERVAL_MS` | `1000` | between the starts of two samples |
| `KUBEPROBE_SAMPLE_TIMEOUT_MS` | `5000` | a sample running longer fails |
| `KUBEPROBE_DENOISE_K`, `KUBEPROBE_DENOISE_N` | `3`, `5` | the state changes when k of the last n samples agree |
| `KUBEPROBE_REPORT_RATE`, `KUBEPROBE_REPORT_BURST` | `1`, `5` | token bucket: batches per second, and at once |
| `KUBEPROBE_BATCH_WINDOW_MS` | `1000` | aggregation window |
| `KUBEPROBE_BUFFER_WINDOWS` | `3600` | windows kept while the center is unreachable; older ones are dropped (and counted) |
| `KUBEPROBE_RETRY_MAX_MS` | `30000` | longest wait between two attempts of a batch |
| `KUBEPROBE_FLUSH_SECONDS` | `10` | on SIGTERM, how long to keep sending what is buffered |
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import signal
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from probe_sdk.resident.bucket import TokenBucket
from probe_sdk.resident.denoise import Denoiser
from probe_sdk.resident.sender import Outbox, Sender
from probe_sdk.resident.windows import Sample, Window, should_close

log = logging.getLogger("probe_sdk.resident")

BUILTIN_CASES = {
    "etcd": "probe_sdk.cases.etcd",
    "certificates": "probe_sdk.cases.certificates",
    "api-roundtrip": "probe_sdk.cases.api_roundtrip",
}
MAX_STUCK = 3


class ConfigError(ValueError):
    """The env is missing or malformed; the message names the variable."""


def _text(env: Dict[str, str], name: str, default: Optional[str] = None) -> str:
    value = env.get(name, "").strip()
    if value:
        return value
    if default is None:
        raise ConfigError("%s is required" % name)
    return default


def _number(env: Dict[str, str], name: str, default: float, minimum: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError("%s must be a number, got %r" % (name, raw)) from None
    if value < minimum:
        raise ConfigError("%s must be at least %g, got %r" % (name, minimum, raw))
    return value


class Config:
    def __init__(self, env: Dict[str, str]) -> None:
        self.url = _text(env, "KUBEPROBE_RESIDENT_URL")
        if not self.url.startswith(("http://", "https://")):
            raise ConfigError("KUBEPROBE_RESIDENT_URL must be an http(s) URL, got %r" % self.url)
        self.token = _text(env, "KUBEPROBE_TOKEN")
        self.probe = _text(env, "KUBEPROBE_RESIDENT_PROBE")
        self.cluster = _text(env, "KUBEPROBE_CLUSTER")
        self.case = env.get("KUBEPROBE_CASE", "").strip()
        self.sample = env.get("KUBEPROBE_SAMPLE", "").strip()
        if bool(self.case) == bool(self.sample):
            raise ConfigError("set exactly one of KUBEPROBE_CASE or KUBEPROBE_SAMPLE")
        if self.case and self.case not in BUILTIN_CASES:
            raise ConfigError(
                "KUBEPROBE_CASE must be one of %s, got %r" % (", ".join(BUILTIN_CASES), self.case)
            )
        self.interval = _number(env, "KUBEPROBE_INTERVAL_MS", 1000, 1) / 1000
        self.timeout = _number(env, "KUBEPROBE_SAMPLE_TIMEOUT_MS", 5000, 1) / 1000
        self.k = int(_number(env, "KUBEPROBE_DENOISE_K", 3, 1))
        self.n = int(_number(env, "KUBEPROBE_DENOISE_N", 5, 1))
        if self.k > self.n:
            raise ConfigError("KUBEPROBE_DENOISE_K must not be greater than KUBEPROBE_DENOISE_N")
        self.rate = _number(env, "KUBEPROBE_REPORT_RATE", 1, 0.001)
        self.burst = int(_number(env, "KUBEPROBE_REPORT_BURST", 5, 1))
        self.window = _number(env, "KUBEPROBE_BATCH_WINDOW_MS", 1000, 1) / 1000
        self.buffer = int(_number(env, "KUBEPROBE_BUFFER_WINDOWS", 3600, 1))
        self.retry_max = _number(env, "KUBEPROBE_RETRY_MAX_MS", 30000, 1) / 1000
        self.flush = _number(env, "KUBEPROBE_FLUSH_SECONDS", 10, 0)


def load_sample(config: Config) -> Callable[[], Any]:
    """The sample function of a built-in case or of KUBEPROBE_SAMPLE."""
    spec = BUILTIN_CASES[config.case] if config.case else config.sample
    where, _, attr = spec.partition(":")
    attr = attr or "sample"
    try:
        if where.endswith(".py"):
            loader = importlib.util.spec_from_file_location("resident_case", where)
            if loader is None or loader.loader is None:
                raise ImportError("cannot load %s" % where)
            module = importlib.util.module_from_spec(loader)
            loader.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except (ImportError, OSError) as exc:
        raise ConfigError("cannot load the sample function %r: %s" % (spec, exc)) from None
    function = getattr(module, attr, None)
    if not callable(function):
        raise ConfigError("%s has no function %s() (see docs/resident.md)" % (where, attr))
    return function


class Sampler:
    """Runs one sample at a time in a worker thread, so a hung sample fails at the timeout.
    A thread still stuck after its timeout is left behind (daemon); past MAX_STUCK of them
    samples fail without starting more threads."""

    def __init__(self, function: Callable[[], Any], timeout: float) -> None:
        self.function = function
        self.timeout = timeout
        self.stuck: List[threading.Thread] = []

    def run(self) -> Sample:
        self.stuck = [t for t in self.stuck if t.is_alive()]
        if len(self.stuck) >= MAX_STUCK:
            return Sample(False, 0.0, "sample", "%d earlier samples are still running" % MAX_STUCK)
        outcome: Dict[str, Any] = {}

        def work() -> None:
            try:
                self.function()
            except BaseException as exc:  # any failure of the case is the sample's result
                outcome["error"] = exc

        started = time.monotonic()
        thread = threading.Thread(target=work, name="resident-sample", daemon=True)
        thread.start()
        thread.join(self.timeout)
        latency = (time.monotonic() - started) * 1000
        if thread.is_alive():
            self.stuck.append(thread)
            return Sample(False, latency, "sample", "timed out after %g ms" % (self.timeout * 1000))
        error = outcome.get("error")
        if error is None:
            return Sample(True, latency)
        step = str(getattr(error, "step", "") or "sample")
        return Sample(False, latency, step, "%s: %s" % (type(error).__name__, error))


class Runner:
    def __init__(self, config: Config, sample: Callable[[], Any]) -> None:
        self.config = config
        self.sampler = Sampler(sample, config.timeout)
        self.denoiser = Denoiser(config.k, config.n)
        self.outbox = Outbox(config.probe, config.cluster, config.buffer)
        self.bucket = TokenBucket(config.rate, config.burst)
        self.sender = Sender(
            self.outbox, config.url, config.token, self.bucket, retry_max=config.retry_max
        )
        self.stopping = threading.Event()
        self.samples = 0

    def sample_loop(self) -> None:
        window = Window(time.time())
        next_at = time.monotonic()
        while not self.stopping.is_set():
            sample = self.sampler.run()
            self.samples += 1
            changed = self.denoiser.add(sample.ok)
            if changed:
                log.info("state is now %s (%s)", self.denoiser.state, sample.error or "ok")
            window.add(sample)
            now = time.time()
            if should_close(window, now, self.config.window, changed):
                self.outbox.put(window.close(now, self.denoiser.state))
                window = Window(now)
            # A fixed rate; after a slow sample the next one starts at once, no catch-up burst.
            next_at = max(next_at + self.config.interval, time.monotonic())
            self.stopping.wait(max(0.0, next_at - time.monotonic()))
        if window.count:
            self.outbox.put(window.close(time.time(), self.denoiser.state))

    def run(self) -> int:
        sampling = threading.Thread(target=self.sample_loop, name="resident-loop", daemon=True)
        sampling.start()
        flush_deadline: List[float] = []

        def finished() -> bool:
            if not self.stopping.is_set() or sampling.is_alive():
                return False
            if not flush_deadline:
                flush_deadline.append(time.monotonic() + self.config.flush)
            return self.outbox.empty() or time.monotonic() > flush_deadline[0]

        sending = threading.Thread(target=self.sender.run, args=(finished,), daemon=True)
        sending.start()
        while sending.is_alive():
            sending.join(0.2)
            if flush_deadline and time.monotonic() > flush_deadline[0] + 1:
                self.sender.stop.set()
        if not self.outbox.empty():
            log.warning("stopped with windows not delivered (the center was unreachable)")
        return 0

    def stop(self, *_: Any) -> None:
        self.stopping.set()


def main(argv: Optional[List[str]] = None) -> int:
    logging.basicConfig(
        level=os.environ.get("KUBEPROBE_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(message)s",
    )
    try:
        config = Config(dict(os.environ))
        sample = load_sample(config)
    except ConfigError as exc:
        print("probe_sdk.resident: %s" % exc, file=sys.stderr)
        return 2
    runner = Runner(config, sample)
    signal.signal(signal.SIGTERM, runner.stop)
    signal.signal(signal.SIGINT, runner.stop)
    log.info(
        "resident probe %s on cluster %s: a sample every %g ms, reporting to %s",
        config.probe,
        config.cluster,
        config.interval * 1000,
        config.url,
    )
    return runner.run()
