from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RunsConfig(AppConfig):
    name = "apps.runs"
    label = "runs"
    verbose_name = _("Probe runs")

    def ready(self) -> None:
        from apps.core.metrics import collector_register
        from apps.runs.metrics import RunsCollector

        collector_register(name="runs", collector=RunsCollector())
