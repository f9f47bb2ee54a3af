"""Running one read of an upload in a fresh Python process under hard memory and CPU limits.

A parser bomb the other checks miss must cost a bounded amount, reported as a clear problem, and
never a worker killed by the kernel, a request timeout or a 500. The child is a new interpreter
(not a fork: a forked child could reuse memory its parent had freed, beyond any limit we set), so
`resource.setrlimit` (RLIMIT_AS, RLIMIT_CPU), applied once Django and the readers are imported,
bounds exactly what the file costs. It behaves the same in a Celery worker, a web process and the
embedded mode, and never caps the process that asked. The child gets the caller's EVALHUB_*
settings and MEDIA_ROOT, never touches the database, and returns its result through a file.

Run as `python -m evalhub.suites.sandbox` by `run_limited`; it reads its job from stdin.
"""

from __future__ import annotations

import logging
import os
import pickle
import resource
import signal
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class SandboxLimits:
    """What one read may use beyond a fresh process that has imported the readers."""

    memory_bytes: int
    cpu_seconds: int

    @property
    def wall_seconds(self) -> float:
        # Start-up, plus a child that waits instead of computing (it should never).
        return 3.0 * self.cpu_seconds + 30.0


def sandbox_limits() -> SandboxLimits:
    """The configured limits, read at call time."""
    from django.conf import settings

    return SandboxLimits(
        memory_bytes=int(getattr(settings, "EVALHUB_SUITE_SCAN_MEMORY_MB", 512)) * 1024 * 1024,
        cpu_seconds=int(getattr(settings, "EVALHUB_SUITE_SCAN_CPU_SECONDS", 120)),
    )


def sandbox_available() -> bool:
    """Where rlimits exist (POSIX); elsewhere reads run in process with the other caps only."""
    return os.name == "posix"


class LimitExceeded(Exception):
    """The child ran out of its memory or CPU allowance; the message says which, for the user."""


@dataclass
class Outcome:
    """The child's result and what the read cost (peak memory above the start, CPU seconds)."""

    value: Any
    peak_extra_bytes: int
    cpu_seconds: float


def _memory_message(limits: SandboxLimits) -> str:
    return (
        f"This file needs more than {limits.memory_bytes / 2**20:,.0f} MB of memory to read (the "
        "limit). Split it, or save it as CSV or JSON Lines, which are read row by row."
    )


def _cpu_message(limits: SandboxLimits) -> str:
    return (
        f"This file needs more than {limits.cpu_seconds:,} seconds of computing to read (the limit). "
        "Split it, or save it as CSV or JSON Lines."
    )


def _job_settings() -> dict[str, Any]:
    from django.conf import settings

    names = [n for n in dir(settings) if n.startswith("EVALHUB_") or n == "MEDIA_ROOT"]
    return {name: getattr(settings, name) for name in names}


def run_limited(function: str, kwargs: dict[str, Any], *, limits: SandboxLimits) -> Outcome:
    """Call the function at dotted path `function` with `kwargs` in a fresh limited process.

    Raises LimitExceeded when the child runs out of memory or CPU (or dies); RuntimeError when it
    fails on an error of ours (its traceback is logged, never shown). `kwargs` and the result are
    pickled: both are our own values, never the user's file.
    """
    from django.conf import settings

    with tempfile.TemporaryDirectory(prefix="evalhub-sandbox-") as scratch:
        result_path = Path(scratch) / "result.pickle"
        job = {
            "settings": _job_settings(),
            "function": function,
            "kwargs": kwargs,
            "limits": limits,
            "result": str(result_path),
        }
        env = {
            **os.environ,
            # Under override_settings SETTINGS_MODULE is None; the environment still names it.
            "DJANGO_SETTINGS_MODULE": settings.SETTINGS_MODULE or os.environ["DJANGO_SETTINGS_MODULE"],
            "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        try:
            done = subprocess.run(
                [sys.executable, "-m", "evalhub.suites.sandbox"],
                input=pickle.dumps(job),
                capture_output=True,
                timeout=limits.wall_seconds,
                env=env,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise LimitExceeded(_cpu_message(limits)) from exc
        if done.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
            raise LimitExceeded(_cpu_message(limits))
        if not result_path.is_file():
            log.error("a sandboxed read died (exit %s): %s", done.returncode, done.stderr[-4000:])
            if done.returncode < 0 or b"MemoryError" in done.stderr:
                raise LimitExceeded(_memory_message(limits))
            raise RuntimeError("Reading the file failed on an unexpected error (logged on the server).")
        kind, value = pickle.loads(result_path.read_bytes())  # noqa: S301 - written by our child
    if kind == "memory":
        raise LimitExceeded(_memory_message(limits))
    if kind == "error":
        log.error("a sandboxed read failed:\n%s", value)
        raise RuntimeError("Reading the file failed on an unexpected error (logged on the server).")
    return value  # an Outcome, written by _child


# --- the child -----------------------------------------------------------------------------------


def _statm(field: int) -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[field]) * os.sysconf("SC_PAGE_SIZE")


def _peak_resident() -> int:
    """The process's peak resident memory (VmHWM: unlike ru_maxrss, it starts afresh at exec)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _apply(limits: SandboxLimits) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    used = resource.getrusage(resource.RUSAGE_SELF)
    cpu = int(used.ru_utime + used.ru_stime) + 1 + limits.cpu_seconds
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    try:
        budget = _statm(0) + limits.memory_bytes
        resource.setrlimit(resource.RLIMIT_AS, (budget, budget))
    except (OSError, ValueError):  # no /proc (macOS): the CPU limit and the other caps still hold
        log.warning("no address-space limit for this read")


def _child() -> None:
    import django

    django.setup()  # before unpickling the job, which holds our own classes
    job = pickle.loads(sys.stdin.buffer.read())  # noqa: S301 - written by run_limited
    from django.conf import settings
    from django.utils.module_loading import import_string

    for name, value in job["settings"].items():
        setattr(settings, name, value)
    function = import_string(job["function"])
    import openpyxl  # noqa: F401 - imported before the limits, which are for the file alone

    try:
        started = _statm(1)
    except OSError:
        started = 0
    before = resource.getrusage(resource.RUSAGE_SELF)
    _apply(job["limits"])
    try:
        value = function(**job["kwargs"])
        used = resource.getrusage(resource.RUSAGE_SELF)
        peak = max(_peak_resident() - started, 0)
        cpu = used.ru_utime + used.ru_stime - before.ru_utime - before.ru_stime
        result: tuple[str, Any] = ("done", Outcome(value, peak, cpu))
    except MemoryError:
        result = ("memory", None)
    except Exception:  # a bug, not the file
        result = ("error", traceback.format_exc())
    Path(job["result"]).write_bytes(pickle.dumps(result))


if __name__ == "__main__":
    # Through the package module, so what the child pickles names evalhub.suites.sandbox, not __main__.
    from evalhub.suites.sandbox import _child as child

    child()
