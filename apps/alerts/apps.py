from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AlertsConfig(AppConfig):
    name = "apps.alerts"
    label = "alerts"
    verbose_name = _("Alerts")

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from apps.alerts import receivers  # noqa: F401 (connects the signal receivers)
        from apps.alerts.defaults import ensure_default_rule_post_migrate
        from apps.alerts.metrics import NotificationsCollector, PairsCollector
        from apps.core.metrics import collector_register

        collector_register(name="pairs", collector=PairsCollector())
        collector_register(name="notifications", collector=NotificationsCollector())

        post_migrate.connect(
            ensure_default_rule_post_migrate, sender=self, dispatch_uid="kubeprobe-default-rule"
        )
