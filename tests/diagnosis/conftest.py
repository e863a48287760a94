from tests.alerts.conftest import receiver, webhook  # noqa: F401 (shared fixtures)
