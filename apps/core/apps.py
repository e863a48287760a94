from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"
    verbose_name = "KubeProbe core"

    def ready(self) -> None:
        from apps.core import schema  # noqa: F401  (registers OpenAPI extensions)
        from apps.core.roles import sync_roles_post_migrate

        post_migrate.connect(sync_roles_post_migrate, sender=self, dispatch_uid="kubeprobe-roles")
