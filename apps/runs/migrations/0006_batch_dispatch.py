from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("runs", "0005_root_cause")]

    operations = [
        migrations.AddField(
            model_name="proberun",
            name="dispatch_attempts",
            field=models.PositiveSmallIntegerField(default=0, editable=False),
        ),
        migrations.AddIndex(
            model_name="proberun",
            index=models.Index(
                condition=models.Q(("state", "pending")), fields=["id"], name="run_pending"
            ),
        ),
    ]
