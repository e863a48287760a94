from django.apps import AppConfig


class GatingConfig(AppConfig):
    name = "apps.gating"
    label = "gating"
    verbose_name = "Release gate"

    def ready(self) -> None:
        from apps.gating import receivers  # noqa: F401 (component_release events may start checks)
