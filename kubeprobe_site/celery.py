import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kubeprobe_site.settings")

app = Celery("kubeprobe")
# CELERY_* settings, including the beat DatabaseScheduler.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
