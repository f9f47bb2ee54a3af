"""A lease remembers the API token it was taken with (revoking the token ends it), and the PL/pgSQL
copy of the queue (0004) goes: annotation.queue is the only implementation, on every database.
Reversible: going back re-creates the function from 0004."""

import importlib

import django.db.models.deletion
from django.db import migrations, models

_0004 = importlib.import_module("annotation.migrations.0004_lease_take_function")


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_apitoken_expires_at_required"),
        ("annotation", "0004_lease_take_function"),
    ]

    operations = [
        migrations.AddField(
            model_name="assignment",
            name="token",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="accounts.apitoken",
            ),
        ),
        migrations.RunPython(_0004.drop, _0004.create, elidable=False),
    ]
