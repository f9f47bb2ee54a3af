"""Load benchmark of the rater API: gunicorn + PostgreSQL on loopback, bounded in rounds and seconds.

(a) closed loop: N raters fetch (`GET /api/v1/rater/next`) and submit (`POST .../rating`) with no pause
    for a fixed number of rounds; prints ratings/s and p50/p95 of fetch and submit.
(b) open loop: ratings arrive at a steady rate (default 50/s) whatever the latency; prints p50/p95.
Then it checks integrity in the database (every acknowledged submission stored exactly once, no rater
given a task twice, no task over its k ratings, counters equal to rows) and exits 1 if any check fails.

It creates and drops its own database (default `evalhub_bench`); it never touches another one.

`--baseline REF` measures the code of a git ref (e.g. `main`) in the same run, before the working
tree's code: the ref is exported with `git archive` into a temporary folder (no worktree, nothing in
.git changes), and each code runs its own migrations, data set, server and load in a subprocess of this
script (`--code DIR`), so both meet the same machine minutes later. The table it prints ends with the
working tree's rate as a ratio of the baseline's, and the load averages seen around each run.

    .venv/bin/python bench/rating_load.py                     # the working tree only
    .venv/bin/python bench/rating_load.py --baseline main     # old and new in the same run
    .venv/bin/python bench/rating_load.py --raters 10 --rounds 3 --open-seconds 2 --rate 10   # smoke
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent  # where the code under test lives, unless --code says

from pgdb import recreate_database  # noqa: E402  (bench/ is on sys.path: the script's folder)
from procs import stop_group  # noqa: E402

LABEL_STUDIO_RATINGS_PER_S = 8.1  # ENVIRONMENT.md: Label Studio 1.23.2, same closed loop, gunicorn 4 workers
# Targets (issue #15): closed loop at least this many ratings/s and, measured in the same run, at least
# this share of the baseline code's rate; open loop p95 of both calls under this many ms.
CLOSED_LOOP_MIN_PER_S = 100.0
CLOSED_LOOP_MIN_OF_BASELINE = 0.5
OPEN_LOOP_MAX_P95_MS = 50.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--raters", type=int, default=100)
    p.add_argument("--rounds", type=int, default=30, help="closed loop: ratings per rater")
    p.add_argument("--max-seconds", type=float, default=60.0, help="closed loop: stop after this long")
    p.add_argument("--rate", type=float, default=50.0, help="open loop: ratings per second")
    p.add_argument("--open-seconds", type=float, default=20.0)
    p.add_argument("--overlap", type=int, default=3, help="k: ratings per task")
    # Measured best on the 2-core box (bench/RESULTS.md): one gthread worker per core, 4 threads each;
    # gthread keeps connections alive, sync workers pay a TCP connect per request.
    p.add_argument("--workers", type=int, default=0, help="gunicorn workers (0: one per core)")
    p.add_argument("--worker-class", default="gthread")
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--port", type=int, default=0, help="loopback port (0: a free one)")
    p.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="server URL, no database")
    p.add_argument("--db", default="evalhub_bench")
    p.add_argument("--keep-db", action="store_true")
    p.add_argument("--baseline", metavar="REF", help="also measure this git ref's code, first, in this run")
    p.add_argument("--repeat", type=int, default=1, help="with --baseline: measure both this many times")
    p.add_argument("--code", type=Path, default=None, help=argparse.SUPPRESS)  # the code under test
    p.add_argument("--json", type=Path, default=None, help="write the figures to this file")
    p.add_argument(
        "--tuned",
        action="store_true",
        help="experiment: serve with psycopg server-side binding (a setting evalhub/settings.py does not"
        " set today), to show what it would gain (cached_db sessions, tried here before, made no"
        " difference then and now take the rater API off its lean path, which checks the session row)",
    )
    return p.parse_args(argv)


# --- database and server --------------------------------------------------------------------------


def server_env(args: argparse.Namespace, *, code: Path = REPO, tuned: bool = False) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": f"{args.pg}/{args.db}",
            "DATABASE_CONN_MAX_AGE": "600",
            "DEBUG": "false",
            "SECRET_KEY": env.get("BENCH_SECRET_KEY") or secrets.token_urlsafe(40),
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_SSL_REDIRECT": "false",
            "LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "evalhub.settings",
            "PYTHONPATH": str(code),
        }
    )
    if tuned:
        folder = Path(tempfile.mkdtemp(prefix="evalhub-bench-settings-"))
        (folder / "bench_tuned_settings.py").write_text(
            "from evalhub.settings import *  # noqa: F403\n"
            'DATABASES["default"].setdefault("OPTIONS", {}).update({"server_side_binding": True})  # noqa: F405\n'
        )
        env["PYTHONPATH"] = f"{folder}:{code}"
        env["DJANGO_SETTINGS_MODULE"] = "bench_tuned_settings"
    return env


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_gunicorn(args: argparse.Namespace, env: dict[str, str]) -> subprocess.Popen[bytes]:
    workers = args.workers or (os.cpu_count() or 1)
    cmd = [
        str(Path(sys.executable).parent / "gunicorn"),
        "evalhub.wsgi:application",
        "--bind",
        f"127.0.0.1:{args.port}",
        "--workers",
        str(workers),
        "--worker-class",
        args.worker_class,
        "--threads",
        str(args.threads),
        "--backlog",
        "2048",
        "--log-level",
        "warning",
        "--keep-alive",
        "30",
    ]
    proc = subprocess.Popen(cmd, cwd=env["PYTHONPATH"].rsplit(":", 1)[-1], env=env, start_new_session=True)
    import urllib.request

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn exited with {proc.returncode} (is port {args.port} taken?)")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{args.port}/healthz", timeout=1) as r:
                if r.status == 200:
                    print(f"gunicorn up: {workers} {args.worker_class} workers x {args.threads} threads")
                    return proc
        except OSError:
            time.sleep(0.2)
    stop(proc)
    raise SystemExit("gunicorn did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    stop_group(proc, timeout=15)


# --- data -------------------------------------------------------------------------------------------


@dataclass
class Setup:
    study_public_id: str
    sessions: list[tuple[int, str, str]]  # (user id, session key, csrf secret)
    tasks: int


def build_data(args: argparse.Namespace) -> Setup:
    """Migrate, then create a project, a run with a baseline and a candidate, a study and raters
    with sessions (logged in without password hashing, as a login would leave them)."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.management import call_command

    from annotation.models import Consent
    from annotation.services import study_create_from_run, terms_digest
    from evalhub.accounts.models import Membership, Project, Role
    from evalhub.catalog.models import Adapter, BaseModel
    from evalhub.runs.models import AdapterRole, Output, Run, RunAdapter
    from evalhub.suites.models import Case, Suite, SuiteVersion

    call_command("migrate", verbosity=0)
    ratings_needed = args.raters * args.rounds + int(args.rate * args.open_seconds * 1.2) + args.raters
    n_cases = ratings_needed // args.overlap + args.raters + 50
    project = Project.objects.create(name="Bench", slug="bench")
    base = BaseModel.objects.create(
        project=project, name="base", folder="/bench/base", weights_hash="0" * 64, tokenizer="/bench/base"
    )
    adapters = [
        Adapter.objects.create(
            project=project,
            base_model=base,
            name=name,
            version="1",
            folder=f"/bench/{name}",
            weights_hash=str(i) * 64,
            peft_type="LORA",
            rank=8,
            alpha=16,
        )
        for i, name in enumerate(("baseline", "candidate"))
    ]
    suite = Suite.objects.create(project=project, name="bench")
    version = SuiteVersion.objects.create(suite=suite, number=1, content_hash="c" * 64)
    body = "The quarter's revenue rose four percent while operating margin held at 21 percent. " * 8
    cases = Case.objects.bulk_create(
        [
            Case(
                version=version,
                key=f"c{i}",
                position=i,
                input=f"Transcript {i}. {body}",
                tags=["finance"],
                content_hash=f"{i:064d}",
            )
            for i in range(n_cases)
        ],
        batch_size=1000,
    )
    run = Run.objects.create(
        project=project,
        name="bench run",
        suite_version=version,
        base_model=base,
        config_hash="d" * 64,
        status="completed",
    )
    for adapter, role in zip(adapters, (AdapterRole.BASELINE, AdapterRole.CANDIDATE), strict=True):
        RunAdapter.objects.create(run=run, adapter=adapter, role=role)
    Output.objects.bulk_create(
        [
            Output(
                run=run,
                adapter=adapter,
                case=case,
                text=f"Summary by system {j} of case {case.position}: {body[:300]}",
                finish_reason="stop",
                backend="hf",
                config_hash="d" * 64,
                cache_key=f"{j}-{case.pk}",
            )
            for case in cases
            for j, adapter in enumerate(adapters)
        ],
        batch_size=1000,
    )
    study = study_create_from_run(
        run=run, name="bench", overlap=args.overlap, lease_seconds=600, terms="Bench.", seed=1
    )
    user_model = get_user_model()
    users = []
    for i in range(args.raters):
        user = user_model(username=f"bench-rater-{i}")
        user.set_unusable_password()
        users.append(user)
    users = user_model.objects.bulk_create(users)
    Membership.objects.bulk_create([Membership(user=u, project=project, role=Role.RATER) for u in users])
    Consent.objects.bulk_create(
        [Consent(study=study, rater=u, terms_sha256=terms_digest(study.terms)) for u in users]
    )
    sessions = []
    for user in users:
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        sessions.append((user.pk, session.session_key or "", secrets.token_hex(16)))
    return Setup(study_public_id=study.public_id, sessions=sessions, tasks=study.tasks.count())


# --- load --------------------------------------------------------------------------------------------


@dataclass
class Tally:
    fetch_ms: list[float] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    stored: list[tuple[int, str]] = field(default_factory=list)  # (user id, task id) answered 201
    fetched: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[str] = field(default_factory=Counter)
    empty: int = 0


RATING = {
    "scores": {
        "factual_accuracy": {"A": 4, "B": 3},
        "completeness": {"A": 4, "B": 4},
        "conciseness": {"A": 3, "B": 5},
    },
    "preference": "A",
    "hallucination": {"A": {"flagged": False}, "B": {"flagged": True, "spans": [{"start": 0, "end": 7}]}},
    "rationale": "A is more precise.",
    "time_on_task_ms": 20000,
}


class Connection:
    """One keep-alive HTTP/1.1 connection over asyncio streams: a browser tab's worth of requests.

    The load generator shares the 2 cores with the server, so its CPU counts against the figure: this
    hand-written client costs a fraction of aiohttp's per request (it sends a fixed request and reads
    a Content-Length body, which is all the rater API answers; anything else is an error)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, headers: str, body: bytes = b"") -> tuple[int, bytes]:
        reused = self.writer is not None
        try:
            return await self._request(method, path, headers, body)
        except (asyncio.IncompleteReadError, ConnectionResetError):
            if not reused:
                raise
            # The server closed a keep-alive connection left idle past its timeout (a rater who
            # finished the closed loop early) before reading the request: open a new one, as a
            # browser does.
            await self.close()
            self.reader = self.writer = None
            return await self._request(method, path, headers, body)

    async def _request(self, method: str, path: str, headers: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n{headers}"
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        raw = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 60)
        lines = raw.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = None
        for line in lines[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length is None:
            raise RuntimeError(f"{method} {path}: response without Content-Length")
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()


class Rater:
    def __init__(self, base: str, study: str, user_id: int, session_key: str, csrf: str) -> None:
        host, _, port = base.removeprefix("http://").partition(":")
        self.user_id = user_id
        self.next_path = f"/api/v1/rater/next?study={study}"
        self.headers = f"Cookie: sessionid={session_key}; csrftoken={csrf}\r\nX-CSRFToken: {csrf}\r\n"
        self.connection = Connection(host, int(port))
        self.body = json.dumps(RATING).encode()
        self.busy = False

    async def close(self) -> None:
        await self.connection.close()

    async def rate_once(self, tally: Tally) -> bool:
        t0 = time.perf_counter()
        status, raw = await self.connection.request("GET", self.next_path, self.headers)
        t1 = time.perf_counter()
        body = json.loads(raw)
        if status != 200:
            tally.errors[f"next {status} {body.get('error', {}).get('code')}"] += 1
            return False
        tally.fetch_ms.append((t1 - t0) * 1000)
        task = body["task"]
        if task is None:
            tally.empty += 1
            return False
        tally.fetched[self.user_id].append(task["public_id"])
        path = f"/api/v1/rater/tasks/{task['public_id']}/rating"
        status, _ = await self.connection.request("POST", path, self.headers, self.body)
        t2 = time.perf_counter()
        if status == 201:
            tally.submit_ms.append((t2 - t1) * 1000)
            tally.stored.append((self.user_id, task["public_id"]))
            return True
        tally.errors[f"rating {status}"] += 1
        return False


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def closed_loop(raters: list[Rater], rounds: int, max_seconds: float) -> tuple[Tally, float]:
    tally = Tally()
    deadline = time.perf_counter() + max_seconds

    async def loop(rater: Rater) -> None:
        for _ in range(rounds):
            if time.perf_counter() > deadline:
                return
            await rater.rate_once(tally)

    start = time.perf_counter()
    await asyncio.gather(*(loop(r) for r in raters))
    return tally, time.perf_counter() - start


async def open_loop(raters: list[Rater], rate: float, seconds: float) -> tuple[Tally, float, int]:
    """Start one rating (fetch + submit) every 1/rate seconds on an absolute schedule, by a free rater."""
    tally = Tally()
    pending: set[asyncio.Task[Any]] = set()
    dropped = 0
    n = int(rate * seconds)
    start = time.perf_counter()
    turn = 0

    async def one(rater: Rater) -> None:
        try:
            await rater.rate_once(tally)
        finally:
            rater.busy = False

    for i in range(n):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        for _ in range(len(raters)):
            rater = raters[turn % len(raters)]
            turn += 1
            if not rater.busy:
                break
        else:
            dropped += 1
            continue
        rater.busy = True
        job = asyncio.create_task(one(rater))
        pending.add(job)
        job.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    return tally, time.perf_counter() - start, dropped


async def healthz_baseline(base: str, seconds: float, concurrency: int) -> float:
    """The cheapest request the same server answers (one SELECT 1): the ceiling for any endpoint."""
    import aiohttp

    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            async with session.get(f"{base}/healthz") as r:
                await r.read()
            done += 1

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        start = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return done / (time.perf_counter() - start)


# --- integrity ------------------------------------------------------------------------------------------


def integrity(tallies: list[Tally]) -> list[str]:
    from django.db.models import Count, F

    from annotation.models import Assignment, Rating, Task

    problems = []
    acknowledged = [pair for t in tallies for pair in t.stored]
    if not acknowledged:
        problems.append("nothing was rated")
    if len(acknowledged) != len(set(acknowledged)):
        problems.append("the server acknowledged the same (rater, task) twice")
    stored = set(Rating.objects.values_list("rater_id", "task__public_id"))
    if Rating.objects.count() != len(stored):
        problems.append("a (rater, task) pair has two ratings")
    missing = set(acknowledged) - stored
    if missing:
        problems.append(f"{len(missing)} acknowledged ratings are not stored")
    extra = stored - set(acknowledged)
    if extra:
        problems.append(f"{len(extra)} stored ratings were never acknowledged to the client")
    fetched: dict[int, list[str]] = defaultdict(list)
    for t in tallies:
        for user, tasks in t.fetched.items():
            fetched[user].extend(tasks)
    twice = sum(len(tasks) - len(set(tasks)) for tasks in fetched.values())
    if twice:
        problems.append(f"raters were given a task they had already had {twice} times")
    if Assignment.objects.values("task", "rater").annotate(n=Count("pk")).filter(n__gt=1).exists():
        problems.append("two assignments for one (task, rater)")
    over = Task.objects.filter(is_gold=False, rating_count__gt=F("required_ratings")).count()
    over_rows = (
        Rating.objects.filter(task__is_gold=False)
        .values("task")
        .annotate(n=Count("pk"))
        .filter(n__gt=F("task__required_ratings"))
        .count()
    )
    if over or over_rows:
        problems.append(f"{max(over, over_rows)} tasks have more than k ratings")
    drift = Task.objects.annotate(n=Count("ratings")).exclude(rating_count=F("n")).count()
    if drift:
        problems.append(f"{drift} tasks' rating_count differs from their stored ratings")
    return problems


# --- main -------------------------------------------------------------------------------------------------


def report(name: str, tally: Tally, seconds: float) -> dict[str, float]:
    rated = len(tally.stored)
    row = {
        "ratings": rated,
        "seconds": seconds,
        "per_s": rated / seconds if seconds else 0.0,
        "fetch_p50": pct(tally.fetch_ms, 50),
        "fetch_p95": pct(tally.fetch_ms, 95),
        "submit_p50": pct(tally.submit_ms, 50),
        "submit_p95": pct(tally.submit_ms, 95),
    }
    print(
        f"{name}: {rated} ratings in {seconds:.1f} s = {row['per_s']:.1f} ratings/s | "
        f"fetch p50 {row['fetch_p50']:.1f} ms p95 {row['fetch_p95']:.1f} ms | "
        f"submit p50 {row['submit_p50']:.1f} ms p95 {row['submit_p95']:.1f} ms"
        + (f" | errors {dict(tally.errors)}" if tally.errors else "")
        + (f" | empty queue {tally.empty}" if tally.empty else "")
    )
    return row


class CpuMeter:
    """CPU seconds spent by the server side of this bench (gunicorn workers, their PostgreSQL backends)
    and by the load generator: a figure that does not depend on what else the machine is running."""

    def __init__(self, args: argparse.Namespace, server_pid: int) -> None:
        self.args, self.server_pid = args, server_pid

    @staticmethod
    def _cpu(pid: int) -> float:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _workers(self) -> list[int]:
        out = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == self.server_pid:
                    out.append(int(stat.parent.name))
            except (OSError, ValueError, IndexError):
                continue
        return out

    def _backends(self) -> list[int]:
        import psycopg

        with psycopg.connect(f"{self.args.pg}/postgres", autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [self.args.db],
            ).fetchall()
        return [row[0] for row in rows]

    def snapshot(self) -> dict[str, dict[int, float]]:
        import resource

        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "server": {pid: self._cpu(pid) for pid in self._workers()},
            "database": {pid: self._cpu(pid) for pid in self._backends()},
            "client": {0: usage.ru_utime + usage.ru_stime},
        }

    @staticmethod
    def spent(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]) -> dict[str, float]:
        return {
            part: sum(cpu - before[part].get(pid, 0.0) for pid, cpu in after[part].items()) for part in after
        }


def _load_average() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


async def run_load(
    args: argparse.Namespace, setup: Setup, server_pid: int
) -> tuple[list[Tally], dict[str, Any]]:
    base = f"http://127.0.0.1:{args.port}"
    meter = CpuMeter(args, server_pid)
    healthz = await healthz_baseline(base, 3.0, args.raters)
    print(
        f"baseline in this run: /healthz (one SELECT 1) {healthz:.0f} requests/s at concurrency {args.raters}"
    )
    raters = [Rater(base, setup.study_public_id, *s) for s in setup.sessions]
    load_before = _load_average()
    try:
        before = meter.snapshot()
        closed, closed_s = await closed_loop(raters, args.rounds, args.max_seconds)
        cpu = CpuMeter.spent(before, meter.snapshot())
        a = report(f"(a) closed loop, {args.raters} raters x {args.rounds} rounds", closed, closed_s)
        n = max(1, len(closed.stored))
        per = {part: 1000 * seconds / n for part, seconds in cpu.items()}
        cores = os.cpu_count() or 1
        print(
            f"    CPU per rating: server {per['server']:.2f} ms + PostgreSQL {per['database']:.2f} ms"
            f" + load generator {per['client']:.2f} ms = {sum(per.values()):.2f} ms;"
            f" {cores} idle cores would give about {1000 * cores / sum(per.values()):.0f} ratings/s"
            f" ({1000 * cores / (per['server'] + per['database']):.0f} with the load generator elsewhere)"
        )
        load_after = _load_average()
        print(
            f"    load average (1 min, all users) before / after the closed loop: {load_before} / {load_after}"
        )
        print(
            f"    vs Label Studio 1.23.2 ({LABEL_STUDIO_RATINGS_PER_S}/s, ENVIRONMENT.md): "
            f"{a['per_s'] / LABEL_STUDIO_RATINGS_PER_S:.0f}x; one rating = 2 requests, "
            f"so {2 * a['per_s'] / healthz:.2f} of the /healthz ceiling"
        )
        opened, open_s, dropped = await open_loop(raters, args.rate, args.open_seconds)
        b = report(f"(b) open loop, {args.rate:g} ratings/s for {args.open_seconds:g} s", opened, open_s)
        if dropped:
            print(f"    {dropped} arrivals found every rater busy and were dropped")
    finally:
        await asyncio.gather(*(r.close() for r in raters))
    figures = {
        "closed": a,
        "open": b,
        "cpu_ms": per,
        "healthz_per_s": healthz,
        "load_before": load_before,
        "load_after": load_after,
    }
    return [closed, opened], figures


def targets_met(figures: dict[str, Any], baseline: dict[str, Any] | None = None) -> bool:
    closed, opened = figures["closed"], figures["open"]
    ok = closed["per_s"] >= CLOSED_LOOP_MIN_PER_S
    ok = ok and opened["fetch_p95"] < OPEN_LOOP_MAX_P95_MS and opened["submit_p95"] < OPEN_LOOP_MAX_P95_MS
    if baseline is not None:
        ok = ok and closed["per_s"] >= CLOSED_LOOP_MIN_OF_BASELINE * baseline["closed"]["per_s"]
    return ok


def measure(args: argparse.Namespace) -> tuple[int, dict[str, Any] | None]:
    """Set up, serve and load the code in args.code (this process imports that code's Django)."""
    code = args.code or REPO
    args.port = args.port or free_port()
    os.environ.setdefault(
        "BENCH_SECRET_KEY", secrets.token_urlsafe(40)
    )  # one key: sessions made here, read there
    os.environ.update(server_env(args, code=code))
    sys.path.insert(0, str(code))
    recreate_database(args.pg, args.db)
    proc = None
    try:
        import django

        import evalhub

        print(f"code under test: {Path(evalhub.__file__).parent.parent}")
        django.setup()
        t0 = time.perf_counter()
        setup = build_data(args)
        print(
            f"setup: {setup.tasks} tasks, {len(setup.sessions)} raters, k={args.overlap} ({time.perf_counter() - t0:.1f} s)"
        )
        from django.db import connections

        connections.close_all()
        proc = start_gunicorn(args, server_env(args, code=code, tuned=args.tuned))
        if args.tuned:
            print("served with the --tuned settings: server-side binding")
        tallies, figures = asyncio.run(run_load(args, setup, proc.pid))
        problems = integrity(tallies)
        stored = sum(len(t.stored) for t in tallies)
        figures["integrity"] = problems
        if args.json is not None:
            args.json.write_text(json.dumps(figures))
        if problems:
            print("INTEGRITY FAILED: " + "; ".join(problems))
            return 1, figures
        print(
            f"integrity: {stored} acknowledged ratings stored exactly once; no rater got a task twice; no task over k"
        )
        return 0, figures
    finally:
        if proc is not None:
            stop(proc)
        if not args.keep_db:
            from django.db import connections

            connections.close_all()
            recreate_database(args.pg, args.db, drop_only=True)


def _export(ref: str, folder: Path) -> str:
    """The tree of `ref` in `folder` (git archive: no worktree, nothing written to .git); its commit."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", ref], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout.strip()
    archive = subprocess.Popen(["git", "archive", commit], cwd=REPO, stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(folder)], stdin=archive.stdout, check=True)
    if archive.wait() != 0:
        raise SystemExit(f"git archive {ref} failed")
    return commit


def _measure_in_subprocess(argv: list[str], code: Path, out: Path, db: str) -> dict[str, Any] | None:
    cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--code", str(code), "--json", str(out)]
    cmd += ["--db", db]
    # Run from the code's folder: Celery's loader puts the working directory first on sys.path.
    result = subprocess.run(cmd, cwd=code, check=False)
    if not out.exists():
        return None
    figures: dict[str, Any] = json.loads(out.read_text())
    figures["returncode"] = result.returncode
    return figures


def _without_baseline(argv: list[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--baseline":
            skip = True
        elif not arg.startswith("--baseline="):
            out.append(arg)
    return out


def _row(name: str, f: dict[str, Any]) -> str:
    c, o = f["closed"], f["open"]
    return (
        f"| {name} | {c['per_s']:.1f} | {c['fetch_p95']:.0f} / {c['submit_p95']:.0f} | "
        f"{o['fetch_p95']:.1f} / {o['submit_p95']:.1f} | {sum(f['cpu_ms'].values()):.2f} | "
        f"{f['load_before']} / {f['load_after']} |"
    )


def compare(args: argparse.Namespace, argv: list[str]) -> int:
    """The baseline ref's code, then the working tree's, each in its own subprocess and database,
    `--repeat` times in turn (the machine's other load drifts: pairs measured minutes apart compare)."""
    own = _without_baseline(argv)
    pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []
    with tempfile.TemporaryDirectory(prefix="evalhub-bench-baseline-") as tmp:
        folder = Path(tmp) / "code"
        folder.mkdir()
        commit = _export(args.baseline, folder)
        for turn in range(args.repeat):
            print(f"=== baseline: {args.baseline} ({commit}), exported to {folder} (turn {turn + 1})")
            old = _measure_in_subprocess(own, folder, Path(tmp) / f"old{turn}.json", f"{args.db}_old")
            print(f"=== working tree (turn {turn + 1})")
            new = _measure_in_subprocess(own, REPO, Path(tmp) / f"new{turn}.json", args.db)
            if old is None or new is None:
                print("a run produced no figures; see its output above")
                return 1
            pairs.append((old, new))
    print(
        "\n| code | closed ratings/s | closed p95 fetch/submit ms | open p95 fetch/submit ms"
        " | CPU ms/rating | load before/after |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for old, new in pairs:
        print(_row(f"{args.baseline} ({commit})", old))
        print(_row("working tree", new))
    rate = [new["closed"]["per_s"] / old["closed"]["per_s"] for old, new in pairs]
    cpu = [sum(old["cpu_ms"].values()) / sum(new["cpu_ms"].values()) for old, new in pairs]
    print(f"\nworking tree / baseline, closed-loop rate per turn: {', '.join(f'{r:.2f}x' for r in rate)}")
    print(f"baseline / working tree, CPU per rating per turn: {', '.join(f'{r:.2f}x' for r in cpu)}")
    ok = all(targets_met(new, old) and new["returncode"] == 0 for old, new in pairs)
    print(
        f"targets: closed >= {CLOSED_LOOP_MIN_PER_S:g}/s and >= {CLOSED_LOOP_MIN_OF_BASELINE:g}x the baseline,"
        f" open p95 < {OPEN_LOOP_MAX_P95_MS:g} ms, integrity: {'met' if ok else 'NOT met'} in every turn"
    )
    return 0 if all(o["returncode"] == 0 and n["returncode"] == 0 for o, n in pairs) else 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.baseline:
        return compare(args, argv)
    status, figures = measure(args)
    if figures is not None and args.code is None:
        print(
            f"targets (closed >= {CLOSED_LOOP_MIN_PER_S:g}/s, open p95 < {OPEN_LOOP_MAX_P95_MS:g} ms;"
            f" run with --baseline REF for the same-run ratio): {'met' if targets_met(figures) else 'NOT met'}"
        )
    return status


if __name__ == "__main__":
    raise SystemExit(main())
