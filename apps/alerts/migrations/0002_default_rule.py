from django.db import migrations


def create_default_rule(apps, schema_editor):
    from apps.alerts.defaults import ensure_default_rule

    ensure_default_rule(apps.get_model("alerts", "AlertRule"))


class Migration(migrations.Migration):
    dependencies = [("alerts", "0001_initial")]

    operations = [migrations.RunPython(create_default_rule, migrations.RunPython.noop)]
