from django.apps import AppConfig
from django.core.signals import request_finished
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"
    verbose_name = _("KubeProbe core")

    def ready(self) -> None:
        from celery.signals import before_task_publish, task_postrun, task_prerun

        from apps.core import schema  # noqa: F401  (registers OpenAPI extensions)
        from apps.core.logcontext import log_context_end, task_context_begin, task_context_end
        from apps.core.metrics import collector_register
        from apps.core.queue_metrics import HeartbeatCollector, QueueCollector, stamp_sent_at
        from apps.core.roles import sync_roles_post_migrate

        post_migrate.connect(sync_roles_post_migrate, sender=self, dispatch_uid="kubeprobe-roles")
        before_task_publish.connect(stamp_sent_at, dispatch_uid="kubeprobe-sent-at")
        task_prerun.connect(task_context_begin, dispatch_uid="kubeprobe-log-context")
        task_postrun.connect(task_context_end, dispatch_uid="kubeprobe-log-context")
        request_finished.connect(log_context_end, dispatch_uid="kubeprobe-log-context")
        collector_register(name="queues", collector=QueueCollector())
        collector_register(name="heartbeats", collector=HeartbeatCollector())
