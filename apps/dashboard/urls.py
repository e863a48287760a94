from django.urls import path, register_converter

from apps.core.converters import NameConverter
from apps.dashboard import incidents, views

register_converter(NameConverter, "name")

app_name = "dashboard"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("state.json", views.state_json, name="state"),
    path("grid.json", views.grid_data, name="grid"),
    path("clusters/<name:name>/", views.cluster_detail, name="cluster"),
    path("cases/<name:name>/", views.case_detail, name="case"),
    path("runs/<int:run_id>/", views.run_detail, name="run"),
    path("resident/<name:name>/", views.resident_detail, name="resident"),
    path("runs/<int:run_id>/run-again/", views.run_again, name="run-again"),
    path("runs/<int:run_id>/label/", incidents.run_label, name="run-label"),
    path("incidents/", incidents.incidents, name="incidents"),
    path("incidents/<int:incident_id>/", incidents.incident_detail, name="incident"),
    path("incidents/<int:incident_id>/label/", incidents.incident_label, name="incident-label"),
    path("alerts/", views.alerts, name="alerts"),
    path("inbox/", views.inbox, name="inbox"),
    path("alerts/<int:alert_id>/acknowledge/", views.alert_acknowledge, name="alert-acknowledge"),
    path("alerts/<int:alert_id>/silence/", views.alert_silence, name="alert-silence"),
]
