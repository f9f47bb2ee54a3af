"""Migration runs/0005: version-1 ROUGE rows (Unicode tokenizer) move to the *_unicode names, and back."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from metrics.registry import get_metric

BEFORE = [("runs", "0004_watchdog_lease_state")]
AFTER = [("runs", "0005_rouge_unicode_names")]
V1_HASH = "4e160ce3fc79f6b1"  # rouge1, version 1, {"use_stemmer": False, "split_summaries": False, "tokenizer": "unicode"}


def _migrate(target):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(target)
    return executor.loader.project_state(target).apps


@pytest.fixture
def latest_schema_after():
    """Leave the database at every app's newest migration, whatever this test migrated to (migrating
    runs back to 0004 also unapplies the later runs migrations and those of other apps that need them)."""
    yield
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_version_1_rouge_rows_move_to_unicode_names_and_back(latest_schema_after, project):
    from tests import factories as fx

    version = fx.SuiteVersionFactory(suite=fx.SuiteFactory(project=project))
    base = fx.BaseModelFactory(project=project)
    run = fx.RunFactory(project=project, suite_version=version, base_model=base)
    output = fx.OutputFactory(
        run=run,
        adapter=fx.AdapterFactory(project=project, base_model=base),
        case=fx.CaseFactory(version=version),
    )
    # A row as the version-1 code stored it, and one the current code stores.
    old = fx.MetricScoreFactory(
        output=output, metric="rouge1", metric_version="1", config_hash=V1_HASH, value=0.5
    )
    current = fx.MetricScoreFactory(
        run=old.run, adapter=old.adapter, case=old.case, output=old.output, metric="rouge1",
        metric_version="2", config_hash=get_metric("rouge1").config_hash(), value=0.25,
    )  # fmt: skip
    _migrate(BEFORE)
    apps = _migrate(AFTER)
    MetricScore = apps.get_model("runs", "MetricScore")
    moved = MetricScore.objects.get(pk=old.pk)
    unicode_metric = get_metric("rouge1_unicode")
    assert (moved.metric, moved.metric_version, moved.config_hash, moved.value) == (
        "rouge1_unicode",
        unicode_metric.version,
        unicode_metric.config_hash(),
        0.5,
    )
    assert MetricScore.objects.get(pk=current.pk).metric == "rouge1"
    apps = _migrate(BEFORE)
    back = apps.get_model("runs", "MetricScore").objects.get(pk=old.pk)
    assert (back.metric, back.metric_version, back.config_hash) == ("rouge1", "1", V1_HASH)
