"""Tokens made before expiry existed get one default lifetime from the day of the upgrade, not from
their creation: a CI job keeps working until its owners have had a full lifetime to replace it.
Reversible: going back leaves the column to be dropped by 0002's reversal."""

from datetime import timedelta

from django.conf import settings
from django.db import migrations
from django.utils import timezone


def backfill(apps, schema_editor):
    token_model = apps.get_model("accounts", "ApiToken")
    until = timezone.now() + timedelta(days=settings.EVALHUB_TOKEN_LIFETIME_DAYS)
    token_model.objects.filter(expires_at__isnull=True).update(expires_at=until)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_apitoken_expires_at")]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True)]
