"""/healthz and /readyz: liveness needs nothing; readiness reports the database, the broker, the workers on
each queue and their device, against a Redis (and a worker) of the test's own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import Client

from tests.conftest import REPO
from tests.own_services import OwnRedis, binaries_available, own_redis

needs_redis = pytest.mark.skipif(not binaries_available("redis-server"), reason="redis-server is not installed")


@pytest.fixture
def redis_broker(settings, tmp_path: Path) -> Iterator[OwnRedis]:
    with own_redis(tmp_path / "redis") as redis:
        settings.CELERY_BROKER_URL = redis.url
        settings.CELERY_TASK_ALWAYS_EAGER = False
        yield redis


def test_liveness_answers_without_touching_any_service():
    response = Client().get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_the_embedded_mode_is_ready_with_its_database_and_no_broker():
    response = Client().get("/readyz")
    body = response.json()
    assert response.status_code == 200 and body["status"] == "ready"
    assert body["database"]["ok"] and body["broker"] == {"ok": True, "mode": "in process (no broker)"}


@needs_redis
@pytest.mark.django_db
def test_a_queue_with_no_worker_is_not_ready(redis_broker):
    response = Client().get("/readyz")
    body = response.json()
    assert response.status_code == 503 and body["status"] == "not ready"
    assert body["broker"]["ok"] and body["database"]["ok"]
    assert body["queues"] == {"cpu": {"ok": False, "workers": []}, "gpu": {"ok": False, "workers": []}}


@needs_redis
@pytest.mark.django_db
def test_a_stopped_broker_is_not_ready_and_says_so(redis_broker):
    redis_broker.stop()
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["broker"]["ok"] is False and "Error" in response.json()["broker"]["error"]


@needs_redis
@pytest.mark.slow
@pytest.mark.django_db
def test_a_worker_on_each_queue_makes_it_ready_and_reports_its_device(redis_broker, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELERY_")}
    env.update(DJANGO_SETTINGS_MODULE="evalhub.settings", CELERY_BROKER_URL=redis_broker.url,
               DATABASE_URL=f"sqlite:///{tmp_path / 'worker.sqlite3'}", EVALHUB_DEVICE="cpu",
               PYTHONPATH=str(REPO))
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "evalhub", "worker", "-Q", "cpu,gpu", "-n", "both@%h",
         "--concurrency", "1", "--pool", "solo", "--without-gossip", "--without-mingle"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            response = Client().get("/readyz")
            if response.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(1)
        body = response.json()
        assert response.status_code == 200, body
        (name,) = body["workers"]
        assert name.startswith("both@")
        assert body["queues"] == {"cpu": {"ok": True, "workers": [name]}, "gpu": {"ok": True, "workers": [name]}}
        device = body["workers"][name]
        assert device["ok"] and device["gpu_queue"] and device["configured"] == "cpu"
        assert device["cuda_available"] is False
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
