from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PostRunConfig(AppConfig):
    name = "apps.postrun"
    label = "postrun"
    verbose_name = _("Post-run pipeline")

    def ready(self) -> None:
        # The run loop hands finished runs to the pipeline's task by name
        # (apps/runs/reporting/handoff.py): register it in every process, web
        # servers included, not only where Celery imports tasks modules.
        from apps.postrun import tasks  # noqa: F401
