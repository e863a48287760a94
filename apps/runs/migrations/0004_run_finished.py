from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("runs", "0003_redispatch_after")]

    operations = [
        migrations.AddIndex(
            model_name="proberun",
            index=models.Index(
                condition=models.Q(("finished_at__isnull", False)),
                fields=["finished_at", "id"],
                name="run_finished",
            ),
        ),
    ]
