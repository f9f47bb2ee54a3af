"""Reading an upload in a forked child process under hard memory and CPU limits.

A parser bomb the other checks miss must cost a bounded amount, reported as a clear problem, and
never a worker killed by the kernel, a request timeout or a 500. The limits (`resource.setrlimit`,
RLIMIT_AS and RLIMIT_CPU) are set in a fresh child forked for the one read, so they hold the same
way in a Celery worker, in a web process and in the embedded mode where tasks run in process, and
never cap the process that asked. The child inherits everything already loaded (settings, the PII
analyzer) and never touches the database: progress and the result travel back over a pipe.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import resource
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Generic, TypeVar

from django.conf import settings

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class SandboxLimits:
    """What one read may use beyond what the process already holds when it forks."""

    memory_bytes: int
    cpu_seconds: int

    @property
    def wall_seconds(self) -> float:
        # A child that waits instead of computing (it should never) is stopped as well.
        return 3.0 * self.cpu_seconds + 10.0


def sandbox_limits() -> SandboxLimits:
    """The configured limits, read at call time."""
    return SandboxLimits(
        memory_bytes=int(getattr(settings, "EVALHUB_SUITE_SCAN_MEMORY_MB", 512)) * 1024 * 1024,
        cpu_seconds=int(getattr(settings, "EVALHUB_SUITE_SCAN_CPU_SECONDS", 120)),
    )


def sandbox_available() -> bool:
    return hasattr(os, "fork") and "fork" in multiprocessing.get_all_start_methods()


class LimitExceeded(Exception):
    """The child ran out of its memory or CPU allowance; the message says which, for the user."""


@dataclass
class Outcome(Generic[T]):
    """The child's result and what the read cost (peak memory above the fork, CPU seconds)."""

    value: T
    peak_extra_bytes: int
    cpu_seconds: float


def _address_space() -> int:
    """Bytes of address space this process maps now (RLIMIT_AS counts these)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _resident() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _apply(limits: SandboxLimits) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    used = resource.getrusage(resource.RUSAGE_SELF)
    cpu = int(used.ru_utime + used.ru_stime) + limits.cpu_seconds
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    try:
        budget = _address_space() + limits.memory_bytes
        resource.setrlimit(resource.RLIMIT_AS, (budget, budget))
    except (OSError, ValueError):  # no /proc (macOS): the CPU limit and the other caps still hold
        log.warning("no address-space limit for this read")


def _child(work: Callable[[Callable[[int], None]], Any], conn: Connection, limits: SandboxLimits) -> None:
    started_rss = _resident()
    _apply(limits)

    def progress(done: int) -> None:
        conn.send(("progress", done))

    try:
        value = work(progress)
    except MemoryError:
        conn.send(("memory", None))
        return
    except Exception:  # a bug, not the file: the caller logs the child's traceback and fails
        conn.send(("error", traceback.format_exc()))
        return
    used = resource.getrusage(resource.RUSAGE_SELF)
    peak = used.ru_maxrss * 1024 - started_rss
    conn.send(("done", Outcome(value, max(peak, 0), used.ru_utime + used.ru_stime)))


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


def run_limited(
    work: Callable[[Callable[[int], None]], T],
    *,
    limits: SandboxLimits,
    progress: Callable[[int], None] | None = None,
) -> Outcome[T]:
    """Run `work(progress)` in a forked child under `limits` and return its result.

    Raises LimitExceeded when the child runs out of memory or CPU, or dies; `progress` is called
    here, in the caller's process, with what the child reported. `work` must not use the database.
    """
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(work, sender, limits), daemon=True)
    child.start()
    sender.close()
    deadline = time.monotonic() + limits.wall_seconds
    try:
        while True:
            if time.monotonic() > deadline:
                raise LimitExceeded(_cpu_message(limits))
            if not receiver.poll(0.2):
                continue
            try:
                kind, value = receiver.recv()
            except EOFError:  # the child died without a word: killed by a limit, or crashed
                child.join(5)
                if child.exitcode in (-signal.SIGXCPU, -signal.SIGKILL):
                    raise LimitExceeded(_cpu_message(limits)) from None
                log.error("a sandboxed read died with exit code %s", child.exitcode)
                raise LimitExceeded(_memory_message(limits)) from None
            if kind == "progress" and progress is not None:
                progress(int(value))
            elif kind == "memory":
                raise LimitExceeded(_memory_message(limits))
            elif kind == "error":
                log.error("a sandboxed read failed:\n%s", value)
                raise RuntimeError("Reading the file failed on an unexpected error (logged on the server).")
            elif kind == "done":
                return value  # type: ignore[no-any-return]
    finally:
        receiver.close()
        if child.is_alive():
            child.kill()
        child.join(5)
