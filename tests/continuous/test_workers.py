"""Unattended on real processes: an adapter folder dropped in the watched folder is registered by beat, and
with no further call the recipe runs on the `gpu` worker, is scored by both workers, its verdict is frozen
and the signed webhook arrives. Production's set-up: PostgreSQL, Redis, a cpu and a gpu worker, and beat
with django-celery-beat's database scheduler."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from evalhub.catalog.services import adapter_register, base_model_register
from evalhub.continuous.models import Delivery, Evaluation, EvaluationState
from evalhub.continuous.recipes import recipe_save
from tests.conftest import FIXTURE_MODELS
from tests.continuous.conftest import payload
from tests.runs.test_scoring_worker import Cluster, suite  # noqa: F401 (fixture)
from tests.runs.test_worker_kill import database_url, wait_for, wait_for_other_sessions_to_close

REPO = Path(__file__).resolve().parents[2]
BROKER = "redis://127.0.0.1:6379/9"
PREFIX = f"evalhub-continuous-test-{uuid.uuid4().hex[:12]}:"


def flush_broker() -> None:
    import redis

    client = redis.Redis.from_url(BROKER)
    for key in client.scan_iter(match=f"{PREFIX}*"):
        client.delete(key)


def start_beat(env: dict[str, str], logs: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "celery"), "-A", "evalhub", "beat", "--loglevel", "INFO"],
        cwd=REPO, env=env, stdout=(logs / "beat.log").open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.timeout(600)
@pytest.mark.django_db(transaction=True)
def test_an_adapter_dropped_in_the_watched_folder_reaches_a_verdict_and_a_signed_webhook_unattended(
    require_postgres: None, project: Any, suite: Any, auto_policy: Any, notified: Any, endpoint: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    base = base_model_register(project=project, name="base", folder=str(FIXTURE_MODELS / "base"))
    adapter_register(project=project, base_model=base, folder=str(FIXTURE_MODELS / "summariser-v1"))
    recipe_save(project=project, suites=["scoring"], baseline_rule="named", baseline="summariser@1",
                gate_policy=auto_policy, generation_config={"max_new_tokens": 24})
    watch = tmp_path / "watch"
    drop = watch / project.slug / "base" / "summariser-v2"
    shutil.copytree(FIXTURE_MODELS / "summariser-v2", drop)
    for path in [drop, *drop.rglob("*")]:
        os.utime(path, (1, 1))  # copied long ago: settled

    env = {key: value for key, value in os.environ.items() if not key.startswith(("CELERY_", "EVALHUB_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="tests.runs.worker_settings",
        DATABASE_URL=database_url(),
        CELERY_BROKER_URL=BROKER,
        EVALHUB_TEST_BROKER_PREFIX=PREFIX,
        EVALHUB_SCORE_ON_COMPLETE="true",
        EVALHUB_DEVICE="cpu",
        EVALHUB_DATA_DIR=str(tmp_path / "data"),
        EVALHUB_WATCH_FOLDER=str(watch),
        EVALHUB_WATCH_INTERVAL_SECONDS="2",
        EVALHUB_WATCH_SETTLE_SECONDS="1",
        EVALHUB_WEBHOOK_ALLOW_PRIVATE="true",
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
    )
    flush_broker()
    cluster = Cluster(env, tmp_path)
    beat = None
    try:
        cluster.start("cpu")
        cluster.start("gpu")
        beat = start_beat(env, tmp_path)
        wait_for(lambda: Evaluation.objects.filter(state__in=[EvaluationState.VERDICT, EvaluationState.FAILED]).exists(),
                 450, "the recipe's verdict", tmp_path)
        evaluation = Evaluation.objects.select_related("adapter", "verdict", "baseline").get()
        assert evaluation.state == EvaluationState.VERDICT, evaluation.error
        assert evaluation.adapter.label == "summariser@2" and evaluation.baseline.label == "summariser@1"
        assert evaluation.adapter.folder == str(drop.resolve())
        wait_for(lambda: not Delivery.objects.filter(status="pending").exists(), 60, "the deliveries", tmp_path)
        hooks = [r for r in endpoint.received if payload(r)["event"] == "verdict.ready"]
        assert len(hooks) == 1
        headers, body = hooks[0]["headers"], hooks[0]["body"]
        mac = hmac.new(notified.secret.encode(), headers["X-Evalhub-Timestamp"].encode() + b"." + body, hashlib.sha256)
        assert headers["X-Evalhub-Signature"] == "sha256=" + mac.hexdigest()
        assert payload(hooks[0])["data"]["verdict"] == evaluation.verdict.public_id
        assert set(Delivery.objects.values_list("status", flat=True)) == {"sent"}
    finally:
        if beat is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(beat.pid, signal.SIGTERM)
            beat.wait(timeout=20)
        cluster.stop()
        flush_broker()
        wait_for_other_sessions_to_close()
