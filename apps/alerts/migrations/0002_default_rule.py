from django.db import migrations


def create_default_rule(apps, schema_editor):
    AlertRule = apps.get_model("alerts", "AlertRule")
    AlertRule.objects.get_or_create(
        name="default",
        defaults={
            "description": (
                "Applies where no more specific rule does: two failed runs in a row fire, "
                "one success resolves, and a probe with no result for 3 schedule periods "
                "is an alert too."
            ),
            "consecutive_failures": 2,
            "stale_factor": 3.0,
            "resolve_after_successes": 1,
            "severity": "warning",
            "flap_threshold": 6,
        },
    )


class Migration(migrations.Migration):
    dependencies = [("alerts", "0001_initial")]

    operations = [migrations.RunPython(create_default_rule, migrations.RunPython.noop)]
