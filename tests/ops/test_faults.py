"""Faults that heal themselves, on services of the test's own (tests/own_services.py), never the shared ones.

Each test starts the production set-up (tools/prod_check.Stack: gunicorn, a gpu and a cpu worker, beat with
a short watchdog interval) on its own PostgreSQL and Redis, and strikes the same fault three times in one
pass: while a run generates, while the run is scored, and while raters submit through the API (a client
that retries on 503 as Retry-After says, and on a dropped connection). The faults:

- a worker killed with kill -9 (the gpu worker mid-run, both workers mid-scoring, a gunicorn worker
  mid-rating), a new worker started in its place as a supervisor would;
- PostgreSQL stopped for 20 s, then started again;
- Redis restarted, without persistence (every message in it lost) and with it (appendonly).

Each phase must end unattended (the watchdog sends lost chunks again) and leave every output, every
score and every acknowledged rating stored exactly once.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.own_services import OwnPostgres, OwnRedis, binaries_available, free_port, own_postgres, own_redis
from tools.prod_check import Api, CheckFailed, Stack, manage, small_suite, stack_env

pytestmark = [pytest.mark.slow, pytest.mark.redis]

CASES = 8
ADAPTERS = ("summariser-v1", "summariser-v2")
LEASE_SECONDS = 20  # longer than the slowest batch on a loaded 2-core machine
WATCHDOG_SECONDS = 2
POSTGRES_DOWN_SECONDS = 20
PHASE_TIMEOUT = 300  # generous: CI machines run other tests beside these
RATERS = 3
RATING = {
    "scores": {"factual_accuracy": {"A": 4, "B": 3}, "completeness": {"A": 4, "B": 4}, "conciseness": {"A": 3, "B": 5}},
    "preference": "A",
    "hallucination": {"A": {"flagged": False}, "B": {"flagged": False}},
    "rationale": "A keeps every figure of the note.",
    "time_on_task_ms": 20000,
}

SETUP = """
import json
from pathlib import Path
from evalhub.accounts.models import Role
from evalhub.accounts.services import membership_set, project_create, token_create, user_create
from evalhub.catalog.services import adapter_register, base_model_register
from evalhub.suites.services.imports import suite_import
project = project_create(name="Faults")
lead = user_create(username="lead", password="correct-horse-battery")
membership_set(project=project, user=lead, role=Role.LEAD)
_, token = token_create(user=lead, project=project, name="faults", lifetime_days=1)
suite_import(project=project, name="summaries", path=Path("{suite}"), actor=lead)
base = base_model_register(project=project, name="base", folder="{models}/base")
for name in {adapters!r}:
    adapter_register(project=project, base_model=base, folder="{models}/" + name, name=name, version="1")
raters = []
for i in range({raters}):
    user = user_create(username=f"rater{{i}}", password="correct-horse-battery")
    membership_set(project=project, user=user, role=Role.RATER)
    raters.append(token_create(user=user, project=project, name="rating", lifetime_days=1)[1])
print(json.dumps({{"project": project.slug, "token": token, "raters": raters}}))
"""

STUDY = """
import json
from django.contrib.auth import get_user_model
from annotation.services import consent_accept, study_create_from_run
from evalhub.runs.models import Run
study = study_create_from_run(run=Run.objects.get(pk={run}), name="faults", overlap=2, seed=1)
for user in get_user_model().objects.filter(username__startswith="rater"):
    consent_accept(study=study, rater=user)
print(json.dumps({{"study": study.public_id, "tasks": study.tasks.count()}}))
"""


@dataclass
class Services:
    postgres: OwnPostgres
    redis: OwnRedis
    template: str


@pytest.fixture(scope="module")
def own_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """One PostgreSQL of the module's own with a migrated template database (each test copies it)."""
    if not binaries_available("initdb", "pg_ctl", "redis-server"):
        pytest.skip("initdb, pg_ctl and redis-server are needed to run services of the test's own")
    folder = tmp_path_factory.mktemp("faults")
    with own_postgres() as postgres, own_redis(folder / "redis-setup") as redis:
        template = postgres.url.rsplit("/", 1)[0] + "/faults_template"
        # UTF-8 as a production database is (the cluster's default, under LC_ALL=C, is SQL_ASCII).
        sql(postgres, "CREATE DATABASE faults_template ENCODING 'UTF8' TEMPLATE template0", database="postgres")
        env = stack_env(database_url=template, broker_url=redis.url, prefix="", data=folder / "data")
        manage(env, "migrate", "--noinput", "-v0", timeout=600)
        yield Services(postgres=postgres, redis=redis, template=template)


def sql(postgres: OwnPostgres, query: str, *params: Any, database: str = "faults") -> list[tuple[Any, ...]]:
    import psycopg

    url = postgres.url.rsplit("/", 1)[0] + f"/{database}"
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        cursor = conn.execute(query, params)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def maybe(postgres: OwnPostgres, query: str, *params: Any) -> list[tuple[Any, ...]] | None:
    """The query's rows, or None while the database is away (a poll must survive the outage it waits out)."""
    import psycopg

    try:
        return sql(postgres, query, *params)
    except psycopg.OperationalError:
        return None


@dataclass
class Fault:
    """Strikes one kind of fault in a phase (run, scoring, rating) and returns once it is over."""

    kind: str
    postgres: OwnPostgres
    redis: OwnRedis
    stack: Stack
    worker_env: dict[str, str]
    struck: list[str] = field(default_factory=list)

    def strike(self, phase: str) -> None:
        trace(f"{self.kind} during {phase}")
        if self.kind == "kill-9":
            if phase == "rating":
                self._kill_a_gunicorn_worker()
            else:
                for name in ("gpu", "cpu") if phase == "scoring" else ("gpu",):
                    self.stack.kill(name, signal.SIGKILL)
                    start_worker(self.stack, name, self.worker_env)
        elif self.kind == "postgres":
            self.postgres.stop()
            time.sleep(POSTGRES_DOWN_SECONDS)  # the outage itself, not a wait for a result
            self.postgres.start()
        else:
            self.redis.stop()
            self.redis.start()
        self.struck.append(phase)

    def _kill_a_gunicorn_worker(self) -> None:
        import psutil

        master = psutil.Process(self.stack.services["gunicorn"].proc.pid)
        children = master.children()
        assert children, "gunicorn has no worker to kill"
        os.kill(children[0].pid, signal.SIGKILL)


def trace(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def start_worker(stack: Stack, name: str, env: dict[str, str]) -> None:
    stack.env, saved = env, stack.env
    try:
        stack.worker(name, name)
    finally:
        stack.env = saved


class Rater(threading.Thread):
    """A rater on the API: fetch, pause, submit; retries on 503 (Retry-After) and on a dropped connection."""

    def __init__(self, base: str, study: str, token: str, pause: float, stop_at: float) -> None:
        super().__init__(daemon=True)
        self.base, self.study, self.token, self.pause, self.stop_at = base, study, token, pause, stop_at
        self.acknowledged: list[str] = []
        self.attempted: set[str] = set()
        self.errors: list[str] = []
        self.retries = 0

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        while time.monotonic() < self.stop_at:
            request = urllib.request.Request(  # noqa: S310 (our own server on loopback)
                f"{self.base}{path}", method=method, data=None if body is None else json.dumps(body).encode(),
                headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                    return response.status, json.loads(response.read() or b"null")
            except urllib.error.HTTPError as error:
                if error.code != 503:
                    return error.code, json.loads(error.read() or b"null")
                self.retries += 1
                time.sleep(float(error.headers["Retry-After"]))
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                self.retries += 1  # a killed web worker drops its connection: try again
                time.sleep(0.5)
        raise TimeoutError(f"{method} {path} did not succeed in time")

    def run(self) -> None:
        try:
            while True:
                status, body = self.call("GET", f"/api/v1/rater/next?study={self.study}")
                assert status == 200, (status, body)
                if body["task"] is None:
                    return
                task = body["task"]["public_id"]
                time.sleep(self.pause)  # reading the outputs
                self.attempted.add(task)
                status, body = self.call("POST", f"/api/v1/rater/tasks/{task}/rating", RATING)
                if status in (200, 201):  # 200 already_stored: stored before the connection dropped
                    self.acknowledged.append(task)
                else:
                    self.errors.append(f"{status} {body}")
        except Exception as error:  # reported by the test
            self.errors.append(repr(error))


@pytest.fixture
def faulty(request: pytest.FixtureRequest, own_services: Services, tmp_path: Path) -> Iterator[tuple[Fault, dict[str, Any]]]:
    kind, appendonly = request.param
    postgres = own_services.postgres
    sql(postgres, "DROP DATABASE IF EXISTS faults WITH (FORCE)", database="postgres")
    sql(postgres, "CREATE DATABASE faults TEMPLATE faults_template", database="postgres")
    database_url = postgres.url.rsplit("/", 1)[0] + "/faults"
    with own_redis(tmp_path / "redis", appendonly=appendonly) as redis:
        common = dict(EVALHUB_CHUNK_LEASE_SECONDS=str(LEASE_SECONDS), EVALHUB_WATCHDOG_INTERVAL_SECONDS=str(WATCHDOG_SECONDS),
                      EVALHUB_RETRY_AFTER_SECONDS="2", EVALHUB_GENERATION_CHUNK_SIZE="2", CACHE_URL=redis.url,
                      CELERY_VISIBILITY_TIMEOUT="30", DATABASE_CONN_MAX_AGE="0")
        env = stack_env(database_url=database_url, broker_url=redis.url, prefix="", data=tmp_path / "data", **common)
        env["DEBUG"] = "true"  # no collectstatic needed; the rest is production
        worker_env = {**env, "DJANGO_SETTINGS_MODULE": "tests.ops.fault_settings", "EVALHUB_TEST_BATCH_DELAY": "1.0",
                      "EVALHUB_TEST_SCORE_DELAY": "8"}
        logs = tmp_path / "logs"
        logs.mkdir()
        stack = Stack(env=env, logs=logs)
        try:
            boot = json.loads(manage(env, "shell", "-c", SETUP.format(
                suite=small_suite(tmp_path, CASES), models=REPO / "fixtures" / "models", adapters=ADAPTERS,
                raters=RATERS)).strip().splitlines()[-1])
            for name in ("gpu", "cpu"):
                start_worker(stack, name, worker_env)
            stack.beat()
            port = free_port()
            stack.gunicorn(port)
            boot["base"] = f"http://127.0.0.1:{port}"
            yield Fault(kind=kind, postgres=postgres, redis=redis, stack=stack, worker_env=worker_env), boot
        except CheckFailed as failure:
            raise AssertionError(f"{failure}\n{stack.tails()}") from None
        finally:
            stack.stop()


def wait(stack: Stack, predicate: Callable[[], Any], what: str, timeout: float = PHASE_TIMEOUT) -> Any:
    try:
        return stack.wait(predicate, timeout, what, poll=0.2)
    except CheckFailed as failure:
        raise AssertionError(f"{failure}\n{stack.tails()}") from None


FAULTS = [
    pytest.param(("kill-9", False), id="worker-kill-9"),
    pytest.param(("postgres", False), id="postgres-down-20s"),
    pytest.param(("redis", False), id="redis-restart-no-persistence"),
    pytest.param(("redis", True), id="redis-restart-appendonly"),
]


@pytest.mark.timeout(1500)
@pytest.mark.parametrize("faulty", FAULTS, indirect=True)
def test_a_fault_during_a_run_its_scoring_and_its_rating_heals_and_stores_everything_once(
    faulty: tuple[Fault, dict[str, Any]],
) -> None:
    fault, boot = faulty
    stack, pg = fault.stack, fault.postgres
    api = Api(base=boot["base"], token=boot["token"], max_wait=PHASE_TIMEOUT)
    expected = len(ADAPTERS) * CASES

    # 1. A run: the fault strikes once some outputs are stored and some are not.
    run = wait(stack, lambda: _try(lambda: api.call("POST", "runs/", {
        "project": boot["project"], "suite": "summaries", "base_model": "base",
        "adapters": [f"{a}@1" for a in ADAPTERS[1:]], "baseline": f"{ADAPTERS[0]}@1",
        "generation_config": {"max_new_tokens": 16}})), "the run to start")["id"]
    outputs = "SELECT count(*) FROM runs_output WHERE run_id = %s"
    wait(stack, lambda: 2 <= (_count(pg, outputs, run) or 0) <= expected - 4, "outputs to be generated")
    fault.strike("run")
    started = time.monotonic()
    wait(stack, lambda: (maybe(pg, "SELECT status FROM runs_run WHERE id = %s", run) or [("",)])[0][0]
         in {"completed", "failed"}, "the run to end unattended")
    trace(f"run ended {time.monotonic() - started:.0f} s after the fault")
    status, error = sql(pg, "SELECT status, error FROM runs_run WHERE id = %s", run)[0]
    assert status == "completed", error
    keys = sql(pg, "SELECT adapter_id, case_id, sample FROM runs_output WHERE run_id = %s", run)
    assert len(keys) == len(set(keys)) == expected  # every output, once

    # 2. Its scoring (enqueued by the run's completion): the fault strikes while a kind is being scored.
    scoring = "SELECT kind, status FROM runs_runscoring WHERE run_id = %s"
    wait(stack, lambda: "running" in {s for _, s in (maybe(pg, scoring, run) or [])}, "scoring to be running")
    fault.strike("scoring")
    wait(stack, lambda: {s for _, s in (maybe(pg, scoring, run) or [("", "")])} <= {"done", "failed"},
         "the scoring to end unattended")
    assert dict(sql(pg, scoring, run)) == {"text": "done", "perplexity": "done"}
    scores = sql(pg, "SELECT output_id, adapter_id, case_id, metric, count(*) FROM runs_metricscore "
                     "WHERE run_id = %s GROUP BY 1, 2, 3, 4", run)
    assert scores and all(n == 1 for *_, n in scores)  # every score, once
    scored = {output for output, *_ in scores if output is not None}
    assert scored == {o for (o,) in sql(pg, "SELECT id FROM runs_output WHERE run_id = %s", run)}

    # 3. Rating: raters submit through the API while the fault strikes.
    study = json.loads(manage(stack.env, "shell", "-c", STUDY.format(run=run)).strip().splitlines()[-1])
    stop_at = time.monotonic() + PHASE_TIMEOUT
    raters = [Rater(boot["base"], study["study"], token, 0.4, stop_at) for token in boot["raters"]]
    for rater in raters:
        rater.start()
    wait(stack, lambda: sum(len(r.acknowledged) for r in raters) >= 3, "the first ratings")
    fault.strike("rating")
    for rater in raters:
        rater.join(timeout=max(1.0, stop_at - time.monotonic()))
    assert not any(r.is_alive() for r in raters), "raters did not finish in time"
    assert [e for r in raters for e in r.errors] == []
    stored = sql(pg, "SELECT r.rater_id, t.public_id, u.username FROM annotation_rating r JOIN annotation_task t "
                     "ON t.id = r.task_id JOIN auth_user u ON u.id = r.rater_id")
    pairs = [(username, task) for _, task, username in stored]
    assert len(pairs) == len(set(pairs))  # no rating twice
    acknowledged = {(f"rater{i}", task) for i, r in enumerate(raters) for task in r.acknowledged}
    attempted = {(f"rater{i}", task) for i, r in enumerate(raters) for task in r.attempted}
    assert acknowledged <= set(pairs) <= attempted  # every acknowledged rating stored; nothing unasked
    assert len(pairs) == study["tasks"] * 2  # every task got its two ratings
    assert fault.struck == ["run", "scoring", "rating"]
    trace(f"ratings: {len(pairs)} stored, {sum(r.retries for r in raters)} client retries")


def _count(pg: OwnPostgres, query: str, *params: Any) -> int | None:
    rows = maybe(pg, query, *params)
    return None if rows is None else int(rows[0][0])


def _try(call: Callable[[], Any]) -> Any:
    with contextlib.suppress(CheckFailed, OSError):
        return call()
    return None
