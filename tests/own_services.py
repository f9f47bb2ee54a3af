"""PostgreSQL and Redis instances of a test's own, in a temp dir on a free port: fault tests stop and
restart these, never the machine's shared services."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, *, up: bool = True, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(0.1)
    raise TimeoutError(f"port {port} did not go {'up' if up else 'down'} in {timeout} s")


def binaries_available(*names: str) -> bool:
    return all(shutil.which(name) for name in names)


@dataclass
class OwnPostgres:
    """A PostgreSQL cluster of the test's own (trust auth, user postgres); `stop()`/`start()` for faults."""

    folder: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        subprocess.run([*_as_postgres(), "pg_ctl", "-D", str(self.folder / "data"), "-w", "-s", *args], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._ctl("-o", options, "-l", str(self.folder / "log"), "start")
        wait_for_port(self.port)

    def stop(self) -> None:
        self._ctl("-m", "fast", "stop")
        wait_for_port(self.port, up=False)


def _as_postgres() -> list[str]:
    # PostgreSQL refuses to run as root: CI containers run tests as root, so the server runs as postgres.
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@contextmanager
def own_postgres() -> Iterator[OwnPostgres]:
    """A fresh cluster in its own temp dir (owned by the server's user), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="evalhub-own-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    subprocess.run([*_as_postgres(), "initdb", "-D", str(folder / "data"), "-U", "postgres", "-A", "trust", "--no-sync"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "LC_ALL": "C"})
    server = OwnPostgres(folder=folder, port=free_port())
    server.start()
    try:
        yield server
    finally:
        with suppress(subprocess.CalledProcessError, TimeoutError):
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class OwnRedis:
    """A Redis server of the test's own; `stop()`/`start()` for faults (no persistence unless asked:
    `appendonly=True` logs every write to an append-only file in `folder`, reloaded on start)."""

    folder: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    appendonly: bool = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
             "--save", "", "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "always"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None
        wait_for_port(self.port, up=False)


@contextmanager
def own_redis(folder: Path, *, appendonly: bool = False) -> Iterator[OwnRedis]:
    folder.mkdir(parents=True, exist_ok=True)
    server = OwnRedis(folder=folder, port=free_port(), appendonly=appendonly)
    server.start()
    try:
        yield server
    finally:
        server.stop()
