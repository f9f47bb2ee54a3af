"""A hand-written multi-LoRA decode engine for Llama-architecture models and their relatives.

Why not ``generate()``: at batch 64 it spends its time launching small kernels and in
Python (2.6k tok/s on an H100, 284 tok/s with 4 peft adapters mixed per batch). Here:

* weights are read once from the HF model into fused matrices (q|k|v, gate|up);
* every adapter's LoRA A rows are appended to the base weight, so one GEMM gives the base
  output and all adapters' low-rank activations; a per-row 0/1 mask keeps only the row's own
  adapter, and one ``addmm`` with all adapters' concatenated (pre-scaled) B adds the delta;
* the KV cache is one preallocated tensor per layer; prompts are left-padded so every row
  writes the same slot at each step, and a [B, L] position mask hides padding and the future;
* on CUDA one whole decode step (embedding, layers, head, token choice, bookkeeping) is
  captured as a CUDA graph and replayed; on CPU the same step runs eagerly.

Qwen2/2.5, Qwen3, Mistral, Gemma 2 and Gemma 3 (text) are the Llama layer with a few switches,
each described by a :class:`Family` (see ``FAMILIES``); biases on q/k/v (Qwen2) need no switch:
any linear's bias is fused with its weight.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from evalhub.generation import kernels
from evalhub.generation.adapters import LoraAdapter
from evalhub.generation.capacity import available_bytes, check_context
from evalhub.generation.errors import GenerationError
from evalhub.generation.sampling import choose_tokens

log = logging.getLogger(__name__)


EMBEDDING, HEAD = "model.embed_tokens", "lm_head"  # module paths of LoRA on the embeddings / LM head
#: Prompt tokens per row in one prefill forward: long prompts are prefilled in chunks of this many,
#: so one chunk's activations (not the whole prompt's) are alive at once.
DEFAULT_PREFILL_CHUNK = 512


@dataclass(frozen=True)
class Family:
    """What one model family changes in the Llama decoder layer (read from transformers'
    ``models/<type>/modeling_<type>.py``). Numbers that vary per checkpoint (sliding window,
    soft-capping values, query scale, rope tables) are read from the config by the engine."""

    #: config attribute naming the MLP gate's activation
    activation_key: str = "hidden_act"
    #: RMSNorm on each q and k head before RoPE (Qwen3, Gemma 3)
    qk_norm: bool = False
    #: RMSNorm scales by (1 + w) in float32 and rounds once (Gemma); Llama rounds, then scales by w
    gemma_norm: bool = False
    #: RMSNorm on the attention output and on the MLP output too (Gemma 2 and 3)
    sandwich_norms: bool = False
    #: embeddings multiplied by sqrt(hidden_size), rounded to the model dtype (Gemma)
    embed_scale: bool = False
    #: tanh soft-capping of attention scores by config.attn_logit_softcapping (Gemma 2; Gemma 3's
    #: attention does not pass it on)
    attn_softcap: bool = False
    #: sliding-window layers have their own RoPE table (Gemma 3: rope_local_base_freq)
    local_rope: bool = False


_GEMMA = Family(activation_key="hidden_activation", gemma_norm=True, sandwich_norms=True, embed_scale=True)
FAMILIES: dict[str, Family] = {
    "llama": Family(),
    "mistral": Family(),  # a sliding window where config.sliding_window is set
    "qwen2": Family(),  # q/k/v biases; sliding layers per config.layer_types where enabled
    "qwen3": Family(qk_norm=True),
    "gemma2": Family(**{**_GEMMA.__dict__, "attn_softcap": True}),
    "gemma3_text": Family(**{**_GEMMA.__dict__, "qk_norm": True, "local_rope": True}),
}
SUPPORTED_MODEL_TYPES = frozenset(FAMILIES)

#: HF activation names -> the engine's (and kernels.ACTIVATIONS') names
_ACTIVATIONS = {"silu": "silu", "gelu_pytorch_tanh": "gelu_tanh"}

# Fused projection groups: (group name, block, [sub-module names]).
_GROUPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("qkv", "self_attn", ("q_proj", "k_proj", "v_proj")),
    ("o", "self_attn", ("o_proj",)),
    ("gate_up", "mlp", ("gate_proj", "up_proj")),
    ("down", "mlp", ("down_proj",)),
)
_LAYER_TYPES = {"full_attention", "sliding_attention"}


def layer_windows(config: Any) -> list[int | None]:
    """Each layer's sliding window (None: full attention), as transformers builds the masks.

    Gemma 2/3 and Qwen2/3 name each layer's kind in ``layer_types``; Mistral slides every layer
    when ``sliding_window`` is set.
    """
    n = int(config.num_hidden_layers)
    window = getattr(config, "sliding_window", None)
    types = getattr(config, "layer_types", None)
    if types is not None:
        return [int(window) if t == "sliding_attention" and window else None for t in types[:n]]
    return [int(window) if window else None] * n


def _rope_types(config: Any) -> set[str]:
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    if not isinstance(rope, dict):
        return set()
    # Gemma 3 keeps one parameter set per layer type.
    sets = [v for v in rope.values() if isinstance(v, dict)] or [rope]
    return {str(r.get("rope_type", r.get("type", "default"))) for r in sets}


def unsupported_reason(model: torch.nn.Module, adapters: dict[str, LoraAdapter]) -> str | None:
    """Why the fast engine cannot serve this model/adapters (None if it can)."""
    config: Any = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    family = FAMILIES.get(str(model_type))
    if family is None:
        return f"model_type {model_type!r} is not one of the fast engine's families {sorted(FAMILIES)}"
    act = getattr(config, family.activation_key, "silu")
    if act not in _ACTIVATIONS:
        return f"{family.activation_key} {act!r} is not one of {sorted(_ACTIVATIONS)}"
    dynamic = _rope_types(config) & {"dynamic", "longrope"}
    if dynamic:
        return f"rope type {sorted(dynamic)[0]!r} depends on the sequence length"
    if getattr(config, "use_bidirectional_attention", False):
        return "use_bidirectional_attention is set (the engine decodes causally)"
    other = set(getattr(config, "layer_types", None) or ()) - _LAYER_TYPES
    if other:
        return f"layer_types {sorted(other)} (only full and sliding-window attention)"
    known = {
        f"model.layers.{i}.{blk}.{sub}"
        for i in range(config.num_hidden_layers)
        for _, blk, subs in _GROUPS
        for sub in subs
    } | {EMBEDDING, HEAD}
    modules = dict(model.named_modules())
    for adapter in adapters.values():
        if adapter.uses_dora() and {EMBEDDING, HEAD} & set(adapter.modules):
            return (
                f"adapter {adapter.name!r} uses DoRA (use_dora) on embed_tokens or lm_head: the fast "
                "engine merges DoRA into the attention/MLP linears only"
            )
        if adapter.unsupported:
            return f"adapter {adapter.name!r} uses {adapter.unsupported[:3]} (not plain LoRA)"
        if family.embed_scale and EMBEDDING in adapter.modules:
            # Gemma 2 scales embed_tokens' output (LoRA included) in the model, Gemma 3 inside the
            # embedding module (LoRA delta not scaled): not checked against peft here, so refused.
            return f"adapter {adapter.name!r} has embed_tokens LoRA on a Gemma model (scaled embeddings)"
        extra = set(adapter.modules) - known
        if extra:
            return (
                f"adapter {adapter.name!r} targets {sorted(extra)[:3]} (the fast engine applies LoRA to "
                "attention/MLP linears, embed_tokens and lm_head)"
            )
        for module, saved in adapter.saved_weights.items():
            weight = getattr(modules.get(module), "weight", None)
            if (
                weight is None
                or weight.shape != saved.shape
                or not torch.equal(weight, saved.to(weight.dtype))
            ):
                return (
                    f"adapter {adapter.name!r} carries its own {module} weights, not the base model's "
                    "(resized or retrained vocabulary)"
                )
    return None


@dataclass
class _Linear:
    """A fused linear layer with all adapters' LoRA A rows appended to the weight."""

    weight: torch.Tensor  # [out + n_lora_cols, in]
    bias: torch.Tensor | None  # [out + n_lora_cols] or None
    out: int
    lora_b: torch.Tensor | None  # [out, n_sub * R] pre-scaled, or None when no adapter targets it
    n_sub: int  # how many sub-modules carry LoRA columns (mask repeat count)
    # Triton path: per column tile (keyed by tile width), the K blocks where lora_b is non-zero.
    col_ranges: dict[int, torch.Tensor] | None = None
    merged: torch.Tensor | None = None  # base + one adapter's delta (single-adapter batches)
    names: tuple[str, ...] = ()  # the fused sub-modules' paths, in row order
    outs: tuple[int, ...] = ()  # their output sizes

    def base_weight(self) -> torch.Tensor:
        return self.weight[: self.out]


@dataclass
class _Layer:
    in_norm: torch.Tensor
    post_norm: torch.Tensor  # the norm before the MLP (Gemma: pre_feedforward_layernorm)
    linears: dict[str, _Linear]
    cos: torch.Tensor  # [max positions, head_dim] RoPE table (shared by layers of one kind)
    sin: torch.Tensor
    window: int | None = None  # sliding window (keys > query - window), None: full attention
    q_norm: torch.Tensor | None = None  # per-head q/k RMSNorm weights (Qwen3, Gemma 3)
    k_norm: torch.Tensor | None = None
    attn_out_norm: torch.Tensor | None = None  # Gemma: post_attention_layernorm on the o output
    mlp_out_norm: torch.Tensor | None = None  # Gemma: post_feedforward_layernorm on the MLP output

    @property
    def qk_norms(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        return None if self.q_norm is None or self.k_norm is None else (self.q_norm, self.k_norm)


@dataclass
class _BatchState:
    """Static buffers for one (batch size, cache length, mode); a CUDA graph reads/writes them."""

    batch: int
    length: int
    mode: str  # "base": no adapter in the batch; "mixed": per-row LoRA; "merged": one adapter, merged
    greedy: bool
    cache: list[tuple[torch.Tensor, torch.Tensor]]
    tok: torch.Tensor  # [B] next input token
    pad: torch.Tensor  # [B] left padding per row
    seeds: torch.Tensor  # [B]
    slot: torch.Tensor  # 0-d: cache slot the next token is written to
    step: torch.Tensor  # 0-d: index of the next generated token
    out: torch.Tensor  # [B, max_new] generated tokens
    masks: dict[int, torch.Tensor]  # n_sub -> [B, n_sub * R] LoRA row masks
    row_ranges: torch.Tensor  # [row tiles, 2] adapter column span per tile of rows (Triton path)
    temperature: float = 1.0
    top_p: float = 1.0
    graph: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


class FastEngine:
    """Prefill + decode for a batch of left-padded prompts with per-row adapters."""

    def __init__(
        self,
        model: torch.nn.Module,
        adapters: dict[str, LoraAdapter],
        *,
        device: torch.device,
        dtype: torch.dtype,
        use_cuda_graph: bool | None = None,
        attention: str = "auto",
        fused_kernels: bool | None = None,
        merge_single_adapter: bool | None = None,
        prefill_chunk: int = DEFAULT_PREFILL_CHUNK,
    ) -> None:
        config: Any = model.config
        if prefill_chunk < 1:
            raise ValueError(f"prefill_chunk must be >= 1, not {prefill_chunk}")
        #: Prompt tokens per row prefilled in one forward; longer prompts go in chunks.
        self.prefill_chunk = int(prefill_chunk)
        self.family = FAMILIES[config.model_type]
        self.activation = _ACTIVATIONS[getattr(config, self.family.activation_key, "silu")]
        self.device = device
        self.dtype = dtype
        self.n_heads = int(config.num_attention_heads)
        self.n_kv = int(config.num_key_value_heads or self.n_heads)
        self.head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // self.n_heads)
        self.hidden = int(config.hidden_size)
        self.eps = float(config.rms_norm_eps)
        self.max_positions = int(config.max_position_embeddings)
        scalar = getattr(config, "query_pre_attn_scalar", None)  # Gemma: scores * scalar^-0.5
        self.scale = float(scalar) ** -0.5 if scalar else self.head_dim**-0.5
        cap = getattr(config, "attn_logit_softcapping", None) if self.family.attn_softcap else None
        self.attn_softcap: float | None = float(cap) if cap else None
        cap = getattr(config, "final_logit_softcapping", None)
        self.final_softcap: float | None = float(cap) if cap else None
        self.use_cuda_graph = device.type == "cuda" if use_cuda_graph is None else use_cuda_graph
        if attention not in {"auto", "triton", "grouped", "gqa", "bmm"}:
            raise ValueError("attention must be 'auto', 'triton', 'grouped', 'gqa' or 'bmm'")
        # Triton kernels for the decode step: on by default where they run (CUDA + Triton);
        # forcing them on a CPU tensor works only under TRITON_INTERPRET=1 (used in tests).
        self.fused_kernels = kernels.available(device) if fused_kernels is None else fused_kernels
        if self.fused_kernels and not kernels.HAVE_TRITON:
            raise ValueError("fused_kernels=True needs Triton, which is not installed")
        # Decode attention. "auto" is the flash-decoding kernel (kernels.decode_attention) where
        # the fused step runs and the head size is a power of two, else SDPA with enable_gqa; on
        # an H100 the kernel beat SDPA (bench/RESULTS.md). The eager step always uses SDPA.
        pow2_head = self.head_dim >= 16 and self.head_dim & (self.head_dim - 1) == 0
        if attention == "auto":
            attention = "triton" if self.fused_kernels and pow2_head else "gqa"
        if attention == "triton" and not pow2_head:
            raise ValueError(f"attention='triton' needs a power-of-two head_dim >= 16, not {self.head_dim}")
        if self.attn_softcap is not None and attention in {"grouped", "bmm"}:
            raise ValueError(f"attention={attention!r} cannot soft-cap scores; use 'triton' or 'gqa'")
        self.attention = attention
        # A batch whose rows all use one adapter runs on base+delta merged weights (one extra
        # weight copy, re-merged in place when the adapter changes): base-model speed.
        self.merge_single_adapter = (
            device.type == "cuda" if merge_single_adapter is None else merge_single_adapter
        )
        self._merged_for: int | None = None
        self.adapter_names = list(adapters)
        self._adapters = list(adapters.values())
        #: DoRA adapters (by index): served only on merged weights, one adapter per batch.
        self.dora = {k for k, a in enumerate(self._adapters) if a.uses_dora()}
        self._states: dict[tuple[int, int, str, bool, float, float], _BatchState] = {}

        # Each adapter owns a fixed block of LoRA columns (its largest rank) in every module,
        # so one row mask serves all modules.
        widths = [max((m.rank for m in a.modules.values()), default=0) for a in adapters.values()]
        self.lora_offsets = [sum(widths[:i]) for i in range(len(widths))]
        self.lora_widths = widths
        self.lora_cols = sum(widths)

        def param(t: torch.Tensor) -> torch.Tensor:
            return t.detach().to(device=device, dtype=dtype).contiguous()

        def norm(module: Any) -> torch.Tensor:
            # Gemma's (1 + w), folded in once, kept in float32 as Gemma's RMSNorm computes it.
            if self.family.gemma_norm:
                return (1.0 + module.weight.detach().float()).to(device).contiguous()
            return param(module.weight)

        inner: Any = model.model
        self.embed = param(inner.embed_tokens.weight)
        # Gemma multiplies the embeddings by sqrt(hidden) rounded to the model dtype.
        self.embed_scale = (
            torch.tensor(self.hidden**0.5, dtype=dtype, device=device) if self.family.embed_scale else None
        )
        self.final_norm = norm(inner.norm)
        head_module: Any = model.get_output_embeddings()  # type: ignore[operator]
        self.lm_head = param(head_module.weight)
        # LoRA on the LM head: a fused linear like the others (base rows + LoRA A rows).
        self.head: _Linear | None = None
        if any(HEAD in a.modules for a in adapters.values()):
            self.head = self._fuse([head_module], [HEAD], adapters, param, act=False)
        # LoRA on the embeddings: every adapter's A^T as a [vocab, R] table (its block of columns),
        # looked up per token, then the pre-scaled B [hidden, R] of the row's own adapter.
        self.embed_lora: tuple[torch.Tensor, torch.Tensor] | None = None
        self.merged_embed: torch.Tensor | None = None
        if any(EMBEDDING in a.modules for a in adapters.values()):
            table = torch.zeros(self.embed.shape[0], self.lora_cols, dtype=torch.float32)
            lora_b = torch.zeros(self.hidden, self.lora_cols, dtype=torch.float32)
            for k, adapter in enumerate(adapters.values()):
                lora = adapter.modules.get(EMBEDDING)
                if lora is not None:
                    off = self.lora_offsets[k]
                    table[:, off : off + lora.rank] = lora.a.float().t()
                    lora_b[:, off : off + lora.rank] = lora.b.float() * lora.scale
            self.embed_lora = (param(table), param(lora_b))
        tables = self._rope_tables(inner, config)
        windows = layer_windows(config)
        self.layers: list[_Layer] = []
        for i, layer in enumerate(inner.layers):
            linears = {}
            for group, block, subs in _GROUPS:
                modules = [getattr(getattr(layer, block), sub) for sub in subs]
                names = [f"model.layers.{i}.{block}.{sub}" for sub in subs]
                linears[group] = self._fuse(modules, names, adapters, param, act=group == "gate_up")
            attn, sandwich = layer.self_attn, self.family.sandwich_norms
            cos, sin = tables[config.layer_types[i] if self.family.local_rope else "full_attention"]
            self.layers.append(
                _Layer(
                    in_norm=norm(layer.input_layernorm),
                    post_norm=norm(
                        layer.pre_feedforward_layernorm if sandwich else layer.post_attention_layernorm
                    ),
                    linears=linears,
                    cos=cos,
                    sin=sin,
                    window=windows[i],
                    q_norm=norm(attn.q_norm) if self.family.qk_norm else None,
                    k_norm=norm(attn.k_norm) if self.family.qk_norm else None,
                    attn_out_norm=norm(layer.post_attention_layernorm) if sandwich else None,
                    mlp_out_norm=norm(layer.post_feedforward_layernorm) if sandwich else None,
                )
            )
        self.windows = sorted({w for w in windows if w is not None})
        self.positions = torch.arange(self.max_positions, device=device)

    def _rope_tables(self, inner: Any, config: Any) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """cos/sin [max positions, head_dim] per layer kind, from the model's own rotary module,
        so every rope type HF implements (linear, llama3, yarn, ...) gives the same angles here.
        One table for all layers, except Gemma 3's own table for its sliding-window layers."""
        rotary = inner.rotary_emb
        rope_device = next(iter(rotary.buffers())).device
        positions = torch.arange(self.max_positions, device=rope_device).unsqueeze(0)
        probe = torch.zeros(1, dtype=torch.float32, device=rope_device)
        kinds = sorted(set(config.layer_types)) if self.family.local_rope else ["full_attention"]
        tables = {}
        for kind in kinds:
            cos, sin = rotary(probe, positions, kind) if self.family.local_rope else rotary(probe, positions)
            tables[kind] = (
                cos[0].to(device=self.device, dtype=self.dtype).contiguous(),
                sin[0].to(device=self.device, dtype=self.dtype).contiguous(),
            )
        return tables

    def _fuse(
        self,
        modules: list[Any],
        names: list[str],
        adapters: dict[str, LoraAdapter],
        param: Any,
        *,
        act: bool,
    ) -> _Linear:
        weights: list[torch.Tensor] = [m.weight for m in modules]
        outs = [int(w.shape[0]) for w in weights]
        in_features = int(weights[0].shape[1])
        biases: list[torch.Tensor | None] = [m.bias for m in modules]
        targeted = [j for j, name in enumerate(names) if any(name in a.modules for a in adapters.values())]
        r = self.lora_cols
        a_rows: list[torch.Tensor] = []
        lora_b: torch.Tensor | None = None
        if targeted and r:
            lora_b = torch.zeros(sum(outs), len(targeted) * r, dtype=torch.float32)
            for t_index, j in enumerate(targeted):
                a_block = torch.zeros(r, in_features, dtype=torch.float32)
                row0 = sum(outs[:j])
                for k, adapter in enumerate(adapters.values()):
                    lora = adapter.modules.get(names[j])
                    if lora is None:
                        continue
                    off = self.lora_offsets[k]
                    a_block[off : off + lora.rank] = lora.a.float()
                    col0 = t_index * r + off
                    lora_b[row0 : row0 + outs[j], col0 : col0 + lora.rank] = lora.b.float() * lora.scale
                a_rows.append(a_block)
        # Concatenate on the target device in the model dtype: no float32 copy of a large model in RAM.
        weight = torch.cat([param(w) for w in weights] + [param(a) for a in a_rows], dim=0)
        bias = None
        if any(b is not None for b in biases):
            parts = [
                (b.detach().float() if b is not None else torch.zeros(o))
                for b, o in zip(biases, outs, strict=True)
            ]
            parts.append(torch.zeros(len(a_rows) * r))
            bias = param(torch.cat(parts))
        col_ranges = None
        if lora_b is not None and kernels.HAVE_TRITON:
            # every column-tile width the tile shapes use (decode and prefill, plain and gate|up)
            col_ranges = {
                bn: kernels.lora_col_ranges(lora_b, sum(outs), act=act, block=r, bn=bn).to(self.device)
                for bn in kernels.lora_widths()
            }
        return _Linear(
            weight=param(weight),
            bias=bias,
            out=sum(outs),
            lora_b=param(lora_b) if lora_b is not None else None,
            n_sub=len(targeted),
            col_ranges=col_ranges,
            names=tuple(names),
            outs=tuple(outs),
        )

    # ---- building blocks -------------------------------------------------------------------

    def _norm(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        # Same arithmetic as LlamaRMSNorm (float32 statistics, weight applied in model dtype),
        # or Gemma's (float32 weight 1 + w, one rounding at the end).
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        if self.family.gemma_norm:
            return (h * weight).to(x.dtype)
        return weight * h.to(x.dtype)

    def _add_norm(self, x: torch.Tensor, delta: torch.Tensor | None, weight: torch.Tensor) -> torch.Tensor:
        """The fused path's residual add + RMSNorm (x updated in place)."""
        return kernels.add_rmsnorm(x, delta, weight, self.eps, norm_f32=self.family.gemma_norm)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """softmax(q k^T * scale + mask) v; q [B, H, T, D], k/v [B, KV, S, D] (H a multiple of KV);
        ``mask`` boolean (True: visible) or additive, broadcastable to [B, H, T, S]."""
        if self.attn_softcap is None:
            return F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, scale=self.scale, enable_gqa=q.shape[1] != k.shape[1]
            )
        # Gemma 2's soft-capped scores, which SDPA cannot do: HF's eager attention.
        group = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        scores = torch.matmul(q, k.transpose(2, 3)) * self.scale
        scores = torch.tanh(scores / self.attn_softcap) * self.attn_softcap
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
        return torch.matmul(torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype), v)

    def _windowed(self, mask: torch.Tensor, queries: torch.Tensor) -> dict[int | None, torch.Tensor]:
        """The boolean mask [..., T, S] and, per sliding window w, the same mask restricted to keys
        > query - w (``queries`` [T]: the queries' cache slots; keys are slots 0..S-1)."""
        keys = self.positions[: mask.shape[-1]]
        out: dict[int | None, torch.Tensor] = {None: mask}
        for w in self.windows:
            out[w] = mask & (keys.view(1, -1) > queries.view(-1, 1) - w)
        return out

    def _qk_norm(self, qk: torch.Tensor, layer: _Layer) -> torch.Tensor:
        """qk [..., nh + nkv, D]: the per-head RMSNorm of q and of k (Qwen3, Gemma 3), or qk."""
        if layer.qk_norms is None:
            return qk
        nh, (q_norm, k_norm) = self.n_heads, layer.qk_norms
        return torch.cat([self._norm(qk[..., :nh, :], q_norm), self._norm(qk[..., nh:, :], k_norm)], dim=-2)

    def _linear(self, x: torch.Tensor, lin: _Linear, st: _BatchState, *, act: bool = False) -> torch.Tensor:
        """x [N, in] -> [N, out], base weight plus each row's own adapter delta.

        With ``act`` the layer is gate|up and act(gate) * up, [N, out / 2], is returned.
        """
        if st.mode == "mixed" and lin.lora_b is not None:
            y = F.linear(x, lin.weight, lin.bias)
            # Prefill rows are (batch, position) pairs, batch-major: the mask was repeated for them.
            decode = x.shape[0] == st.batch
            mask = st.masks[lin.n_sub] if decode else st.extra["prefill_masks"][lin.n_sub]
            if self.fused_kernels:
                assert lin.col_ranges is not None
                rows = st.row_ranges if decode else st.extra["prefill_row_ranges"]
                return kernels.lora_expand(
                    y, lin.out, mask, lin.lora_b, lin.col_ranges, rows, block=self.lora_cols, act=act,
                    activation=self.activation,
                )  # fmt: skip
            h = y[:, lin.out :] * mask
            out = torch.addmm(y[:, : lin.out], h, lin.lora_b.t())
        else:
            w = lin.merged if st.mode == "merged" and lin.merged is not None else lin.base_weight()
            out = F.linear(x, w, lin.bias[: lin.out] if lin.bias is not None else None)
        if not act:
            return out
        inter = out.shape[-1] // 2
        if self.fused_kernels:
            return kernels.gate_mul(out, inter, self.activation)
        gate = (
            F.silu(out[:, :inter])
            if self.activation == "silu"
            else F.gelu(out[:, :inter], approximate="tanh")
        )
        return gate * out[:, inter:]

    def _rope(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return x * cos + rotated * sin

    def _layers(
        self,
        x: torch.Tensor,
        st: _BatchState,
        *,
        pos: torch.Tensor,
        mask: torch.Tensor,
        write: slice | torch.Tensor,
    ) -> torch.Tensor:
        """Run all layers on x [B, T, hidden]: prefill of cache slots ``write`` (a slice: one chunk,
        attending to the cache so far and itself), or one decode step.

        ``pos`` [B, T]: each token's RoPE position; ``mask`` [B, 1, T, S] boolean, True: visible.
        """
        bsz, t, _ = x.shape
        nh, nkv, hd = self.n_heads, self.n_kv, self.head_dim
        q_size, kv_size = nh * hd, nkv * hd
        queries = self.positions[write] if isinstance(write, slice) else write
        masks = self._windowed(mask, queries)
        rope: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        for layer, (k_cache, v_cache) in zip(self.layers, st.cache, strict=True):
            if id(layer.cos) not in rope:
                rope[id(layer.cos)] = (layer.cos[pos].unsqueeze(2), layer.sin[pos].unsqueeze(2))
            cos, sin = rope[id(layer.cos)]
            h = self._norm(x, layer.in_norm).view(bsz * t, self.hidden)
            qkv = self._linear(h, layer.linears["qkv"], st).view(bsz, t, q_size + 2 * kv_size)
            qk = self._qk_norm(qkv[..., : q_size + kv_size].view(bsz, t, nh + nkv, hd), layer)
            qk = self._rope(qk, cos, sin)
            q = qk[:, :, :nh]
            k = qk[:, :, nh:].transpose(1, 2)
            v = qkv[..., q_size + kv_size :].view(bsz, t, nkv, hd).transpose(1, 2)
            mask = masks[layer.window]
            if isinstance(write, slice):  # prefill chunk: attend over the cache so far + the chunk
                k_cache[:, :, write] = k
                v_cache[:, :, write] = v
                attn = self._attend(
                    q.transpose(1, 2), k_cache[:, :, : write.stop], v_cache[:, :, : write.stop], mask
                ).transpose(1, 2)
            else:
                k_cache.index_copy_(2, write, k)
                v_cache.index_copy_(2, write, v)
                if self.attention == "grouped":
                    # Query heads that share a KV head become "positions" of one group: no
                    # K/V expansion, one SDPA over [B, KV, group, D] x [B, KV, L, D].
                    attn = self._attend(q.reshape(bsz, nkv, nh // nkv, hd), k_cache, v_cache, mask)
                else:
                    attn = self._attend(q.transpose(1, 2), k_cache, v_cache, mask)
            o = self._linear(attn.reshape(bsz * t, q_size), layer.linears["o"], st)
            if layer.attn_out_norm is not None:
                o = self._norm(o, layer.attn_out_norm)
            x = x + o.view(bsz, t, self.hidden)
            h = self._norm(x, layer.post_norm).view(bsz * t, self.hidden)
            act = self._linear(h, layer.linears["gate_up"], st, act=True)
            down = self._linear(act, layer.linears["down"], st)
            if layer.mlp_out_norm is not None:
                down = self._norm(down, layer.mlp_out_norm)
            x = x + down.view(bsz, t, self.hidden)
        return x

    def _embed(self, ids: torch.Tensor, st: _BatchState) -> torch.Tensor:
        """Token embeddings [*ids.shape, hidden], with each row's embedding LoRA where there is one
        (Gemma: then scaled, as the model scales embed_tokens' output, LoRA included)."""
        if self.embed_lora is None or st.mode == "base":
            x = F.embedding(ids, self.embed)
        elif st.mode == "merged":
            x = F.embedding(ids, self.merged_embed if self.merged_embed is not None else self.embed)
        else:
            table, lora_b = self.embed_lora
            flat = ids.reshape(-1)
            mask = st.masks[1] if ids.dim() == 1 else st.extra["prefill_masks"][1]
            x = torch.addmm(F.embedding(flat, self.embed), F.embedding(flat, table) * mask, lora_b.t())
            x = x.view(*ids.shape, self.hidden)
        return x if self.embed_scale is None else x * self.embed_scale

    def _head(self, h: torch.Tensor, st: _BatchState) -> torch.Tensor:
        """Normed hidden states -> logits, with LM-head LoRA (Gemma: soft-capped by
        final_logit_softcapping)."""
        logits = F.linear(h, self.lm_head) if self.head is None else self._linear(h, self.head, st)
        if self.final_softcap is not None:
            logits = torch.tanh(logits / self.final_softcap) * self.final_softcap
        return logits

    def _logits(self, x_last: torch.Tensor, st: _BatchState) -> torch.Tensor:
        return self._head(self._norm(x_last, self.final_norm), st)

    def _choose(self, logits: torch.Tensor, st: _BatchState) -> torch.Tensor:
        return choose_tokens(
            logits, greedy=st.greedy, temperature=st.temperature, top_p=st.top_p, seeds=st.seeds, step=st.step
        )

    # ---- batch life cycle --------------------------------------------------------------------

    def _state(
        self,
        batch: int,
        length: int,
        max_new: int,
        mode: str,
        greedy: bool,
        temperature: float,
        top_p: float,
    ) -> _BatchState:
        # Bucket the cache length so batches of similar length reuse one state (and graph).
        # Sampling parameters are baked into a captured graph, so they are part of the key.
        length = min(-(-length // 64) * 64, self.max_positions)
        key = (batch, length, mode, greedy, 0.0 if greedy else temperature, 1.0 if greedy else top_p)
        st = self._states.get(key)
        if st is not None and st.out.shape[1] >= max_new:
            return st
        if len(self._states) >= 4:  # bound the memory held by idle KV caches and graphs
            self._states.pop(next(iter(self._states)))
        dev, dt = self.device, self.dtype
        shape = (batch, self.n_kv, length, self.head_dim)
        if dev.type == "cuda" and self._states:
            # The backend sized this batch counting idle states' memory as free: free it if needed.
            need = 2 * len(self.layers) * batch * self.n_kv * length * self.head_dim * dt.itemsize
            if (available_bytes(dev, None) or 0) < need:
                self.drop_states()
                torch.cuda.empty_cache()
        st = _BatchState(
            batch=batch,
            length=length,
            mode=mode,
            greedy=greedy,
            cache=[
                (torch.zeros(shape, device=dev, dtype=dt), torch.zeros(shape, device=dev, dtype=dt))
                for _ in self.layers
            ],
            tok=torch.zeros(batch, dtype=torch.long, device=dev),
            pad=torch.zeros(batch, dtype=torch.long, device=dev),
            seeds=torch.zeros(batch, dtype=torch.long, device=dev),
            slot=torch.zeros((), dtype=torch.long, device=dev),
            step=torch.zeros((), dtype=torch.long, device=dev),
            out=torch.zeros(batch, max(max_new, 1), dtype=torch.long, device=dev),
            masks={n: torch.zeros(batch, n * self.lora_cols, device=dev, dtype=dt) for n in (1, 2, 3)},
            row_ranges=torch.zeros(
                -(-batch // kernels.lora_tiles(batch).bm), 2, device=dev, dtype=torch.int32
            ),
            temperature=temperature,
            top_p=top_p,
        )
        self._states[key] = st
        return st

    def held_bytes(self) -> int:
        """Memory held by idle KV caches (freed by ``_state`` when a new batch needs it)."""
        return sum(2 * k.nbytes for st in self._states.values() for k, _v in st.cache)

    def drop_states(self) -> None:
        """Free every KV cache and CUDA graph (after an out-of-memory error, or on close)."""
        self._states.clear()

    def _decode_step(self, st: _BatchState) -> None:
        if self.fused_kernels:
            self._decode_step_fused(st)
            return
        x = self._embed(st.tok, st).unsqueeze(1)  # [B, 1, H]
        pos = (st.slot - st.pad).clamp(min=0).view(st.batch, 1)
        keys = self.positions[: st.length]
        valid = (keys >= st.pad.unsqueeze(1)) & (keys <= st.slot)  # [B, L]
        mask = valid.view(st.batch, 1, 1, st.length)
        x = self._layers(x, st, pos=pos, mask=mask, write=st.slot.view(1))
        tok = self._choose(self._logits(x[:, 0], st), st)
        st.tok.copy_(tok)
        st.out.index_copy_(1, st.step.view(1), tok.view(-1, 1))
        st.slot.add_(1)
        st.step.add_(1)

    def _decode_step_fused(self, st: _BatchState) -> None:
        """The decode step with Triton kernels: same maths, ~17 kernels per layer instead of ~40."""
        bsz, nh, nkv, hd = st.batch, self.n_heads, self.n_kv, self.head_dim
        x = self._embed(st.tok, st)  # [B, H]; the residual stream, updated in place
        masks: dict[int | None, torch.Tensor] = {}
        if self.attention != "triton":  # the Triton kernel reads pad, slot and window itself
            keys = self.positions[: st.length]
            valid = (keys >= st.pad.unsqueeze(1)) & (keys <= st.slot)
            zero = torch.zeros((), device=self.device, dtype=self.dtype)
            masks = {
                w: torch.where(m, zero, torch.full_like(zero, float("-inf"))).view(bsz, 1, 1, st.length)
                for w, m in self._windowed(valid, st.slot.view(1)).items()
            }
        q = st.extra.get("q")
        if q is None:
            q = st.extra["q"] = torch.empty(bsz, nh, hd, device=self.device, dtype=self.dtype)
            st.extra["attn_out"] = torch.empty_like(q)
        attn_out = st.extra["attn_out"]
        pending: torch.Tensor | None = None
        for layer, (k_cache, v_cache) in zip(self.layers, st.cache, strict=True):
            h = self._add_norm(x, pending, layer.in_norm)
            qkv = self._linear(h, layer.linears["qkv"], st)
            kernels.rope_kv(
                qkv, layer.cos, layer.sin, st.pad, st.slot, q, k_cache, v_cache, nh, nkv, hd,
                qk_norm=layer.qk_norms, eps=self.eps, norm_f32=self.family.gemma_norm,
            )  # fmt: skip
            if self.attention == "triton":
                attn = kernels.decode_attention(
                    q, k_cache, v_cache, st.pad, st.slot, attn_out,
                    scale=self.scale, softcap=self.attn_softcap, window=layer.window,
                )  # fmt: skip
            elif self.attention == "grouped":
                attn = self._attend(q.view(bsz, nkv, nh // nkv, hd), k_cache, v_cache, masks[layer.window])
            elif self.attention == "bmm":
                mask_bkv = masks[layer.window].expand(bsz, nkv, 1, st.length).reshape(bsz * nkv, 1, st.length)
                scores = torch.baddbmm(
                    mask_bkv,
                    q.view(bsz * nkv, nh // nkv, hd),
                    k_cache.view(bsz * nkv, st.length, hd).transpose(1, 2),
                    alpha=self.scale,
                )
                attn = torch.bmm(torch.softmax(scores, dim=-1), v_cache.view(bsz * nkv, st.length, hd))
            else:
                attn = self._attend(q.view(bsz, nh, 1, hd), k_cache, v_cache, masks[layer.window])
            o = self._linear(attn.reshape(bsz, nh * hd), layer.linears["o"], st)
            if layer.attn_out_norm is not None:
                o = self._add_norm(o, None, layer.attn_out_norm)
            h = self._add_norm(x, o, layer.post_norm)
            act = self._linear(h, layer.linears["gate_up"], st, act=True)
            pending = self._linear(act, layer.linears["down"], st)
            if layer.mlp_out_norm is not None:
                pending = self._add_norm(pending, None, layer.mlp_out_norm)
        h = self._add_norm(x, pending, self.final_norm)
        tok = self._choose(self._head(h, st), st)
        st.tok.copy_(tok)
        st.out.index_copy_(1, st.step.view(1), tok.view(-1, 1))
        st.slot.add_(1)
        st.step.add_(1)

    def _capture(self, st: _BatchState) -> None:
        # Warm up on a side stream (lazy init, cuBLAS handles), then capture one step.
        # Warm-up writes garbage into the cache and counters; prefill resets all of it.
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):
                st.slot.fill_(0)
                st.step.fill_(0)
                self._decode_step(st)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        st.slot.fill_(0)
        st.step.fill_(0)
        with torch.cuda.graph(graph):
            self._decode_step(st)
        st.graph = graph

    def start(
        self,
        prompts: list[list[int]],
        adapter_index: list[int | None],
        seeds: list[int],
        *,
        max_new: int,
        greedy: bool,
        temperature: float,
        top_p: float,
        pad_id: int,
    ) -> _BatchState:
        """Prefill a batch and choose its first token; returns the state to ``advance``.

        Prompts longer than ``prefill_chunk`` tokens are prefilled in chunks: each chunk writes its
        keys and values into the cache and attends, causally, to the cache so far and to itself, so
        the activations of one chunk (not of the whole prompt) are alive at once.
        """
        bsz = len(prompts)
        plen = max(len(p) for p in prompts)
        check_context(plen, max_new, self.max_positions)
        used = set(adapter_index)
        dora = {i for i in used if i is not None and i in self.dora}
        if dora and len(used) > 1:
            raise GenerationError(
                f"adapter {self.adapter_names[min(dora)]!r} uses DoRA: the fast engine serves it on merged "
                "weights, in batches of its own"
            )
        if used == {None} or self.lora_cols == 0:
            mode = "base"
        elif len(used) == 1 and (self.merge_single_adapter or dora):
            mode = "merged"
            only = adapter_index[0]
            assert only is not None
            self._merge(only)
        else:
            mode = "mixed"
        st = self._state(bsz, plen + max_new, max_new, mode, greedy, temperature, top_p)
        if st.mode == "mixed":
            row_mask = torch.zeros(bsz, self.lora_cols, dtype=self.dtype)
            # Each row's adapter columns inside a K block; no adapter: an empty span.
            span_lo = torch.full((bsz,), self.lora_cols, dtype=torch.int32)
            span_hi = torch.zeros(bsz, dtype=torch.int32)
            for row, index in enumerate(adapter_index):
                if index is not None:
                    off, width = self.lora_offsets[index], self.lora_widths[index]
                    row_mask[row, off : off + width] = 1
                    span_lo[row], span_hi[row] = off, off + width
            for n, buf in st.masks.items():
                buf.copy_(row_mask.repeat(1, n))
            if self.fused_kernels:
                kernels.lora_row_ranges(
                    span_lo, span_hi, kernels.lora_tiles(bsz).bm, block=self.lora_cols, out=st.row_ranges
                )
            st.extra["spans"] = (span_lo, span_hi)
        pads = [plen - len(p) for p in prompts]
        ids = torch.tensor(
            [[pad_id] * pad + p for p, pad in zip(prompts, pads, strict=True)], dtype=torch.long
        )
        st.pad.copy_(torch.tensor(pads, dtype=torch.long))
        st.seeds.copy_(torch.tensor(seeds, dtype=torch.long))
        if self.use_cuda_graph and st.graph is None:
            self._capture(st)
        st.step.fill_(0)
        st.slot.fill_(plen)

        ids_d = ids.to(self.device)
        chunk = self.prefill_chunk
        for begin in range(0, plen, chunk):
            end = min(begin + chunk, plen)
            logits = self._prefill_chunk(ids_d[:, begin:end], st, begin)
        for key in ("spans", "prefill_masks", "prefill_row_ranges"):
            st.extra.pop(key, None)
        st.extra["prefill_logits"] = logits  # the first token's logits (parity tests read them)
        tok = self._choose(logits, st)
        st.tok.copy_(tok)
        st.out[:, 0].copy_(tok)
        st.step.fill_(1)
        return st

    def _prefill_chunk(self, ids: torch.Tensor, st: _BatchState, begin: int) -> torch.Tensor:
        """Prefill cache slots begin..begin+T-1 from ids [B, T]; returns the last position's logits."""
        bsz, t = ids.shape
        end = begin + t
        if st.mode == "mixed":
            # Prefill rows are (batch, position) pairs, batch-major: the row masks repeat per position.
            st.extra["prefill_masks"] = {n: m.repeat_interleave(t, dim=0) for n, m in st.masks.items()}
            if self.fused_kernels:
                span_lo, span_hi = st.extra["spans"]
                st.extra["prefill_row_ranges"] = kernels.lora_row_ranges(
                    span_lo.repeat_interleave(t).to(self.device),
                    span_hi.repeat_interleave(t).to(self.device),
                    kernels.lora_tiles(bsz * t).bm,
                    block=self.lora_cols,
                )
        pos = (self.positions[begin:end].unsqueeze(0) - st.pad.unsqueeze(1)).clamp(min=0)
        queries = self.positions[begin:end].view(t, 1)
        keys = self.positions[:end].view(1, end)
        causal = keys <= queries  # [T, S]
        visible = causal.unsqueeze(0) & (keys.view(1, 1, end) >= st.pad.view(bsz, 1, 1))
        # A padded query sees only itself, so no softmax row is empty (no NaN in the cache).
        visible = visible | (keys == queries).unsqueeze(0)
        if self.fused_kernels:
            return self._prefill_fused(ids, st, pos, visible, begin)
        x = self._layers(
            self._embed(ids, st),
            st,
            pos=pos,
            mask=visible.unsqueeze(1),
            write=slice(begin, end),
        )
        return self._logits(x[:, -1], st)

    def _merge(self, index: int) -> None:
        """Write base + adapter ``index``'s delta into the merged weight buffers (in place)."""
        if self._merged_for == index:
            return
        off, width = self.lora_offsets[index], self.lora_widths[index]
        r = self.lora_cols
        head = [self.head] if self.head is not None else []
        for lin in [lin for layer in self.layers for lin in layer.linears.values()] + head:
            if lin.lora_b is None:
                continue
            if lin.merged is None:
                lin.merged = torch.empty_like(lin.base_weight())
            cols = torch.cat([torch.arange(t * r + off, t * r + off + width) for t in range(lin.n_sub)]).to(
                self.device
            )
            # B is pre-scaled and zero outside each sub-module's rows: one product per group.
            torch.addmm(lin.base_weight(), lin.lora_b[:, cols], lin.weight[lin.out + cols], out=lin.merged)
            if index in self.dora:
                self._dora_rescale(lin, self._adapters[index])
        if self.embed_lora is not None:
            table, lora_b = self.embed_lora
            if self.merged_embed is None:
                self.merged_embed = torch.empty_like(self.embed)
            span = slice(off, off + width)
            torch.addmm(self.embed, table[:, span], lora_b[:, span].t(), out=self.merged_embed)
        self._merged_for = index

    def _dora_rescale(self, lin: _Linear, adapter: LoraAdapter) -> None:
        """DoRA on merged weights: each targeted sub-module's rows of W + sBA scaled to the adapter's
        magnitudes, m / ||W + sBA|| per output row (peft's weight norm, over the input dimension)."""
        assert lin.merged is not None
        row0 = 0
        for name, out in zip(lin.names, lin.outs, strict=True):
            lora = adapter.modules.get(name)
            if lora is not None and lora.magnitude is not None:
                rows = lin.merged[row0 : row0 + out]
                norm = rows.float().norm(p=2, dim=1)
                scale = lora.magnitude.to(device=self.device, dtype=torch.float32) / norm
                rows.copy_((rows.float() * scale.unsqueeze(1)).to(rows.dtype))
            row0 += out

    def _prefill_fused(
        self, ids: torch.Tensor, st: _BatchState, pos: torch.Tensor, visible: torch.Tensor, begin: int
    ) -> torch.Tensor:
        """Prefill one chunk with the Triton kernels and grouped-query attention; last-token logits."""
        bsz, t = ids.shape
        end = begin + t
        nh, nkv, hd = self.n_heads, self.n_kv, self.head_dim
        group = nh // nkv
        q_size, kv_size = nh * hd, nkv * hd
        x = self._embed(ids, st).view(bsz * t, self.hidden)
        zero = torch.zeros((), device=self.device, dtype=self.dtype)
        biases = {}
        for w, seen in self._windowed(visible, self.positions[begin:end]).items():  # [B, T, S] each
            bias = torch.where(seen, zero, torch.full_like(zero, float("-inf")))
            # Query heads sharing a KV head are stacked along the query axis: [B, KV, G*T, D].
            biases[w] = bias.unsqueeze(1).expand(bsz, group, t, end).reshape(bsz, 1, group * t, end)
        rope: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        pending: torch.Tensor | None = None
        for layer, (k_cache, v_cache) in zip(self.layers, st.cache, strict=True):
            if id(layer.cos) not in rope:
                rope[id(layer.cos)] = (layer.cos[pos].unsqueeze(2), layer.sin[pos].unsqueeze(2))
            cos, sin = rope[id(layer.cos)]
            h = self._add_norm(x, pending, layer.in_norm)
            qkv = self._linear(h, layer.linears["qkv"], st).view(bsz, t, q_size + 2 * kv_size)
            qk = self._qk_norm(qkv[..., : q_size + kv_size].view(bsz, t, nh + nkv, hd), layer)
            qk = self._rope(qk, cos, sin)
            k = qk[:, :, nh:].transpose(1, 2)
            v = qkv[..., q_size + kv_size :].view(bsz, t, nkv, hd).transpose(1, 2)
            k_cache[:, :, begin:end] = k
            v_cache[:, :, begin:end] = v
            q = (
                qk[:, :, :nh]
                .reshape(bsz, t, nkv, group, hd)
                .permute(0, 2, 3, 1, 4)
                .reshape(bsz, nkv, group * t, hd)
            )
            attn = self._attend(q, k_cache[:, :, :end], v_cache[:, :, :end], biases[layer.window])
            attn = attn.view(bsz, nkv, group, t, hd).permute(0, 3, 1, 2, 4).reshape(bsz * t, q_size)
            o = self._linear(attn, layer.linears["o"], st)
            if layer.attn_out_norm is not None:
                o = self._add_norm(o, None, layer.attn_out_norm)
            h = self._add_norm(x, o, layer.post_norm)
            act = self._linear(h, layer.linears["gate_up"], st, act=True)
            pending = self._linear(act, layer.linears["down"], st)
            if layer.mlp_out_norm is not None:
                pending = self._add_norm(pending, None, layer.mlp_out_norm)
        assert pending is not None
        last = x.view(bsz, t, self.hidden)[:, -1].contiguous()
        h = self._add_norm(last, pending.view(bsz, t, self.hidden)[:, -1].contiguous(), self.final_norm)
        return self._head(h, st)

    def advance(self, st: _BatchState, steps: int) -> None:
        """Generate ``steps`` more tokens for every row (no host synchronisation)."""
        for _ in range(steps):
            if st.graph is not None:
                st.graph.replay()
            else:
                self._decode_step(st)


#: The engine's name before it served more than Llama.
LlamaEngine = FastEngine
