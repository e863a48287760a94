from django.contrib import admin
from django.urls import include, path, re_path
from django.utils.translation import gettext_lazy as _
from django.views.generic import RedirectView
from django.views.i18n import JavaScriptCatalog
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from apps.core.views import favicon, healthz, livez, metrics, readyz
from apps.gating.api.views import GateView
from apps.resident.api.ingest import samples_view
from apps.runs.reporting.http import KuberhealthyReportView, RunReportView
from kubeprobe_site.api import router

admin.site.site_header = "KubeProbe"
admin.site.site_title = "KubeProbe"
admin.site.index_title = _("Clusters, probes and runs")
# "View site": the dashboards.
admin.site.site_url = "/dashboard/"

# Unmatched URLs under /api/ answer JSON, like every other API error.
handler404 = "apps.core.views.not_found"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="dashboard:overview"), name="home"),
    # Browsers ask for /favicon.ico on every page, the admin's too.
    path("favicon.ico", favicon, name="favicon"),
    path("dashboard/", include("apps.dashboard.urls")),
    # The language switch (set_language: a cookie) and the dashboards' JS strings.
    path("i18n/", include("django.conf.urls.i18n")),
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
    path("healthz", healthz, name="healthz"),
    path("livez", livez, name="livez"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/v1/runs/<int:run_id>/report", RunReportView.as_view(), name="run-report"),
    # Kuberhealthy's Go check client accepts a reporting URL whose path is exactly /check.
    path("check", KuberhealthyReportView.as_view(), name="kuberhealthy-check"),
    path(
        "api/v1/kuberhealthy/check", KuberhealthyReportView.as_view(), name="kuberhealthy-check-v1"
    ),
    path("api/v1/resident/samples", samples_view, name="resident-samples"),
    re_path(r"^api/v1/gate/?$", GateView.as_view(), name="gate"),
    path("api/v1/", include(router.urls)),
    path("api/auth/", include("rest_framework.urls", namespace="rest_framework")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]
