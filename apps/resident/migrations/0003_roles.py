from django.db import migrations

from apps.core.roles import sync_roles_migration


class Migration(migrations.Migration):
    """Give the built-in roles the resident models' permissions (viewers read them)."""

    dependencies = [("resident", "0002_sample_tables"), ("core", "0002_roles")]

    operations = [migrations.RunPython(sync_roles_migration, migrations.RunPython.noop)]
