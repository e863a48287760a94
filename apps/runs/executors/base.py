from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from apps.clusters.models import Executor as ExecutorKind

if TYPE_CHECKING:
    from apps.clusters.models import Cluster
    from apps.runs.models import ProbeRun

registry: dict[str, Executor] = {}

_DNS_UNSAFE = re.compile(r"[^a-z0-9-]+")


def dns_label(text: str, limit: int = 63) -> str:
    """A Kubernetes name or label value made from free text."""
    return _DNS_UNSAFE.sub("-", text.lower()).strip("-")[:limit].strip("-") or "x"


Phase = Literal["pending", "running", "succeeded", "failed", "missing"]


class ExecutorError(Exception):
    """The run cannot be launched or observed; retrying will not help."""


class TransientExecutorError(ExecutorError):
    """A passing failure (throttling, 5xx): the dispatch is retried with backoff."""


@dataclass(frozen=True)
class LaunchSpec:
    """Everything an executor needs to start one run, already rendered."""

    run_id: int
    name: str  # unique, DNS-safe (pod name)
    namespace: str
    image: str
    command: list[str]
    args: list[str]
    env: dict[str, str]
    resources: dict[str, Any]
    service_account: str
    timeout_seconds: int
    labels: dict[str, str]
    report_protocol: str


@dataclass
class RunStatus:
    """What the executor sees of a run's pod or process."""

    phase: Phase
    reason: str = ""
    # Terminal failure seen before any report: the run can end now.
    failed_early: bool = False
    details: dict[str, Any] = field(default_factory=dict)


class Executor(ABC):
    name: ClassVar[ExecutorKind]

    @abstractmethod
    def launch(self, cluster: Cluster, spec: LaunchSpec) -> str:
        """Start the run; return a handle (pod name, process id) to store on the run."""

    @abstractmethod
    def poll(self, cluster: Cluster, runs: list[ProbeRun]) -> dict[int, RunStatus]:
        """The status of many runs of one cluster at once (one API call where possible)."""

    @abstractmethod
    def logs(self, cluster: Cluster, run: ProbeRun, tail_lines: int = 50) -> str:
        """The tail of the run's output."""

    @abstractmethod
    def cleanup(self, cluster: Cluster, run: ProbeRun) -> None:
        """Remove what the run left behind (pod, process); missing is fine."""

    def events(self, cluster: Cluster, run: ProbeRun) -> list[dict[str, Any]]:
        """Recent events about the run's pod, where the executor has any."""
        return []

    def managed_handles(self, cluster: Cluster) -> dict[int, str]:
        """run id → handle for everything this executor runs for KubeProbe in the cluster.

        Used to find orphans; executors that cannot list return {}.
        """
        return {}


def register(cls: type[Executor]) -> type[Executor]:
    ExecutorKind(cls.name)  # one of the kinds a cluster can choose, or a ValueError
    registry[cls.name] = cls()
    return cls
