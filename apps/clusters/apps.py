from django.apps import AppConfig


class ClustersConfig(AppConfig):
    name = "apps.clusters"
    label = "clusters"
    verbose_name = "Clusters"

    def ready(self) -> None:
        from apps.clusters.metrics import ClustersCollector
        from apps.core.metrics import collector_register

        collector_register(name="clusters", collector=ClustersCollector())
