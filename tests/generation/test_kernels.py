"""The Triton decode kernels, run by Triton's CPU interpreter: same greedy tokens as peft."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys
import torch
from evalhub.generation import GenerationConfig, GenerationRequest
from evalhub.generation.hf_backend import HFBackend
from tests.generation.test_hf_backend import _peft_generate, _prompts, _requests

base, adapters, attention = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
be = HFBackend(device="cpu", fused_kernels=True, attention=attention)
be.load(base, adapters)
prompts = _prompts(6, seed=12)
requests = _requests(prompts)
got = [list(r.token_ids) for r in be.generate(requests, GenerationConfig(max_new_tokens=10))]
want = _peft_generate(base, adapters, prompts, [r.adapter for r in requests], max_new=10)
print(json.dumps({"same": sum(g == w for g, w in zip(got, want)), "rows": len(got)}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("attention", ["grouped", "bmm"])
def test_fused_kernels_give_the_same_greedy_tokens(
    tiny_family: dict[str, Path], tiny_adapters: dict[str, Path], attention: str
) -> None:
    if importlib.util.find_spec("triton") is None:
        pytest.skip("Triton is not installed here (CUDA builds of torch ship it)")
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": path}
    adapters = json.dumps({k: str(v) for k, v in tiny_adapters.items()})
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tiny_family["base"]), adapters, attention],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["same"] == result["rows"], result
