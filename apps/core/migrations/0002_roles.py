from django.db import migrations

from apps.core.roles import sync_roles_migration


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("clusters", "0001_initial"),
        ("catalog", "0001_initial"),
        ("scheduling", "0001_initial"),
        ("runs", "0002_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(sync_roles_migration, migrations.RunPython.noop)]
