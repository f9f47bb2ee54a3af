"""Every token has an expiry date from now on."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("accounts", "0003_apitoken_expires_at_backfill")]

    operations = [
        migrations.AlterField(
            model_name="apitoken",
            name="expires_at",
            field=models.DateTimeField(help_text="Refused from this moment on; chosen at creation."),
        ),
    ]
