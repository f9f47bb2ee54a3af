"""Generation throughput on a GPU: evalhub's hf backend against the naive peft generate() path.

A model shape (default: TinyLlama-1.1B, hidden 2048, 22 layers, 32 heads, 4 KV heads,
intermediate 5632, vocab 32000; ``--family`` picks each fast-engine family's 1-2B shape,
``--shape`` any of ``SHAPES``, e.g. llama3-8b), random bf16 weights, batch 64, 128 prompt + 128 new
tokens, 4 rank-16 LoRA adapters on every linear layer (random non-zero B), mixed in one batch.
Prints tokens/s, the share of the HBM roofline and the ratio to the naive path measured in the
same run.

    PYTHONUNBUFFERED=1 PYTHONPATH=. python bench/generation.py [--family gemma2] [--quick] [--naive-new 32] [--out DIR]
    PYTHONUNBUFFERED=1 PYTHONPATH=. python bench/generation.py --shape llama3-8b --quick   # + naive: drop --quick
    PYTHONPATH=. python bench/generation.py --smoke --family qwen3   # CPU: tiny shape, float32, minutes

Families and their shapes (``FAMILY_SHAPES``): llama tinyllama-1.1b, qwen2 qwen2.5-1.5b, qwen3
qwen3-1.7b, mistral mistral-7b-8l (Mistral 7B's layer, 8 of 32 layers), gemma2 gemma-2-2b, gemma3
gemma-3-1b.

``--long 4096``: instead, one long-input case (4096 prompt tokens per row, chunked prefill, 4
adapters mixed, batch ``--long-batch``): chunked against one-shot prefill and the naive path, with
peak GPU memory, in the same run.

Runs without Django or Celery: the GPU box has neither, and `evalhub.generation` needs neither.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from evalhub.generation import (  # noqa: E402
    GenerationConfig,
    GenerationRequest,
    kernels,
)
from evalhub.generation.hf_backend import HFBackend  # noqa: E402

HBM_BYTES_PER_S = 3.35e12  # H100 SXM HBM3 datasheet
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
ENV_ROOFLINE_TOK_S = 97_000  # ENVIRONMENT.md's figure for batch 64


# Model shapes: (model_type, config fields). Dimensions from the published configs; the engine's
# family switches (biases, q/k norms, windows, soft-capping, ...) follow from model_type + fields.
_GEMMA2 = {"query_pre_attn_scalar": 256, "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0}
SHAPES: dict[str, tuple[str, dict[str, Any]]] = {
    "tinyllama-1.1b": (
        "llama",
        {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22, "num_attention_heads": 32,
         "num_key_value_heads": 4, "vocab_size": 32000, "max_position_embeddings": 2048, "rms_norm_eps": 1e-5},
    ),
    "qwen2.5-1.5b": (
        "qwen2",
        {"hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28, "num_attention_heads": 12,
         "num_key_value_heads": 2, "vocab_size": 151936, "max_position_embeddings": 32768,
         "tie_word_embeddings": True, "rope_theta": 1e6},
    ),
    "qwen3-1.7b": (
        "qwen3",
        {"hidden_size": 2048, "intermediate_size": 6144, "num_hidden_layers": 28, "num_attention_heads": 16,
         "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936, "max_position_embeddings": 40960,
         "tie_word_embeddings": True, "rope_theta": 1e6},
    ),
    # Mistral 7B v0.1's layer (GQA 32/8, sliding window 4096), 8 of its 32 layers: 1.9B parameters.
    "mistral-7b-8l": (
        "mistral",
        {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 8, "num_attention_heads": 32,
         "num_key_value_heads": 8, "vocab_size": 32000, "max_position_embeddings": 32768, "sliding_window": 4096},
    ),
    "gemma-2-2b": (
        "gemma2",
        {"hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26, "num_attention_heads": 8,
         "num_key_value_heads": 4, "head_dim": 256, "vocab_size": 256000, "max_position_embeddings": 8192,
         "sliding_window": 4096, **_GEMMA2},
    ),
    "gemma-3-1b": (
        "gemma3_text",
        {"hidden_size": 1152, "intermediate_size": 6912, "num_hidden_layers": 26, "num_attention_heads": 4,
         "num_key_value_heads": 1, "head_dim": 256, "vocab_size": 262144, "max_position_embeddings": 32768,
         "sliding_window": 512, "query_pre_attn_scalar": 256, "rope_local_base_freq": 10000.0,
         "rope_theta": 1e6},
    ),
    "llama3-8b": (
        "llama",
        {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
         "num_key_value_heads": 8, "vocab_size": 128256, "max_position_embeddings": 8192, "rope_theta": 5e5},
    ),
}  # fmt: skip
FAMILY_SHAPES = {
    "llama": "tinyllama-1.1b",
    "qwen2": "qwen2.5-1.5b",
    "qwen3": "qwen3-1.7b",
    "mistral": "mistral-7b-8l",
    "gemma2": "gemma-2-2b",
    "gemma3": "gemma-3-1b",
}
# --smoke: each shape's family switches on a tiny model (windows shorter than the 24 tokens).
SMOKE = {
    "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 2,
    "num_key_value_heads": 1, "head_dim": 64, "vocab_size": 512, "max_position_embeddings": 256,
}  # fmt: skip


def shape_config(name: str, *, layers: int | None, smoke: bool) -> Any:
    from transformers import CONFIG_MAPPING

    model_type, fields = SHAPES[name]
    fields = dict(fields)
    if smoke:
        fields.update(SMOKE)
        if "sliding_window" in fields:
            fields["sliding_window"] = 8
        if model_type in {"gemma2", "gemma3_text"}:
            fields["layer_types"] = ["sliding_attention", "full_attention"]
    if layers:
        fields["num_hidden_layers"] = layers
    if "rope_theta" in fields:  # transformers 5 reads RoPE settings from rope_parameters
        theta = fields.pop("rope_theta")
        fields["rope_parameters"] = {"rope_type": "default", "rope_theta": theta}
    if model_type == "gemma3_text":  # its own table for the sliding layers
        local = fields.pop("rope_local_base_freq")
        fields["rope_parameters"] = {
            "full_attention": fields.get("rope_parameters", {"rope_type": "default", "rope_theta": 1e6}),
            "sliding_attention": {"rope_type": "default", "rope_theta": local},
        }
    # random weights: never stop early (no EOS), every row makes all its tokens
    return CONFIG_MAPPING[model_type](bos_token_id=0, eos_token_id=None, pad_token_id=1, **fields)


def build_model(folder: Path, config: Any, device: str, dtype: torch.dtype) -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    vocab = config.vocab_size
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config).to(dtype)
        if config.model_type.startswith("gemma"):  # zero-initialised (1 + w) norms: make them count
            with torch.no_grad():
                for name, p in model.named_parameters():
                    if "norm" in name:
                        p.normal_(0, 0.1)
    model.eval()
    model.save_pretrained(folder)
    vocab_map = {"<s>": 0, "<pad>": 1} | {f"w{i}": i for i in range(2, vocab)}
    tok = Tokenizer(models.WordLevel(vocab=vocab_map, unk_token="<pad>"))  # noqa: S106
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",  # noqa: S106
        pad_token="<pad>",  # noqa: S106
        unk_token="<pad>",  # noqa: S106
    ).save_pretrained(folder)
    return model


def word_tokenizer(folder: Path) -> Any:
    """The bench's word-level tokenizer as written, whatever the model type."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(folder)


def write_lora_adapter(path: Path, model: Any, *, rank: int, base: Path, generator: torch.Generator) -> Path:
    """One PEFT-format LoRA adapter on every TARGETS linear of ``model``, random bf16 weights drawn from
    ``generator``, written directly (what peft's save_pretrained writes). Shared with bench/judge.py."""
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for mod_name, module in model.named_modules():
        if mod_name.rsplit(".", 1)[-1] in TARGETS:
            out_f, in_f = module.weight.shape
            prefix = f"base_model.model.{mod_name}"
            tensors[f"{prefix}.lora_A.weight"] = (
                torch.randn(rank, in_f, generator=generator) / math.sqrt(in_f)
            ).to(torch.bfloat16)
            tensors[f"{prefix}.lora_B.weight"] = (torch.randn(out_f, rank, generator=generator) * 0.02).to(
                torch.bfloat16
            )
    save_file(tensors, str(path / "adapter_model.safetensors"))
    (path / "adapter_config.json").write_text(
        json.dumps(
            {
                "peft_type": "LORA",
                "task_type": "CAUSAL_LM",
                "r": rank,
                "lora_alpha": 2 * rank,
                "target_modules": list(TARGETS),
                "lora_dropout": 0.0,
                "bias": "none",
                "base_model_name_or_path": str(base),
            }
        )
    )
    return path


def write_adapters(folder: Path, model: Any, *, count: int, rank: int) -> dict[str, Path]:
    """``count`` random adapters (``write_lora_adapter``) from one seeded stream, on the base in folder/../base."""
    gen = torch.Generator(device="cpu").manual_seed(1)
    return {
        f"adapter{k}": write_lora_adapter(
            folder / f"adapter{k}", model, rank=rank, base=folder.parent / "base", generator=gen
        )
        for k in range(count)
    }


def roofline(model: Any, *, batch: int, prompt: int, new: int, lora_params: int) -> dict[str, float]:
    """Bytes one decode step must read: every weight once (bf16) + the KV cache at the mean context."""
    from evalhub.generation.llama import layer_windows

    cfg = model.config
    params = sum(p.numel() for p in model.parameters())
    embed = model.get_input_embeddings().weight.numel()
    # embedding: only `batch` rows are read; a tied LM head is read whole (counted once in params)
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    weight_bytes = 2 * (params - embed + (embed if tied else 0) + lora_params)
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    mean_ctx = prompt + new / 2
    # a sliding-window layer reads at most its window of the cache
    ctx = sum(min(mean_ctx, w or mean_ctx) for w in layer_windows(cfg))
    kv_bytes = 2 * 2 * batch * cfg.num_key_value_heads * head_dim * ctx
    step_s = (weight_bytes + kv_bytes) / HBM_BYTES_PER_S
    return {
        "weight_bytes": weight_bytes,
        "kv_bytes": kv_bytes,
        "step_ms": step_s * 1e3,
        "tok_s": batch / step_s,
    }


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn: Any, repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        sync()
        t0 = time.perf_counter()
        result = fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def decode_step_ms(
    backend: HFBackend, prompts: list[list[int]], adapters: list[int | None], new: int
) -> float:
    """Steady-state decode: CUDA-event time of (new - 1) graph replays after prefill, per step."""
    engine: Any = backend._stepper
    st = engine.start(
        prompts, adapters, [0] * len(prompts), max_new=new, greedy=True, temperature=0.0, top_p=1.0, pad_id=1
    )
    engine.advance(st, 3)
    st = engine.start(
        prompts, adapters, [0] * len(prompts), max_new=new, greedy=True, temperature=0.0, top_p=1.0, pad_id=1
    )
    if engine.device.type != "cuda":  # --smoke
        secs, _ = timed(lambda: engine.advance(st, new - 1), 1)
        return secs * 1e3 / (new - 1)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    engine.advance(st, new - 1)
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / (new - 1)


def prefill_ms(backend: HFBackend, prompts: list[list[int]], adapters: list[int | None], new: int) -> float:
    engine: Any = backend._stepper
    times = []
    for _ in range(3):
        sync()
        t0 = time.perf_counter()
        engine.start(
            prompts,
            adapters,
            [0] * len(prompts),
            max_new=new,
            greedy=True,
            temperature=0.0,
            top_p=1.0,
            pad_id=1,
        )
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def profile_step(
    backend: HFBackend, prompts: list[list[int]], adapters: list[int | None], new: int, work: Path
) -> None:
    """Kernel time of one (eager, un-graphed) mixed-adapter decode step, by kernel name."""
    from torch.profiler import ProfilerActivity, profile

    engine: Any = backend._stepper
    st = engine.start(
        prompts, adapters, [0] * len(prompts), max_new=new, greedy=True, temperature=0.0, top_p=1.0, pad_id=1
    )
    engine._decode_step(st)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(2):
            engine._decode_step(st)
        torch.cuda.synchronize()
    table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=14, max_name_column_width=60)
    print("kernel time of 2 eager mixed-adapter decode steps:")
    print(table)


def host_profile(fn: Any) -> None:
    """Where one generate() call spends its wall time on the host (cProfile, by own time)."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    torch.cuda.synchronize()
    prof.enable()
    fn()
    torch.cuda.synchronize()
    prof.disable()
    print("host time of one mixed-adapter generate() call, by own time:")
    pstats.Stats(prof).sort_stats("tottime").print_stats(14)


def kernel_checks() -> dict[str, float]:
    """The Triton kernels in bf16 on the GPU against float64 references, on random inputs.

    (The CPU tests run them in Triton's interpreter, which cannot do bf16 matrix products.)
    """
    import torch.nn.functional as F

    gen = torch.Generator(device="cuda").manual_seed(5)
    dev, bf = "cuda", torch.bfloat16
    errors: dict[str, float] = {}

    def rel(got: torch.Tensor, ref: torch.Tensor) -> float:
        assert not torch.isnan(got).any(), "unwritten output"
        return float((got.double() - ref).norm() / ref.norm())

    b, nh, nkv, length, d = 64, 32, 4, 256, 64
    q = torch.randn(b, nh, d, device=dev, generator=gen).to(bf)
    k = torch.randn(b, nkv, length, d, device=dev, generator=gen).to(bf)
    v = torch.randn(b, nkv, length, d, device=dev, generator=gen).to(bf)
    pad = torch.randint(0, 128, (b,), device=dev, generator=gen)
    for slot in (128, 191, 255):
        out = torch.full_like(q, float("nan"))
        kernels.decode_attention(q, k, v, pad, torch.tensor(slot, device=dev), out)
        keys = torch.arange(length, device=dev)
        live = ((keys >= pad[:, None]) & (keys <= slot)).view(b, 1, 1, length)
        ref = F.scaled_dot_product_attention(
            q.double().unsqueeze(2), k.double(), v.double(), attn_mask=live, enable_gqa=True
        ).squeeze(2)
        errors[f"decode_attention slot {slot}"] = rel(out, ref)
    # Gemma's options: head_dim 256, query_pre_attn_scalar scale, soft-capped scores, a window.
    d, scale, cap, window, slot = 256, 224**-0.5, 50.0, 100, 255
    q = torch.randn(b, 8, d, device=dev, generator=gen).to(bf)
    k = torch.randn(b, nkv, length, d, device=dev, generator=gen).to(bf)
    v = torch.randn(b, nkv, length, d, device=dev, generator=gen).to(bf)
    out = torch.full_like(q, float("nan"))
    kernels.decode_attention(
        q, k, v, pad, torch.tensor(slot, device=dev), out, scale=scale, softcap=cap, window=window
    )
    keys = torch.arange(length, device=dev)
    live = ((keys >= pad[:, None]) & (keys <= slot) & (keys > slot - window)).view(b, 1, 1, length)
    kk = k.double().repeat_interleave(8 // nkv, dim=1)
    scores = torch.tanh(q.double().unsqueeze(2) @ kk.transpose(2, 3) * scale / cap) * cap
    probs = torch.softmax(scores.masked_fill(~live, float("-inf")), dim=-1)
    ref = (probs @ v.double().repeat_interleave(8 // nkv, dim=1)).squeeze(2)
    errors["decode_attention d=256 softcap window"] = rel(out, ref)
    r = 64  # 4 adapters x rank 16, rows grouped by adapter as the backend batches them
    for act, outs, m, activation in (
        (False, (2048, 256, 256), 64, "silu"),
        (True, (5632, 5632), 64, "silu"),
        (False, (2048, 256, 256), 1000, "silu"),
        (True, (5632, 5632), 1000, "silu"),
        (True, (5632, 5632), 64, "gelu_tanh"),
    ):
        out_cols = sum(outs)
        lora_b = torch.zeros(out_cols, len(outs) * r, device=dev)
        for t, o in enumerate(outs):
            row0 = sum(outs[:t])
            lora_b[row0 : row0 + o, t * r : (t + 1) * r] = torch.randn(o, r, device=dev, generator=gen) * 0.02
        y = torch.randn(m, out_cols + lora_b.shape[1], device=dev, generator=gen).to(bf)
        adapter = torch.arange(m, device=dev) * 4 // m  # 4 groups of rows
        adapter[m // 2 : m // 2 + 3] = -1  # a few rows without an adapter
        lo = torch.where(adapter >= 0, adapter * 16, r).to(torch.int32)
        hi = torch.where(adapter >= 0, adapter * 16 + 16, 0).to(torch.int32)
        mask = (
            (torch.arange(r, device=dev) >= lo[:, None]) & (torch.arange(r, device=dev) < hi[:, None])
        ).to(bf)
        mask = mask.repeat(1, len(outs))
        tiles = kernels.lora_tiles(m)
        bn = tiles.shape(act)[0]
        cols = {bn: kernels.lora_col_ranges(lora_b, out_cols, act=act, block=r, bn=bn).to(dev)}
        spans = kernels.lora_row_ranges(lo, hi, tiles.bm, block=r)
        got = kernels.lora_expand(
            y, out_cols, mask, lora_b.to(bf), cols, spans, block=r, act=act, activation=activation
        )
        ref = (
            y[:, :out_cols].double() + (y[:, out_cols:].double() * mask.double()) @ lora_b.to(bf).double().t()
        )
        if act:
            gate = ref[:, : out_cols // 2]
            gate = F.silu(gate) if activation == "silu" else F.gelu(gate, approximate="tanh")
            ref = gate * ref[:, out_cols // 2 :]
        errors[f"lora_expand act={act} m={m} {activation}"] = rel(got, ref)
    for name, err in errors.items():
        print(f"kernel check (bf16 vs float64): {name:32s} relative error {err:.2e}")
    worst = max(errors.values())
    assert worst < 2e-2, f"a kernel is wrong in bf16: {errors}"
    return errors


def sanity_on_gpu(base: Path, adapter_dirs: dict[str, Path], work: Path) -> dict[str, Any]:
    """The adapter sanity check in bf16 on CUDA: real adapters pass, a zero-B adapter is refused."""
    from safetensors.torch import load_file, save_file

    from evalhub.generation.errors import AdapterIneffective
    from evalhub.generation.sanity import check_adapters

    first = next(iter(adapter_dirs.values()))
    dead = work / "dead_adapter"
    dead.mkdir(exist_ok=True)
    tensors = load_file(str(first / "adapter_model.safetensors"))
    save_file(
        {k: (torch.zeros_like(t) if "lora_B" in k else t) for k, t in tensors.items()},
        str(dead / "adapter_model.safetensors"),
    )
    (dead / "adapter_config.json").write_text((first / "adapter_config.json").read_text())
    reports = check_adapters(base, adapter_dirs, device="cuda", dtype=torch.bfloat16)
    deltas = {name: rep.max_logit_delta for name, rep in reports.items()}
    try:
        check_adapters(base, {"dead": dead}, device="cuda", dtype=torch.bfloat16)
        refused = False
    except AdapterIneffective:
        refused = True
    print(f"adapter sanity in bf16 on CUDA: max logit deltas {deltas}; zero-B adapter refused: {refused}")
    assert refused and min(deltas.values()) > 1e-2
    return {"max_logit_delta": deltas, "dead_adapter_refused": refused}


_ROW_RANGES = kernels.lora_row_ranges


def _full_row_ranges(
    lo: torch.Tensor, hi: torch.Tensor, bm: int, *, block: int, out: torch.Tensor | None = None
) -> torch.Tensor:
    return _ROW_RANGES(torch.zeros_like(lo), torch.full_like(hi, block), bm, block=block, out=out)


def lora_spans(engine: Any, on: bool) -> None:
    """Ablation switch: with ``on`` False every lora_expand tile reads all K blocks and all
    adapters' columns (the engine's own row/column spans replaced by full ones)."""
    kernels.lora_row_ranges = _ROW_RANGES if on else _full_row_ranges
    for layer in engine.layers:
        for lin in layer.linears.values():
            if lin.col_ranges is None:
                continue
            saved = lin.__dict__.setdefault("_spans", dict(lin.col_ranges))
            if on:
                lin.col_ranges = dict(saved)
            else:
                lin.col_ranges = {bn: _full_cols(t, lin.n_sub) for bn, t in saved.items()}


def _full_cols(ranges: torch.Tensor, n_sub: int) -> torch.Tensor:
    full = ranges.clone()
    full[:, 0], full[:, 1], full[:, 2], full[:, 3] = 0, n_sub, 0, n_sub
    return full


def kernel_sweep(engine: Any, batch: int, prompt: int) -> dict[str, Any]:
    """Times lora_expand tile shapes on layer 0's real linears, at the decode batch and at the
    prefill row count, and decode_attention block sizes; sets the fastest as the defaults.

    Returns the table. Rows are grouped by adapter (4 equal groups) as the backend batches them.
    """
    import torch.nn.functional as F
    import triton
    from triton.testing import do_bench, do_bench_cudagraph

    dev, dt = engine.device, engine.dtype
    r = engine.lora_cols
    n_adapters = len(engine.adapter_names)
    width = r // n_adapters
    layer = engine.layers[0]
    report: dict[str, Any] = {"lora": {}, "attention": {}}

    def spans_for(m: int) -> tuple[torch.Tensor, torch.Tensor]:
        adapter = torch.arange(m, device=dev) * n_adapters // m
        return (adapter * width).to(torch.int32), (adapter * width + width).to(torch.int32)

    for label, m, bms, shapes in (
        ("decode", batch, (16, 32), ((32, 4), (64, 2), (64, 4), (128, 4))),
        ("prefill", batch * prompt, (32, 64, 128), ((64, 4), (64, 8), (128, 4), (128, 8), (256, 8))),
    ):
        lo, hi = spans_for(m)
        saved = (kernels.LORA_DECODE, kernels.LORA_PREFILL)
        timings: dict[tuple[int, int, int, str], float] = {}  # (bm, bn, warps, linear) -> µs per step
        for bm in bms:
            rows = _ROW_RANGES(lo, hi, bm, block=r)
            for bn, warps in shapes:
                tiles = kernels.LoraTiles(bm=bm, bn=bn, warps=warps, act_bn=bn, act_warps=warps)
                kernels.LORA_DECODE = kernels.LORA_PREFILL = tiles
                for g, lin in layer.linears.items():
                    if lin.lora_b is None:
                        continue
                    act = g == "gate_up"
                    cols = {bn: kernels.lora_col_ranges(lin.lora_b, lin.out, act=act, block=r, bn=bn).to(dev)}
                    y = torch.randn(m, lin.out + lin.n_sub * r, device=dev, dtype=dt)
                    mask = torch.ones(m, lin.n_sub * r, device=dev, dtype=dt)

                    def call(y=y, lin=lin, mask=mask, cols=cols, rows=rows, act=act) -> None:
                        kernels.lora_expand(y, lin.out, mask, lin.lora_b, cols, rows, block=r, act=act)

                    ms = do_bench_cudagraph(call, rep=20) if label == "decode" else do_bench(call, rep=50)
                    timings[(bm, bn, warps, g)] = ms * len(engine.layers) * 1e3
        kernels.LORA_DECODE, kernels.LORA_PREFILL = saved
        plain = [g for g, lin in layer.linears.items() if lin.lora_b is not None and g != "gate_up"]
        choices = []
        for bm in bms:
            per_shape = {(bn, warps): sum(timings[(bm, bn, warps, g)] for g in plain) for bn, warps in shapes}
            act_shape = {(bn, warps): timings[(bm, bn, warps, "gate_up")] for bn, warps in shapes}
            for (bn, warps), t in per_shape.items():
                print(
                    f"lora_expand {label:7s} M={m:5d} bm={bm:3d} bn={bn:3d} warps={warps}: "
                    f"q|k|v+o+down {t:8.1f} µs, gate|up {act_shape[(bn, warps)]:8.1f} µs per step"
                )
                report["lora"][f"{label} bm={bm} bn={bn} warps={warps}"] = {
                    "plain_us": t,
                    "gate_up_us": act_shape[(bn, warps)],
                }
            p_best = min(per_shape, key=per_shape.__getitem__)
            a_best = min(act_shape, key=act_shape.__getitem__)
            total = per_shape[p_best] + act_shape[a_best]
            choices.append((total, kernels.LoraTiles(bm, p_best[0], p_best[1], a_best[0], a_best[1])))
        total, best = min(choices, key=lambda c: c[0])
        print(f"lora_expand {label}: fastest {best}, {total:.1f} µs per step")
        if label == "prefill":  # the other way to apply B in prefill: cuBLAS (+ the SiLU kernel)
            cublas = 0.0
            for g, lin in layer.linears.items():
                if lin.lora_b is None:
                    continue
                y = torch.randn(m, lin.out + lin.n_sub * r, device=dev, dtype=dt)
                mask = torch.ones(m, lin.n_sub * r, device=dev, dtype=dt)

                def addmm(y=y, lin=lin, mask=mask, act=g == "gate_up") -> None:
                    out = torch.addmm(y[:, : lin.out], y[:, lin.out :] * mask, lin.lora_b.t())
                    if act:
                        kernels.gate_mul(out, out.shape[1] // 2)

                cublas += do_bench(addmm, rep=50)
            cublas *= len(engine.layers) * 1e3
            report["lora"]["prefill addmm"] = cublas
            print(
                f"lora_expand prefill M={m:5d} cuBLAS addmm (+ gate_mul) instead: {cublas:8.1f} µs per step"
            )
        report[f"best_{label}"] = str(best)
        if label == "decode":
            kernels.LORA_DECODE = best
        else:
            kernels.LORA_PREFILL = best
    # What the appended LoRA A rows cost the decode GEMMs (cuBLAS picks per shape).
    gemm = {"with A rows": 0.0, "base only": 0.0}
    for lin in layer.linears.values():
        x = torch.randn(batch, lin.weight.shape[1], device=dev, dtype=dt)
        gemm["with A rows"] += do_bench_cudagraph(lambda x=x, lin=lin: F.linear(x, lin.weight), rep=20)
        gemm["base only"] += do_bench_cudagraph(lambda x=x, lin=lin: F.linear(x, lin.base_weight()), rep=20)
    gemm = {k: v * len(engine.layers) * 1e3 for k, v in gemm.items()}
    report["decode_gemm_us"] = gemm
    print(
        f"decode GEMMs per step: with LoRA A rows {gemm['with A rows']:.1f} µs, base only {gemm['base only']:.1f} µs"
    )
    # the engine's column ranges for the chosen tile widths
    for lay in engine.layers:
        for g, lin in lay.linears.items():
            if lin.col_ranges is None:
                continue
            for bn in kernels.lora_widths():
                if bn not in lin.col_ranges:
                    lin.col_ranges[bn] = kernels.lora_col_ranges(
                        lin.lora_b, lin.out, act=g == "gate_up", block=r, bn=bn
                    ).to(dev)
            lin.__dict__.pop("_spans", None)
    print(f"lora_expand tiles chosen: decode {kernels.LORA_DECODE}, prefill {kernels.LORA_PREFILL}")

    nh, nkv, hd, length = engine.n_heads, engine.n_kv, engine.head_dim, prompt * 2
    q = torch.randn(batch, nh, hd, device=dev, dtype=dt)
    k = torch.randn(batch, nkv, length, hd, device=dev, dtype=dt)
    v = torch.randn_like(k)
    out = torch.empty_like(q)
    pad = torch.randint(0, prompt // 4, (batch,), device=dev)
    slot = torch.tensor(prompt + prompt // 2, device=dev)
    best_a: tuple[float, Any] = (float("inf"), None)
    for bn, warps in ((32, 2), (32, 4), (64, 4), (64, 8), (128, 4), (128, 8)):
        try:
            ms = do_bench_cudagraph(
                lambda bn=bn, warps=warps: kernels.decode_attention(
                    q, k, v, pad, slot, out, bn=bn, warps=warps
                ),
                rep=20,
            )
        except triton.runtime.errors.OutOfResources as exc:  # wide heads (256) x 128 positions
            print(f"decode_attention bn={bn:3d} warps={warps}: does not fit ({exc})")
            continue
        per_step = ms * len(engine.layers) * 1e3
        report["attention"][f"bn={bn} warps={warps}"] = per_step
        print(f"decode_attention bn={bn:3d} warps={warps}: {per_step:8.1f} µs per step")
        if per_step < best_a[0]:
            best_a = (per_step, (bn, warps))
    if hd <= 128:
        kernels.ATTN_BN, kernels.ATTN_WARPS = best_a[1]
    else:
        kernels.ATTN_BN_WIDE, kernels.ATTN_WARPS = best_a[1]
    report["best_attention"] = best_a[1]
    print(f"decode_attention chosen (head_dim {hd}): bn={best_a[1][0]} warps={kernels.ATTN_WARPS}")
    return report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--prompt", type=int, default=128)
    parser.add_argument("--new", type=int, default=128)
    parser.add_argument("--adapters", type=int, default=4)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--layers", type=int, default=0, help="override the shape's layer count")
    parser.add_argument("--family", choices=sorted(FAMILY_SHAPES), default="", help="the family's 1-2B shape")
    parser.add_argument(
        "--shape", choices=sorted(SHAPES), default="", help="a shape by name (default: llama)"
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="CPU, float32, the shape's family on a tiny model, batch 4, 16+8 tokens: checks the bench runs",
    )
    parser.add_argument("--naive-new", type=int, default=32, help="new tokens for the (slow) naive peft runs")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--quick", action="store_true", help="default engine only: no ablations, no naive path"
    )
    parser.add_argument(
        "--lean",
        action="store_true",
        help="default engine and the naive path only: no kernel checks, sweep, ablations, profiles or batch 1 "
        "(for a short GPU lease)",
    )
    parser.add_argument("--work", default="/tmp/evalhub-bench-generation")
    parser.add_argument("--out", default="")
    parser.add_argument(
        "--long", type=int, default=0, help="prompt tokens of the long-input case (e.g. 4096)"
    )
    parser.add_argument("--long-batch", type=int, default=16, help="rows of the long-input case")
    parser.add_argument("--prefill-chunk", type=int, default=0, help="engine prefill chunk (0: the default)")
    args = parser.parse_args()
    if args.family and args.shape:
        parser.error("give --family or --shape, not both")
    shape = args.shape or FAMILY_SHAPES[args.family or "llama"]
    if args.smoke:
        args.batch, args.prompt, args.new, args.naive_new, args.repeat = 4, 16, 8, 8, 1
        args.rank = 4
    elif not torch.cuda.is_available():
        parser.error("this benchmark needs a CUDA GPU (--smoke runs a tiny model on the CPU)")
    device, dtype = ("cpu", torch.float32) if args.smoke else ("cuda", torch.bfloat16)
    if args.long:
        long_input(args, device, dtype)
        return
    work = Path(args.work)
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "gpu": "cpu (smoke)" if args.smoke else torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "args": vars(args),
        "shape": shape,
    }
    import transformers

    report["transformers"] = transformers.__version__
    print(f"{report['gpu']}  torch {torch.__version__}  transformers {transformers.__version__}")

    t0 = time.perf_counter()
    config = shape_config(shape, layers=args.layers or None, smoke=args.smoke)
    model = build_model(work / "base", config, device, dtype)
    adapter_dirs = write_adapters(work, model, count=args.adapters, rank=args.rank)
    names = list(adapter_dirs)
    params = sum(p.numel() for p in model.parameters())
    print(
        f"shape {shape}{' (smoke: tiny)' if args.smoke else ''}: {config.model_type}, "
        f"{params / 1e9:.2f}B parameters; model + adapters written in {time.perf_counter() - t0:.1f} s"
    )
    if not args.smoke and not args.lean:
        report["kernel_checks"] = kernel_checks()
        report["sanity"] = sanity_on_gpu(work / "base", adapter_dirs, work)

    rng = torch.Generator().manual_seed(2)
    words = torch.randint(2, config.vocab_size, (args.batch, args.prompt - 1), generator=rng).tolist()
    prompts = [" ".join(f"w{w}" for w in row) for row in words]
    mixed = [names[i % len(names)] for i in range(args.batch)]
    gen_config = GenerationConfig(max_new_tokens=args.new, use_chat_template=False)
    lora_params = sum(
        (m.weight.shape[0] + m.weight.shape[1]) * args.rank
        for n, m in model.named_modules()
        if n.rsplit(".", 1)[-1] in TARGETS
    )
    roof = roofline(model, batch=args.batch, prompt=args.prompt, new=args.new, lora_params=0)
    roof_lora = roofline(
        model, batch=args.batch, prompt=args.prompt, new=args.new, lora_params=lora_params * args.adapters
    )
    report["roofline"] = {"base": roof, "lora4": roof_lora}

    # ---- evalhub hf backend -----------------------------------------------------------------
    t0 = time.perf_counter()
    backend = HFBackend(device=device, dtype=dtype, max_batch_size=args.batch, check_every=32)
    backend.load(work / "base", adapter_dirs)
    print(f"backend loaded in {time.perf_counter() - t0:.1f} s (path: {backend.path})")
    assert backend.path == "fast", f"{shape} is not on the fast engine"
    # transformers 5 swaps in the model type's own tokenizer class (Qwen2Tokenizer, ...), which
    # mangles the bench's word-level vocabulary; real checkpoints ship matching tokenizers.
    backend.tokenizer = word_tokenizer(work / "base")
    backend._eos = set()  # and its EOS: random weights never stop early, as the config says
    tokens = backend.tokenizer(prompts[0])["input_ids"]
    assert len(tokens) == args.prompt, len(tokens)

    def run(adapter_of_row: list[str | None], batch: int = args.batch) -> list[Any]:
        requests = [
            GenerationRequest(key=i, prompt=prompts[i], adapter=adapter_of_row[i]) for i in range(batch)
        ]
        return backend.generate(requests, gen_config)

    rows: list[tuple[str, float, float]] = []  # (label, tok/s, roofline tok/s)
    results: dict[str, Any] = {}
    cases = {
        "mixed4": mixed,
        "one_adapter": [names[0]] * args.batch,
        "base": [None] * args.batch,
    }
    engine: Any = backend._stepper
    if not args.smoke and not args.lean:
        report["sweep"] = kernel_sweep(engine, args.batch, args.prompt)
    default = {
        "fused_kernels": engine.fused_kernels,
        "attention": engine.attention,
        "merge_single_adapter": True,
    }
    print(f"engine defaults: {default}")
    # (label, engine settings, cases to run)
    variants: list[tuple[str, dict[str, Any], list[str]]] = [("default", default, list(cases))]
    if engine.fused_kernels and not args.quick and not args.lean:
        variants += [
            ("LoRA expand without K spans", {**default, "spans": False}, ["mixed4"]),
            ("SDPA attention", {**default, "attention": "gqa"}, ["mixed4", "base"]),
            ("no merge (concat LoRA)", {**default, "merge_single_adapter": False}, ["one_adapter"]),
            ("eager step (no Triton)", {**default, "fused_kernels": False}, ["mixed4", "base"]),
        ]
    ids = [backend.tokenizer(p)["input_ids"] for p in prompts]
    variant_tokens: dict[str, list[Any]] = {}
    index = {n: i for i, n in enumerate(names)}
    for label, settings, wanted in variants:
        lora_spans(engine, settings.get("spans", True))
        for key, value in settings.items():
            if key != "spans":
                setattr(engine, key, value)
        engine.drop_states()
        for case in wanted:
            adapters = cases[case]
            t_first = time.perf_counter()
            run(adapters)  # warm-up: CUDA-graph capture for this shape
            first_s = time.perf_counter() - t_first
            secs, out = timed(lambda adapters=adapters: run(adapters), args.repeat)
            variant_tokens[f"{label}/{case}"] = [r.token_ids for r in out]
            made = sum(r.output_tokens for r in out)
            tok_s = made / secs
            # The engine directly, rows grouped by adapter as the backend's batches are.
            order = sorted(range(args.batch), key=lambda i, a=adapters: (a[i] is not None, a[i] or ""))
            rows_idx = [None if adapters[i] is None else index[adapters[i]] for i in order]
            step = decode_step_ms(backend, [ids[i] for i in order], rows_idx, args.new)
            prefill = prefill_ms(backend, [ids[i] for i in order], rows_idx, args.new)
            ref = roof_lora if case != "base" else roof
            name = f"evalhub hf [{label}] {case}"
            results[name] = {
                "tok_s": tok_s,
                "seconds": secs,
                "tokens": made,
                "decode_step_ms": step,
                "decode_tok_s": args.batch / step * 1e3,
                "first_call_s": first_s,
                "prefill_ms": prefill,
                "roofline_share": tok_s / ref["tok_s"],
            }
            rows.append((name, tok_s, ref["tok_s"]))
            print(
                f"{name:48s} {tok_s:9,.0f} tok/s  ({tok_s / ref['tok_s']:.1%} of roofline)  "
                f"step {step:.3f} ms = {args.batch / step * 1e3:,.0f} tok/s  prefill {prefill:.1f} ms  first {first_s:.1f} s"
            )
    # Variants against each other: the same greedy tokens up to bf16 rounding (random weights
    # have many near-ties, so rows drift apart after a while; a bug shows as ~0 common prefix).
    for a_key, b_key in [
        ("default/mixed4", "eager step (no Triton)/mixed4"),
        ("default/base", "eager step (no Triton)/base"),
        ("default/mixed4", "SDPA attention/mixed4"),
        ("default/base", "SDPA attention/base"),
        ("default/mixed4", "LoRA expand without K spans/mixed4"),
        ("default/one_adapter", "no merge (concat LoRA)/one_adapter"),
    ]:
        if a_key in variant_tokens and b_key in variant_tokens:
            pairs = zip(variant_tokens[a_key], variant_tokens[b_key], strict=True)
            common = [
                next((j for j, (a, b) in enumerate(zip(x, y, strict=True)) if a != b), len(x))
                for x, y in pairs
            ]
            agree = {
                "rows_identical": sum(c == args.new for c in common),
                "mean_common_prefix": statistics.mean(common),
            }
            results[f"agreement {a_key} vs {b_key}"] = agree
            print(f"greedy agreement {a_key} vs {b_key}: {agree}")
    lora_spans(engine, True)
    for key, value in default.items():
        setattr(engine, key, value)
    engine.drop_states()
    grouped = sorted(range(args.batch), key=lambda i: mixed[i])
    if not args.smoke and not args.lean:
        profile_step(backend, [ids[i] for i in grouped], [index[mixed[i]] for i in grouped], args.new, work)
    fast_tokens = {r.key: r.token_ids for r in run(mixed)}
    if not args.smoke and not args.lean:
        host_profile(lambda: run(mixed))

    # Batch-1 latency (adapter 0): per-token decode time, and end to end.
    single = [names[0]]
    if not args.lean:
        run(single, batch=1)
        secs, out = timed(lambda: run(single, batch=1), args.repeat)
        step1 = decode_step_ms(backend, ids[:1], [0], args.new)
        results["batch1"] = {
            "ms_per_token_decode": step1,
            "ms_per_token_end_to_end": secs * 1e3 / out[0].output_tokens,
        }
        print(
            f"batch 1 (one adapter): {step1:.3f} ms/token decode, {secs * 1e3 / out[0].output_tokens:.3f} ms/token end to end"
        )
    backend.close()  # frees the engine's weights, KV caches and graphs
    if device == "cuda":
        torch.cuda.empty_cache()

    naive_tok_s = float("nan")
    if not args.quick:
        # ---- naive path: HF generate(), peft adapter_names -----------------------------------------
        from peft import PeftModel

        peft_model = PeftModel.from_pretrained(model, str(adapter_dirs[names[0]]), adapter_name=names[0])
        for name in names[1:]:
            peft_model.load_adapter(str(adapter_dirs[name]), adapter_name=name)
        peft_model.eval()
        tok = word_tokenizer(work / "base")
        enc = tok(prompts, return_tensors="pt").to(device)
        naive_new = args.naive_new

        def naive(adapter_names: list[str] | None) -> Any:
            kwargs: dict[str, Any] = {"adapter_names": adapter_names} if adapter_names else {}
            target = peft_model if adapter_names else model
            with torch.inference_mode():
                return target.generate(
                    **enc,
                    max_new_tokens=naive_new,
                    min_new_tokens=naive_new,
                    do_sample=False,
                    pad_token_id=1,
                    **kwargs,
                )

        naive(mixed)
        secs, out = timed(lambda: naive(mixed), 1)
        naive_tok_s = args.batch * naive_new / secs
        results["naive peft mixed4"] = {"tok_s": naive_tok_s, "seconds": secs, "new_tokens": naive_new}
        rows.append(("naive peft generate(adapter_names) mixed4", naive_tok_s, roof_lora["tok_s"]))
        print(f"naive peft generate mixed4 ({naive_new} new tokens): {naive_tok_s:,.0f} tok/s")
        # Agreement in bf16 (different kernels round differently; random weights give near-ties).
        naive_rows = out[:, enc["input_ids"].shape[1] :].tolist()
        prefix = []
        for i, row in enumerate(naive_rows):
            fast = list(fast_tokens[i])[:naive_new]
            n = next((j for j, (a, b) in enumerate(zip(fast, row, strict=False)) if a != b), len(fast))
            prefix.append(n)
        results["agreement_with_naive"] = {
            "rows_identical": sum(p == naive_new for p in prefix),
            "mean_common_prefix": statistics.mean(prefix),
            "rows": len(prefix),
        }
        print(f"greedy agreement with naive peft ({dtype}): {results['agreement_with_naive']}")
        with peft_model.disable_adapter():
            naive(None)
            secs, _ = timed(lambda: naive(None), 1)
        results["naive base"] = {"tok_s": args.batch * naive_new / secs}
        rows.append(("naive generate() base", args.batch * naive_new / secs, roof["tok_s"]))

    # ---- summary ----------------------------------------------------------------------------
    best = results["evalhub hf [default] mixed4"]["tok_s"]
    report["results"] = results
    report["ratio_vs_naive_mixed4"] = best / naive_tok_s
    print()
    print(
        f"roofline: bytes/step = weights {roof['weight_bytes'] / 1e9:.2f} GB (+LoRA {(roof_lora['weight_bytes'] - roof['weight_bytes']) / 1e6:.0f} MB)"
        f" + KV {roof['kv_bytes'] / 1e6:.0f} MB at mean context {args.prompt + args.new / 2:.0f}; / {HBM_BYTES_PER_S / 1e12:.2f} TB/s"
        f" -> base {roof['tok_s']:,.0f} tok/s, 4 LoRA {roof_lora['tok_s']:,.0f} tok/s (ENVIRONMENT.md: {ENV_ROOFLINE_TOK_S:,})"
    )
    print(f"{'path':56s} {'tok/s':>9s} {'roofline':>9s} {'vs 97k':>7s}")
    for label, tok_s, ref in rows:
        print(f"{label:56s} {tok_s:9,.0f} {tok_s / ref:9.1%} {tok_s / ENV_ROOFLINE_TOK_S:7.1%}")
    print(f"ratio evalhub / naive (4 adapters mixed): {report['ratio_vs_naive_mixed4']:.1f}x")
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "generation_bench.json").write_text(json.dumps(report, indent=2, default=str))


def peak_reset(cuda: bool) -> int:
    """Start a peak-memory window; returns the memory allocated now (0 on the CPU: not measured)."""
    if not cuda:
        return 0
    torch.cuda.reset_peak_memory_stats()
    return torch.cuda.memory_allocated()


def peak_since(cuda: bool, base: int) -> int:
    return torch.cuda.max_memory_allocated() - base if cuda else 0


def long_input(args: Any, device: str, dtype: torch.dtype) -> None:
    """One long-input case: ``args.long`` prompt tokens per row, ``args.new`` new, 4 adapters mixed.

    evalhub with chunked prefill (the default chunk) against one-shot prefill (chunk = the prompt)
    and the naive peft generate() path, each with its peak GPU memory, all in this run.
    """
    import transformers
    from peft import PeftModel

    from evalhub.generation.llama import DEFAULT_PREFILL_CHUNK

    work = Path(args.work) / f"long{args.long}"
    batch, plen, new = args.long_batch, args.long, args.new
    chunk = args.prefill_chunk or DEFAULT_PREFILL_CHUNK
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "gpu": torch.cuda.get_device_name() if device == "cuda" else "cpu (smoke)",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "args": vars(args),
    }
    print(
        f"{report['gpu']}  long input: batch {batch} x {plen} prompt + {new} new tokens, prefill chunk {chunk}"
    )
    config = shape_config("tinyllama-1.1b", layers=args.layers or None, smoke=args.smoke)
    config.max_position_embeddings = plen + new + 64
    model = build_model(work / "base", config, device, dtype)
    cuda = device == "cuda"
    adapter_dirs = write_adapters(work, model, count=args.adapters, rank=args.rank)
    names = list(adapter_dirs)
    lora_params = sum(
        (m.weight.shape[0] + m.weight.shape[1]) * args.rank
        for n, m in model.named_modules()
        if n.rsplit(".", 1)[-1] in TARGETS
    )
    roof = roofline(model, batch=batch, prompt=plen, new=new, lora_params=lora_params * args.adapters)
    params = sum(p.numel() for p in model.parameters())
    model.to("cpu")
    if cuda:
        torch.cuda.empty_cache()
    rng = torch.Generator().manual_seed(3)
    words = torch.randint(2, config.vocab_size, (batch, plen - 1), generator=rng).tolist()
    prompts = [" ".join(f"w{w}" for w in row) for row in words]
    mixed = [names[i % len(names)] for i in range(batch)]
    config = GenerationConfig(max_new_tokens=new, use_chat_template=False)
    requests = [GenerationRequest(key=i, prompt=prompts[i], adapter=mixed[i]) for i in range(batch)]
    results: dict[str, Any] = {}
    tokens: dict[str, list[Any]] = {}
    for label, prefill_chunk in (("chunked", chunk), ("one-shot", plen + 64)):
        backend = HFBackend(
            device=device,
            dtype=dtype,
            max_batch_size=batch,
            check_every=32,
            prefill_chunk=prefill_chunk,
        )
        backend.load(work / "base", adapter_dirs)
        ids = [backend.tokenizer(p)["input_ids"] for p in prompts]
        assert len(ids[0]) == plen, len(ids[0])
        batches: list[int] = []
        backend.generate(
            requests, config, on_batch=lambda done, seen=batches: seen.append(len(done))
        )  # warm-up
        base_mem = peak_reset(cuda)
        secs, out = timed(lambda be=backend: be.generate(requests, config), args.repeat)
        peak = peak_since(cuda, base_mem)
        made = sum(r.output_tokens for r in out)
        order = sorted(range(batch), key=lambda i: mixed[i])
        rows_idx = [names.index(mixed[i]) for i in order]
        pre = prefill_ms(backend, [ids[i] for i in order], rows_idx, new)
        step = decode_step_ms(backend, [ids[i] for i in order], rows_idx, new)
        tokens[label] = [r.token_ids for r in out]
        results[f"evalhub {label}"] = {
            "prefill_chunk": prefill_chunk,
            "tok_s": made / secs,
            "seconds": secs,
            "batches": batches,
            "prefill_ms": pre,
            "prefill_tok_s": batch * plen / pre * 1e3,
            "prefill_tflop_s": 2 * params * batch * plen / pre / 1e9,
            "decode_step_ms": step,
            "decode_roofline_share": roof["step_ms"] / step,
            "peak_mem_gb_beyond_weights": peak / 1e9,
        }
        print(
            f"evalhub {label:9s} (chunk {prefill_chunk}): {made / secs:9,.0f} tok/s end to end, batches {batches}, "
            f"prefill {pre:.0f} ms ({batch * plen / pre * 1e3:,.0f} tok/s), decode step {step:.2f} ms "
            f"({roof['step_ms'] / step:.1%} of roofline), peak {peak / 1e9:.1f} GB beyond weights"
        )
        backend.close()
        del backend
        if cuda:
            torch.cuda.empty_cache()
    common = [
        next((j for j, (a, b) in enumerate(zip(x, y, strict=True)) if a != b), len(x))
        for x, y in zip(tokens["chunked"], tokens["one-shot"], strict=True)
    ]
    results["agreement chunked vs one-shot"] = {
        "rows_identical": sum(c == new for c in common),
        "mean_common_prefix": statistics.mean(common),
    }
    print(f"greedy agreement chunked vs one-shot (bf16): {results['agreement chunked vs one-shot']}")

    # ---- naive path: HF generate() + peft adapter_names, the whole prompt in one forward ----------
    model.to(device)
    peft_model = PeftModel.from_pretrained(model, str(adapter_dirs[names[0]]), adapter_name=names[0])
    for name in names[1:]:
        peft_model.load_adapter(str(adapter_dirs[name]), adapter_name=name)
    peft_model.eval()
    tok = transformers.AutoTokenizer.from_pretrained(work / "base")
    enc = tok(prompts, return_tensors="pt").to(device)
    naive_new = new  # as many tokens as evalhub makes: the prefill weighs the same in both

    def naive() -> Any:
        with torch.inference_mode():
            return peft_model.generate(
                **enc,
                max_new_tokens=naive_new,
                min_new_tokens=naive_new,
                do_sample=False,
                pad_token_id=1,
                adapter_names=mixed,
            )

    try:
        naive()
        base_mem = peak_reset(cuda)
        secs, _ = timed(naive, 1)
        naive_peak = peak_since(cuda, base_mem)
        naive_tok_s = batch * naive_new / secs
        results["naive peft mixed4"] = {
            "tok_s": naive_tok_s,
            "seconds": secs,
            "new_tokens": naive_new,
            "peak_mem_gb_beyond_weights": naive_peak / 1e9,
        }
        print(
            f"naive peft generate mixed4 ({naive_new} new tokens): {naive_tok_s:,.0f} tok/s, "
            f"peak {naive_peak / 1e9:.1f} GB beyond weights"
        )
    except torch.cuda.OutOfMemoryError as exc:
        naive_tok_s = float("nan")
        results["naive peft mixed4"] = {"error": f"out of memory: {exc}"[:300]}
        print(f"naive peft generate mixed4: out of memory at batch {batch} x {plen}")
    best = results["evalhub chunked"]["tok_s"]
    report["results"] = results
    report["ratio_vs_naive"] = best / naive_tok_s
    print(
        f"ratio evalhub chunked / naive (end to end, 4 adapters mixed, {plen}-token prompts): {best / naive_tok_s:.1f}x"
    )
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / f"generation_long{plen}.json").write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
