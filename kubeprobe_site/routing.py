"""Websocket routes. Dashboards add their consumers here."""

from django.urls import URLPattern, path

from apps.dashboard.consumers import LiveConsumer

websocket_urlpatterns: list[URLPattern] = [
    path("ws/live/", LiveConsumer.as_asgi(), name="live"),
]
