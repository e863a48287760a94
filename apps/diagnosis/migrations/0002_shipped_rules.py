"""The shipped rule tree (apps/diagnosis/defaults.py); operators edit it in the admin."""

from django.db import migrations


def load(apps, schema_editor):  # type: ignore[no-untyped-def]
    from apps.diagnosis.services import rules_load_shipped

    rules_load_shipped(model=apps.get_model("diagnosis", "DiagnosisRule"))


class Migration(migrations.Migration):
    dependencies = [("diagnosis", "0001_initial")]

    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
