"""Stopping what a benchmark started: a subprocess in its own process group (start_new_session=True)."""

from __future__ import annotations

import os
import signal
import subprocess


def stop_group(proc: subprocess.Popen[bytes], *, timeout: float) -> None:
    """SIGTERM the process group, wait up to `timeout` seconds, then SIGKILL it and reap the leader."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
