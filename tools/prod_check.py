"""`make prod-check`: the README's production set-up, started on this machine and driven through the API.

It starts gunicorn (DEBUG off, collected static files), a `cpu` worker, a `gpu` worker (EVALHUB_DEVICE=cpu
here) and beat against the machine's PostgreSQL, in a database of its own (created, then dropped), and its
Redis, under a broker key prefix of its own (other checkouts on the machine share that Redis). Then, as a
CI pipeline would: it registers the fixture base model and two fixture adapters through the API, starts a
run, waits for it and for its scoring, reads the report and freezes a verdict. Anything off ends it with
exit 1, the reason, and the tail of each service's log. Where PostgreSQL or Redis is absent (a laptop) it
says so and exits 0 without checking anything; `--require-services` makes that a failure (CI).

Stack is also what the fault tests (tests/ops/test_faults.py) start their services with.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
FIXTURE_MODELS = REPO / "fixtures" / "models"
FIXTURE_SUITE = REPO / "fixtures" / "suites" / "summaries.jsonl"


class CheckFailed(Exception):
    """Something in the production set-up is off; the message says what."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def trace(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class Service:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path


@dataclass
class Stack:
    """Processes of a production set-up (each in its own process group, logging to `logs`)."""

    env: dict[str, str]
    logs: Path
    services: dict[str, Service] = field(default_factory=dict)

    def start(self, name: str, argv: list[str]) -> Service:
        log = self.logs / f"{name}.log"
        proc = subprocess.Popen(argv, cwd=REPO, env=self.env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.services[name] = Service(name=name, proc=proc, log=log)
        return self.services[name]

    def gunicorn(self, port: int, *, workers: int = 2) -> Service:
        service = self.start("gunicorn", [str(BIN / "gunicorn"), "evalhub.wsgi", "-b", f"127.0.0.1:{port}",
                                          "-w", str(workers), "--timeout", "120"])
        self.wait(lambda: port_open("127.0.0.1", port), 120, f"gunicorn to listen on port {port}")
        return service

    def worker(self, name: str, queues: str) -> Service:
        return self.start(name, [str(BIN / "celery"), "-A", "evalhub", "worker", "-Q", queues, "--concurrency", "1",
                                 "--pool", "prefork", "-n", f"{name}@%h", "--loglevel", "INFO",
                                 "--without-gossip", "--without-mingle"])

    def beat(self) -> Service:
        schedule = self.logs / "celerybeat-schedule"
        return self.start("beat", [str(BIN / "celery"), "-A", "evalhub", "beat", "--loglevel", "INFO",
                                   "-s", str(schedule), "--pidfile", ""])

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal a service's whole process group (a worker's pool children go too) and reap it."""
        service = self.services.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(service.proc.pid, sig)
        try:
            service.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(service.proc.pid, signal.SIGKILL)
            service.proc.wait(timeout=30)

    def stop(self) -> None:
        for name in list(self.services):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.services[name].proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for name in list(self.services):
            try:
                self.services[name].proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                self.services.pop(name)
            except subprocess.TimeoutExpired:
                self.kill(name)

    def check_alive(self) -> None:
        for service in self.services.values():
            if service.proc.poll() is not None:
                raise CheckFailed(f"{service.name} exited with status {service.proc.returncode}")

    def tails(self, chars: int = 3000) -> str:
        return "\n".join(
            f"--- {log.name} (last {chars} characters)\n{log.read_text(errors='replace')[-chars:]}"
            for log in sorted(self.logs.glob("*.log"))
        )

    def wait(self, predicate: Callable[[], Any], timeout: float, what: str, *, poll: float = 0.25) -> Any:
        """Poll `predicate` until it returns something true; fail if a service dies or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            value = predicate()
            if value:
                return value
            time.sleep(poll)
        raise CheckFailed(f"timed out after {timeout:.0f} s waiting for {what}")


@dataclass
class Api:
    """A small JSON client of /api/v1/ with a bearer token; retries on 503 as its Retry-After says."""

    base: str
    token: str
    max_wait: float = 120.0

    def call(self, method: str, path: str, body: Any = None, *, expect: tuple[int, ...] = (200, 201, 202)) -> Any:
        data = None if body is None else json.dumps(body).encode()
        deadline = time.monotonic() + self.max_wait
        while True:
            request = urllib.request.Request(  # noqa: S310 (our own server, http on loopback)
                f"{self.base}/api/v1/{path}", data=data, method=method,
                headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                    status, text = response.status, response.read().decode()
            except urllib.error.HTTPError as error:
                status, text = error.code, error.read().decode()
                if status == 503 and time.monotonic() < deadline:
                    time.sleep(float(error.headers.get("Retry-After") or 1))
                    continue
            if status not in expect:
                raise CheckFailed(f"{method} /api/v1/{path} answered {status}: {text[:2000]}")
            return json.loads(text) if text else None


def manage(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if done.returncode != 0:
        raise CheckFailed(f"manage.py {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return done.stdout


BOOTSTRAP = """
import json, sys
from pathlib import Path
from evalhub.accounts.models import Role
from evalhub.accounts.services import membership_set, project_create, token_create, user_create
from evalhub.suites.services.imports import suite_import
project = project_create(name="Prod Check")
lead = user_create(username="prod-check-lead", password="prod-check-" + "{secret}")
membership_set(project=project, user=lead, role=Role.LEAD)
_, token = token_create(user=lead, project=project, name="prod-check", lifetime_days=1)
suite_import(project=project, name="summaries", path=Path("{suite}"), actor=lead)
print(json.dumps({{"project": project.slug, "token": token}}))
"""


def small_suite(folder: Path, cases: int) -> Path:
    """The fixture suite's first `cases` rows: enough to exercise every step, quick on a CPU."""
    path = folder / "summaries.jsonl"
    lines = FIXTURE_SUITE.read_text().splitlines()[:cases]
    path.write_text("\n".join(lines) + "\n")
    return path


def stack_env(*, database_url: str, broker_url: str, prefix: str, data: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "EVALHUB_", "DATABASE_URL"))}
    env.update(
        DJANGO_SETTINGS_MODULE="evalhub.settings",
        DEBUG="false",
        SECRET_KEY=uuid.uuid4().hex * 2,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="false",
        DATABASE_URL=database_url,
        CELERY_BROKER_URL=broker_url,
        CELERY_BROKER_KEY_PREFIX=prefix,
        EVALHUB_DATA_DIR=str(data),
        EVALHUB_DEVICE="cpu",
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=str(REPO),
    )
    env.update(extra)
    return env


@contextlib.contextmanager
def own_database(server: str, name: str) -> Iterator[str]:
    """A database of this check's own on the machine's PostgreSQL, dropped afterwards."""
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server}/{name}"
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def flush_prefix(broker_url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(broker_url)
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)


def pipeline(stack: Stack, api: Api, project: str, *, timeout: float) -> dict[str, Any]:
    """What a CI pipeline does: register, run, wait for outputs and scores, read the report, freeze."""
    api.call("POST", "base-models/", {"project": project, "name": "base", "folder": str(FIXTURE_MODELS / "base")})
    for name in ("summariser-v1", "summariser-v2"):
        adapter = api.call("POST", "adapters/", {"project": project, "base_model": "base",
                                                 "folder": str(FIXTURE_MODELS / name), "name": name, "version": "1"})
        trace(f"registered adapter {adapter.get('label', name)} through the API")
    run = api.call("POST", "runs/", {"project": project, "suite": "summaries", "base_model": "base",
                                     "adapters": ["summariser-v2@1"],
                                     "baseline": "summariser-v1@1", "generation_config": {"max_new_tokens": 24}})
    run_id = run["id"]
    trace(f"run {run_id} started")

    def finished() -> dict[str, Any] | None:
        progress = api.call("GET", f"runs/{run_id}/progress/")
        return progress if progress["finished"] else None

    progress = stack.wait(finished, timeout, f"run {run_id} to finish", poll=1)
    if progress["status"] != "completed":
        detail = api.call("GET", f"runs/{run_id}/")
        raise CheckFailed(f"run {run_id} ended {progress['status']}: {detail.get('error', '')}")
    trace(f"run {run_id} completed: {progress['done']}/{progress['total']} outputs")

    def scored() -> list[dict[str, Any]] | None:
        scoring = api.call("GET", f"runs/{run_id}/")["scoring"]
        failed = [s for s in scoring if s["status"] == "failed"]
        if failed:
            raise CheckFailed(f"scoring of run {run_id} failed: {failed}")
        return scoring if scoring and all(s["status"] == "done" for s in scoring) else None

    scoring = stack.wait(scored, timeout, f"the scoring of run {run_id}", poll=1)
    trace("scored: " + ", ".join(f"{s['kind']} {s['status']}" for s in scoring))
    report = api.call("GET", f"runs/{run_id}/report")
    if not report:
        raise CheckFailed(f"run {run_id}'s report is empty")
    verdict = api.call("POST", "verdicts", {"run": run_id, "candidate": "summariser-v2@1"})
    if verdict.get("decision") not in {"GO", "NO-GO", "INCONCLUSIVE"} or not verdict.get("public_id"):
        raise CheckFailed(f"the verdict has no decision: {verdict}")
    again = api.call("GET", f"verdicts/{verdict['public_id']}?reopen=1")
    if again.get("decision") != verdict["decision"]:
        raise CheckFailed(f"the frozen verdict reads back differently: {again}")
    return {"run": run_id, "decision": verdict["decision"], "verdict": verdict["public_id"]}


def readiness(base: str) -> dict[str, Any]:
    """/readyz's answer (its body on 200 and 503 alike); {"ok": False, "error": ...} when there is none."""
    try:
        with urllib.request.urlopen(f"{base}/readyz", timeout=10) as response:  # noqa: S310
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as error:
        return dict(json.loads(error.read() or b"{}"))
    except (urllib.error.URLError, OSError, ValueError) as error:
        return {"ok": False, "error": repr(error)}


def check(args: argparse.Namespace) -> int:
    logs = Path(tempfile.mkdtemp(prefix="evalhub-prod-check-"))
    prefix = f"evalhub-prod-check-{uuid.uuid4().hex[:12]}:"
    database = f"evalhub_prod_check_{uuid.uuid4().hex[:8]}"
    stack: Stack | None = None
    started = time.monotonic()
    try:
        with own_database(args.pg, database) as database_url:
            env = stack_env(database_url=database_url, broker_url=args.redis, prefix=prefix, data=logs / "data",
                            EVALHUB_WATCHDOG_INTERVAL_SECONDS="10")
            stack = Stack(env=env, logs=logs)
            trace(f"database {database}, broker {args.redis} under {prefix}, logs in {logs}")
            manage(env, "migrate", "--noinput", "-v0")
            manage(env, "collectstatic", "--noinput", "-v0")
            manage(env, "check", "--deploy", "--fail-level", "ERROR")
            trace("migrated, static files collected, deploy checks clean")
            boot = json.loads(manage(env, "shell", "-c", BOOTSTRAP.format(
                secret=uuid.uuid4().hex, suite=small_suite(logs, args.cases))).strip().splitlines()[-1])
            port = free_port()
            stack.worker("gpu", "gpu")
            stack.worker("cpu", "cpu")
            stack.beat()
            stack.gunicorn(port)
            base = f"http://127.0.0.1:{port}"
            last: dict[str, Any] = {}

            def is_ready() -> bool:
                last.update(readiness(base))
                return bool(last.get("ok"))

            try:
                stack.wait(is_ready, args.timeout, "/readyz to report the database, the broker and a worker on each queue")
            except CheckFailed as failure:
                raise CheckFailed(f"{failure}; /readyz said {json.dumps(last)}") from None
            status = last
            trace(f"/readyz: ready, queues {sorted(status.get('queues', {}))}")
            outcome = pipeline(stack, Api(base=base, token=boot["token"]), boot["project"], timeout=args.timeout)
            trace(f"verdict {outcome['verdict']} on run {outcome['run']}: {outcome['decision']}")
            stack.check_alive()
            stack.stop()
    except CheckFailed as failure:
        print(f"\nprod-check FAILED: {failure}\n", file=sys.stderr)
        if stack is not None:
            print(stack.tails(), file=sys.stderr)
            stack.stop()
        return 1
    finally:
        if stack is not None:
            stack.stop()
        with contextlib.suppress(Exception):
            flush_prefix(args.redis, prefix)
    print(f"prod-check passed in {time.monotonic() - started:.0f} s: gunicorn, cpu and gpu workers and beat on "
          f"PostgreSQL and Redis; adapter registered, run, scored and judged through the API.")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pg", default=os.environ.get("PROD_CHECK_PG", "postgres://postgres@127.0.0.1:5432"),
                   help="PostgreSQL server URL (no database): the check creates and drops its own database")
    p.add_argument("--redis", default=os.environ.get("PROD_CHECK_REDIS", "redis://127.0.0.1:6379/14"))
    p.add_argument("--cases", type=int, default=8, help="cases of the fixture suite to run")
    p.add_argument("--timeout", type=float, default=300, help="seconds allowed for each wait")
    p.add_argument("--require-services", action="store_true",
                   help="fail instead of skipping where PostgreSQL or Redis is absent")
    args = p.parse_args(argv)
    missing = [name for name, url in (("PostgreSQL", args.pg), ("Redis", args.redis)) if not _reachable(url)]
    if missing:
        message = f"prod-check skipped: {' and '.join(missing)} not reachable ({args.pg}, {args.redis})"
        print(message, file=sys.stderr)
        return 1 if args.require_services else 0
    return check(args)


def _reachable(url: str) -> bool:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return port_open(parts.hostname or "127.0.0.1", parts.port or (5432 if parts.scheme.startswith("postgres") else 6379))


if __name__ == "__main__":
    sys.exit(main())
