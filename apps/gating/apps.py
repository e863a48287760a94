from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class GatingConfig(AppConfig):
    name = "apps.gating"
    label = "gating"
    verbose_name = _("Release gate")

    def ready(self) -> None:
        from apps.gating import receivers  # noqa: F401 (component_release events may start checks)
