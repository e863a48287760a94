from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ClustersConfig(AppConfig):
    name = "apps.clusters"
    label = "clusters"
    verbose_name = _("Clusters")

    def ready(self) -> None:
        from apps.clusters.metrics import ClustersCollector
        from apps.core.metrics import collector_register

        collector_register(name="clusters", collector=ClustersCollector())
