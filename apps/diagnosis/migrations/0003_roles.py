"""The operator role labels root causes (apps/core/roles.py): give it the new permissions."""

from django.db import migrations

from apps.core.roles import sync_roles_migration


class Migration(migrations.Migration):
    dependencies = [("diagnosis", "0002_shipped_rules"), ("core", "0002_roles")]

    operations = [migrations.RunPython(sync_roles_migration, migrations.RunPython.noop)]
