"""Alerts admin: autodiscovery imports this package, whose modules register each model."""

from apps.alerts.admin import alerts, channels, rules, silences

__all__ = ["alerts", "channels", "rules", "silences"]
