from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ResidentConfig(AppConfig):
    name = "apps.resident"
    label = "resident"
    verbose_name = _("Resident probes")

    def ready(self) -> None:
        from apps.core.metrics import collector_register
        from apps.resident.metrics import ResidentCollector

        collector_register(name="resident", collector=ResidentCollector())
