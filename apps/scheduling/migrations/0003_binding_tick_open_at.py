from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("scheduling", "0002_binding_upgrade_silence_minutes")]

    operations = [
        migrations.AddField(
            model_name="binding",
            name="tick_open_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
    ]
