from django.db import migrations

from apps.core.roles import sync_roles_migration


class Migration(migrations.Migration):
    """Every role may read the actions taken (view permissions); approving is the admin's."""

    dependencies = [("actions", "0001_initial"), ("core", "0002_roles")]

    operations = [migrations.RunPython(sync_roles_migration, migrations.RunPython.noop)]
