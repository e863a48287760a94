from django.apps import AppConfig


class ResidentConfig(AppConfig):
    name = "apps.resident"
    label = "resident"
    verbose_name = "Resident probes"
