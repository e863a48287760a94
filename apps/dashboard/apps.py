from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "apps.dashboard"
    label = "dashboard"
    verbose_name = "Dashboards"

    def ready(self) -> None:
        from apps.dashboard import receivers  # noqa: F401 (connects the live-push receivers)
