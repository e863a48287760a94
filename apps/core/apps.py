from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"
    verbose_name = "KubeProbe core"

    def ready(self) -> None:
        from celery.signals import before_task_publish

        from apps.core import schema  # noqa: F401  (registers OpenAPI extensions)
        from apps.core.metrics import collector_register
        from apps.core.queue_metrics import HeartbeatCollector, QueueCollector, stamp_sent_at
        from apps.core.roles import sync_roles_post_migrate

        post_migrate.connect(sync_roles_post_migrate, sender=self, dispatch_uid="kubeprobe-roles")
        before_task_publish.connect(stamp_sent_at, dispatch_uid="kubeprobe-sent-at")
        collector_register(name="queues", collector=QueueCollector())
        collector_register(name="heartbeats", collector=HeartbeatCollector())
