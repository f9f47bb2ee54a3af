"""The Triton decode kernels, run by Triton's CPU interpreter: same greedy tokens as peft, and
each kernel equal to a float64 reference on random inputs.

The interpreter gets bfloat16 matrix products wrong (a Triton interpreter limitation: a bf16
``tl.dot`` returns garbage there), so these run in float32 and float16; bench/generation.py
checks the kernels in bfloat16 on the GPU.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

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


KERNEL_SCRIPT = """
import json, sys
import torch
import torch.nn.functional as F
from evalhub.generation import kernels

dtype = getattr(torch, sys.argv[1])
gen = torch.Generator().manual_seed(int(sys.argv[2]))
errors = {}

def rel(got, ref):
    assert not torch.isnan(got).any(), "unwritten output"
    return float((got.double() - ref).norm() / ref.norm())

# decode attention: rows with different left padding, slots on and across block edges, GQA
# groups of 4 and of 1 (a group smaller than the 16 rows tl.dot needs is padded).
for nh, nkv in ((8, 2), (2, 2)):
    b, length, d = 5, 130, 64
    q = torch.randn(b, nh, d, generator=gen).to(dtype)
    k = torch.randn(b, nkv, length, d, generator=gen).to(dtype)
    v = torch.randn(b, nkv, length, d, generator=gen).to(dtype)
    pad = torch.tensor([0, 3, 64, 70, 127])
    for slot in (127, 128, 129):
        out = torch.full_like(q, float("nan"))
        kernels.decode_attention(q, k, v, pad, torch.tensor(slot), out)
        keys = torch.arange(length)
        live = ((keys >= pad[:, None]) & (keys <= slot)).view(b, 1, 1, length)
        ref = F.scaled_dot_product_attention(
            q.double().unsqueeze(2), k.double(), v.double(), attn_mask=live, enable_gqa=True
        ).squeeze(2)
        errors[f"attention nh={nh} nkv={nkv} slot={slot}"] = rel(out, ref)

# Gemma's attention options: another scale, tanh soft-capped scores, a sliding window that
# starts past some rows' padding and inside others'.
scale, cap, window, slot = 0.3, 3.0, 70, 129
out = torch.full_like(q, float("nan"))
kernels.decode_attention(q, k, v, pad, torch.tensor(slot), out, scale=scale, softcap=cap, window=window)
live = ((keys >= pad[:, None]) & (keys <= slot) & (keys > slot - window)).view(b, 1, 1, length)
scores = torch.tanh(q.double().unsqueeze(2) @ k.double().transpose(2, 3) * scale / cap) * cap
ref = (torch.softmax(scores.masked_fill(~live, float("-inf")), dim=-1) @ v.double()).squeeze(2)
errors["attention scale softcap window"] = rel(out, ref)

# GeGLU: GELU-tanh(gate) * up
gu = torch.randn(5, 2 * 300, generator=gen).to(dtype)
ref = F.gelu(gu[:, :300].double(), approximate="tanh") * gu[:, 300:].double()
errors["gate_mul gelu_tanh"] = rel(kernels.gate_mul(gu, 300, "gelu_tanh"), ref)

# LoRA expand: B is zero outside each targeted sub-module's block of K; untargeted modules
# (here k of q|k|v, or gate of gate|up) have no block. Two adapters (ranks 16 and 8) share each
# block; rows keep only their adapter's columns, some rows have none. Rows grouped by adapter,
# interleaved, and more rows than a decode tile takes (the prefill tiles).
widths = (16, 8)
offsets = (0, 16)
r = sum(widths)
for act, outs, targeted, rows in (
    (False, (96, 32, 32), (0, 2), [1, None, 0, 1, 0, None, 1]),
    (False, (64, 64, 64), (0, 1, 2), [0] * 30 + [None] * 10 + [1] * 30),
    (True, (80, 80), (0, 1), [1, 0] * 35),
    (True, (80, 80), (1,), [None, 0, 0, 1, 1]),
    (False, (64, 32, 32), (0, 1, 2), [0] * 150 + [1] * 120 + [None] * 30),
    (True, (200, 200), (0, 1), [0] * 137 + [1] * 163),
):
    m, out_cols = len(rows), sum(outs)
    lora_b = torch.zeros(out_cols, len(targeted) * r)
    for t, j in enumerate(targeted):
        row0 = sum(outs[:j])
        lora_b[row0 : row0 + outs[j], t * r : (t + 1) * r] = torch.randn(outs[j], r, generator=gen)
    y = torch.randn(m, out_cols + lora_b.shape[1], generator=gen).to(dtype)
    mask = torch.zeros(m, r)
    lo = torch.full((m,), r, dtype=torch.int32)
    hi = torch.zeros(m, dtype=torch.int32)
    for i, a in enumerate(rows):
        if a is not None:
            mask[i, offsets[a] : offsets[a] + widths[a]] = 1
            lo[i], hi[i] = offsets[a], offsets[a] + widths[a]
    mask = mask.repeat(1, len(targeted)).to(dtype)
    tiles = kernels.lora_tiles(m)
    bn = tiles.shape(act)[0]
    cols = {bn: kernels.lora_col_ranges(lora_b, out_cols, act=act, block=r, bn=bn)}
    spans = kernels.lora_row_ranges(lo, hi, tiles.bm, block=r)
    got = kernels.lora_expand(y, out_cols, mask, lora_b.to(dtype), cols, spans, block=r, act=act)
    ref = y[:, :out_cols].double() + (y[:, out_cols:].double() * mask.double()) @ lora_b.double().t()
    if act:
        ref = F.silu(ref[:, : out_cols // 2]) * ref[:, out_cols // 2 :]
    errors[f"lora_expand act={act} outs={outs} targeted={targeted} m={m}"] = rel(got, ref)

print(json.dumps(errors))
"""


def _interpret(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec("triton") is None:
        pytest.skip("Triton is not installed here (CUDA builds of torch ship it; `make install` adds it)")
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": path}
    proc = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.parametrize(("dtype", "tolerance"), [("float32", 1e-5), ("float16", 2e-3)])
def test_kernels_equal_a_float64_reference(dtype: str, tolerance: float) -> None:
    errors = json.loads(_interpret(KERNEL_SCRIPT, dtype, "7").stdout.strip().splitlines()[-1])
    assert len(errors) == 14
    bad = {name: err for name, err in errors.items() if not err < tolerance}
    assert not bad, bad


def test_lora_col_ranges_cover_exactly_the_nonzero_blocks() -> None:
    from evalhub.generation import kernels

    block, bn = 24, 32
    lora_b = torch.zeros(100, 3 * block)
    lora_b[0:40, 0:5] = 1.0  # q rows: first block
    lora_b[40:70, 2 * block : 2 * block + 3] = 1.0  # v rows: third block; rows 70..99 none
    ranges = kernels.lora_col_ranges(lora_b, 100, act=False, block=block, bn=bn).tolist()
    expected = []
    for t in range(-(-100 // bn)):
        cols = lora_b[t * bn : (t + 1) * bn].abs().sum(dim=0).nonzero().flatten()
        if cols.numel() == 0:
            expected.append([0, 0, 0, 0])
        else:
            expected.append([int(cols.min()) // block, int(cols.max()) // block + 1, 0, 0])
    assert ranges == expected
    assert ranges[0] == [0, 1, 0, 0]  # a q-only tile reads one block of three
    assert ranges[1] == [0, 3, 0, 0]  # rows 32..63 straddle q and v: blocks 0..2
    assert ranges[-1] == [0, 0, 0, 0]  # a tile without LoRA reads none
    up = torch.zeros(64, block)
    up[32:64, 0:4] = 1.0  # only the up half of gate|up has LoRA
    assert kernels.lora_col_ranges(up, 64, act=True, block=block, bn=bn).tolist() == [[0, 0, 0, 1]]


def test_lora_row_ranges_span_the_adapters_of_each_row_tile() -> None:
    from evalhub.generation import kernels

    block = 24
    # adapter spans per row: [0, 16) and [16, 24); rows without an adapter: (block, 0)
    lo = torch.tensor([0, 0, 16, 16, 24, 24, 0, 16, 24], dtype=torch.int32)
    hi = torch.tensor([16, 16, 24, 24, 0, 0, 16, 24, 0], dtype=torch.int32)
    spans = kernels.lora_row_ranges(lo, hi, 2, block=block).tolist()
    # tiles: (a, a), (b, b), (none, none), (a, b), (none + fill)
    assert spans == [[0, 16], [16, 24], [24, 0], [0, 24], [24, 0]]
    out = torch.full((5, 2), -1, dtype=torch.int32)
    assert kernels.lora_row_ranges(lo, hi, 2, block=block, out=out) is out
    assert out.tolist() == spans


@pytest.mark.slow
@pytest.mark.parametrize("attention", ["triton", "grouped", "bmm"])
def test_fused_kernels_give_the_same_greedy_tokens(
    tiny_family: dict[str, Path], tiny_adapters: dict[str, Path], attention: str
) -> None:
    adapters = json.dumps({k: str(v) for k, v in tiny_adapters.items()})
    proc = _interpret(SCRIPT, str(tiny_family["base"]), adapters, attention)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["same"] == result["rows"], result


def test_the_engine_has_column_ranges_for_every_tile_width_it_launches(
    tiny_family: dict[str, Path], tiny_adapters: dict[str, Path]
) -> None:
    from evalhub.generation import kernels
    from evalhub.generation.hf_backend import HFBackend
    from evalhub.generation.llama import LlamaEngine

    if not kernels.HAVE_TRITON:
        pytest.skip("Triton is not installed here")
    backend = HFBackend(device="cpu")
    backend.load(tiny_family["base"], tiny_adapters)
    engine = backend._stepper
    assert isinstance(engine, LlamaEngine)
    widths = {t.shape(act)[0] for t in (kernels.LORA_DECODE, kernels.LORA_PREFILL) for act in (False, True)}
    linears = [lin for layer in engine.layers for lin in layer.linears.values() if lin.lora_b is not None]
    assert linears
    for lin in linears:
        assert lin.col_ranges is not None and set(lin.col_ranges) == widths
