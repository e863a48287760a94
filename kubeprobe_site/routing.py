"""Websocket routes. Dashboards add their consumers here."""

from django.urls import URLPattern

websocket_urlpatterns: list[URLPattern] = []
