"""/metrics: Prometheus text from the stored rows, behind a bearer token that is off by default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone

from evalhub.runs.models import Output, Run, RunChunk, RunStatus
from evalhub.runs.services import run_create
from tests.own_services import binaries_available, own_redis

pytestmark = pytest.mark.django_db


def value(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.MULTILINE)
    assert match, f"{name} not in metrics"
    return float(match.group(1))


TOKEN = "s3cret"


def scrape(token: str = TOKEN) -> str:
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    return response.content.decode()


def test_metrics_are_off_without_a_token_and_refuse_a_wrong_one(settings):
    settings.EVALHUB_METRICS_TOKEN = ""
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer anything").status_code == 404
    settings.EVALHUB_METRICS_TOKEN = "s3cret"
    assert Client().get("/metrics").status_code == 401
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401


def test_metrics_count_runs_failures_lease_expiries_outputs_and_speed(settings, project, tiny, suite_version):
    settings.EVALHUB_METRICS_TOKEN = "s3cret"
    run = run_create(project=project, suite_version=suite_version, base_model=tiny["base"],
                     adapters=[tiny["alpha"]], generation_config={"max_new_tokens": 4})
    case = suite_version.cases.first()
    Output.objects.create(run=run, adapter=tiny["alpha"], case=case, text="x", output_tokens=30,
                          finish_reason="length", backend="hf", config_hash="h", cache_key="k")
    Run.objects.filter(pk=run.pk).update(status=RunStatus.FAILED, finished_at=timezone.now(),
                                         output_tokens=30, generation_seconds=2.0)
    RunChunk.objects.create(run=run, index=0, case_ids=[case.pk], size=1, lease_expiries=2)

    text = scrape()
    assert value(text, 'evalhub_runs{status="failed"}') == 1
    assert value(text, 'evalhub_runs{status="running"}') == 0
    assert value(text, "evalhub_run_failures_total") == 1
    assert value(text, "evalhub_chunk_lease_expiries_total") == 2
    assert value(text, "evalhub_outputs_last_hour") == 1
    assert value(text, "evalhub_ratings_last_hour") == 0
    assert value(text, "evalhub_generation_tokens_per_second") == 15.0


@pytest.mark.skipif(not binaries_available("redis-server"), reason="redis-server is not installed")
def test_queue_depth_per_queue_comes_from_the_broker(settings, tmp_path: Path):
    import redis

    settings.EVALHUB_METRICS_TOKEN = "s3cret"
    with own_redis(tmp_path / "redis") as server:
        settings.CELERY_BROKER_URL = server.url
        settings.CELERY_TASK_ALWAYS_EAGER = False
        redis.Redis.from_url(server.url).rpush("gpu", "m1", "m2", "m3")
        text = scrape()
    assert value(text, 'evalhub_queue_depth{queue="gpu"}') == 3
    assert value(text, 'evalhub_queue_depth{queue="cpu"}') == 0
