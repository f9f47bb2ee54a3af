"""API tokens get an expiry date (nullable here; filled in by 0003, required from 0004)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="expires_at",
            field=models.DateTimeField(
                null=True, help_text="Refused from this moment on; chosen at creation."
            ),
        ),
    ]
