"""ROUGE scores stored before the plain names meant rouge-score's own tokenizer move to their own names.

Version 1 of `rouge1`, `rouge2`, `rougeL` and `rougeLsum` used evalhub's Unicode-aware tokenizer, which
differs from rouge-score's on non-ASCII text (and scored 1.0 when both texts are empty). Version 2 of
those names is rouge-score 0.1.2's default scorer exactly. So that no report or trend compares the
two definitions under one name, the version-1 rows become `rouge1_unicode`, ... (the metrics that
keep that definition), with those metrics' version and config hash; `score_run RUN_ID` then computes
the plain names for old runs. Rows with a non-default version-1 config are left as they are (the
scoring never wrote any). Reversible: the reverse renames them back.
"""

import hashlib
import json

from django.db import migrations

PLAIN = ("rouge1", "rouge2", "rougeL", "rougeLsum")
OLD_CONFIG = {"use_stemmer": False, "split_summaries": False, "tokenizer": "unicode"}
NEW_CONFIG = {"use_stemmer": False, "split_summaries": False}


def _config_hash(name: str, version: str, config: dict) -> str:
    # metrics.registry.Metric.config_hash as it was when this migration was written (frozen here).
    payload = {"name": name, "version": version, "config": config}
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _move(apps, schema_editor, *, forward: bool) -> None:
    MetricScore = apps.get_model("runs", "MetricScore")
    for name in PLAIN:
        old = (name, "1", _config_hash(name, "1", OLD_CONFIG))
        new = (f"{name}_unicode", "1", _config_hash(f"{name}_unicode", "1", NEW_CONFIG))
        source, target = (old, new) if forward else (new, old)
        MetricScore.objects.filter(metric=source[0], metric_version=source[1], config_hash=source[2]).update(
            metric=target[0], metric_version=target[1], config_hash=target[2]
        )


def forwards(apps, schema_editor) -> None:
    _move(apps, schema_editor, forward=True)


def backwards(apps, schema_editor) -> None:
    _move(apps, schema_editor, forward=False)


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0004_watchdog_lease_state"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
