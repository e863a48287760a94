from django.apps import AppConfig


class ResidentConfig(AppConfig):
    name = "apps.resident"
    label = "resident"
    verbose_name = "Resident probes"

    def ready(self) -> None:
        from apps.core.metrics import collector_register
        from apps.resident.metrics import ResidentCollector

        collector_register(name="resident", collector=ResidentCollector())
