"""WSGI entry point: the production HTTP server (gunicorn) for admin, API and reports.

Websockets (dashboards) are served by daphne from kubeprobe_site.asgi; the
ingress sends /ws/ there and everything else here. Django's sync views run
several times faster under WSGI than under ASGI's per-request threads.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kubeprobe_site.settings")
application = get_wsgi_application()
