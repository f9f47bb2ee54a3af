"""A real vLLM OpenAI-compatible server on the fixture base model, for the HTTP clients' tests.

One home for starting it: ``vllm_server`` is a session-scoped fixture (start-up takes one to two
minutes on CPU, so a test module shares one server). It runs from ``.venv-vllm`` (``make vllm-env``)
with a small KV cache; tests using it carry the "vllm" xdist group (tests/conftest.py SERIAL_GROUPS)
so they never run beside the other vLLM tests.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent
VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"
FIXTURE_BASE = REPO / "fixtures" / "models" / "base"
SERVED_NAME = "fixture-base"
MAX_MODEL_LEN = 1024
START_TIMEOUT_S = 600


@dataclass(frozen=True)
class VllmServer:
    base_url: str  # http://127.0.0.1:<port>/v1
    model: str
    max_model_len: int
    log: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


class ServerFailed(RuntimeError):
    pass


@contextlib.contextmanager
def vllm_serving(log: Path, *, max_num_seqs: int = 8) -> Iterator[VllmServer]:
    """Start the server (its own process group), wait until /v1/models answers, stop it on exit.
    ``ServerFailed`` with the log's tail when it exits or does not come up in time."""
    port = _free_port()
    command = [
        str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server", "--model", str(FIXTURE_BASE),
        "--served-model-name", SERVED_NAME, "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32",
        "--max-model-len", str(MAX_MODEL_LEN), "--enforce-eager", "--max-num-seqs", str(max_num_seqs),
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1"},
        )  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise ServerFailed(f"vLLM server exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise ServerFailed(
                    f"vLLM server not up after {START_TIMEOUT_S} s:\n{log.read_text()[-4000:]}"
                )
            time.sleep(1)
        yield VllmServer(f"http://127.0.0.1:{port}/v1", SERVED_NAME, MAX_MODEL_LEN, log)
    finally:
        _stop(proc)


# Session scope: the vllm xdist group runs several modules' tests interleaved on one worker, and a
# module-scoped server was started again each time the module came back (about 30 s each on CI).
@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmServer]:
    if not VLLM_PYTHON.exists():
        pytest.skip(".venv-vllm is absent: make vllm-env")
    if not (FIXTURE_BASE / "config.json").is_file():
        pytest.skip("fixture models not built")
    try:
        with vllm_serving(tmp_path_factory.mktemp("vllm") / "server.log") as server:
            yield server
    except ServerFailed as exc:
        pytest.fail(str(exc))
