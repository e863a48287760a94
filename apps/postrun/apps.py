from django.apps import AppConfig


class PostRunConfig(AppConfig):
    name = "apps.postrun"
    label = "postrun"
    verbose_name = "Post-run pipeline"
