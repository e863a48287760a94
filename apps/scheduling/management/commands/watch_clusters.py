from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import CommandParser
from django.utils.translation import gettext as _

from apps.clusters.models import Cluster, Executor
from apps.core.i18n import LocalizedHelpCommand, gettext_lazy
from apps.scheduling.watch import ClusterWatcher


def _config(cluster: Cluster) -> tuple[object, ...]:
    """What a running watcher was started with; a change restarts it."""
    return (
        cluster.kubeconfig_fingerprint,
        cluster.context,
        tuple(cluster.watch_namespaces),
        cluster.api_qps,
        cluster.api_timeout_seconds,
    )


class Command(LocalizedHelpCommand):
    help = gettext_lazy(
        "Watch every enabled kubernetes cluster (Deployments, DaemonSets and StatefulSets in each "
        "cluster's watch namespaces, and Nodes) and turn changes into events that fire bindings. "
        "Run one instance; it picks up new and disabled clusters every --refresh seconds."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--cluster",
            action="append",
            dest="clusters",
            help=gettext_lazy("Only these (repeatable)."),
        )
        parser.add_argument("--refresh", type=float, default=60.0)

    def handle(
        self, *args: Any, clusters: list[str] | None, refresh: float, **options: Any
    ) -> None:
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        running: dict[int, tuple[tuple[object, ...], ClusterWatcher]] = {}
        while not stop.is_set():
            qs = Cluster.objects.filter(enabled=True, executor=Executor.KUBERNETES)
            if clusters:
                qs = qs.filter(name__in=clusters)
            wanted = {c.pk: c for c in qs}
            for pk, (config, watcher) in list(running.items()):
                if pk not in wanted or _config(wanted[pk]) != config:
                    # Closed, not just told to stop: an idle stream would keep the
                    # old watcher's threads and connections for up to its timeout.
                    watcher.close()
                    del running[pk]
            for pk, cluster in wanted.items():
                if pk not in running:
                    watcher = ClusterWatcher(cluster, threading.Event())
                    watcher.start()
                    running[pk] = (_config(cluster), watcher)
                    self.stdout.write(_("watching %(name)s") % {"name": cluster.name})
            stop.wait(refresh)
        for _cfg, watcher in running.values():
            watcher.close()
