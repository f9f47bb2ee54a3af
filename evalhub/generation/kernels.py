"""Three small fused Triton kernels for the CUDA decode step (used only where Triton imports).

At batch 64 a decode step of a 1B model moves ~2 GB of weights (0.66 ms on an H100) but
runs hundreds of tiny element-wise kernels; each costs microseconds even inside a CUDA
graph. These replace the chattiest groups:

* ``rope_kv``: RoPE on q and k of one new token (after a per-head q/k RMSNorm where the
  family has one), k/v written into the cache slot, q packed for attention (replaces ~8 kernels
  per layer);
* ``add_rmsnorm``: residual add + RMSNorm in one pass, Llama's or Gemma's rounding (replaces ~8);
* ``gate_mul``: SiLU(gate) * up, or GELU-tanh(gate) * up for Gemma's GeGLU (replaces 2);
* ``lora_expand``: base + (h * row mask) @ B^T for every adapter at once, optionally followed by
  SiLU(gate) * up for the fused gate|up projection (replaces 2-4); a tile reads only the K
  where both can be non-zero: the sub-module blocks its columns touch (one of q|k|v's three)
  and, inside each, the columns of its rows' adapters (one adapter's rank when the rows are
  grouped by adapter, as the backend batches them);
* ``decode_attention``: one new query token per row against the KV cache, flash-decoding style:
  one program per (row, KV head) loads each K/V block once for all query heads of its group
  and visits only the row's live positions (pad..slot, or the sliding window's part of them),
  where SDPA with a mask reads the whole static cache length and needs a [B, L] mask kernel
  first; optional tanh soft-capping of the scores (Gemma 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

try:  # Triton ships with CUDA builds of torch; CPU installs run the eager path instead.
    import triton
    import triton.language as tl

    HAVE_TRITON = True
except ImportError:  # pragma: no cover - depends on the install
    HAVE_TRITON = False


#: Gate activations of a gated MLP and their constexpr code in the kernels.
ACTIVATIONS = {"silu": 1, "gelu_tanh": 2}


def available(device: torch.device) -> bool:
    return HAVE_TRITON and device.type == "cuda"


if HAVE_TRITON:

    @triton.jit
    def _norm_scale(normed, w, dtype: tl.constexpr, NORM_F32: tl.constexpr):  # type: ignore[no-untyped-def]
        # Llama-style RMSNorm rounds the normalised value to the model dtype, then multiplies by the
        # weight; Gemma's multiplies in float32 by a float32 weight (1 + w, folded in at load).
        if NORM_F32:
            return (normed * w.to(tl.float32)).to(dtype).to(tl.float32)
        return (w.to(tl.float32) * normed.to(dtype).to(tl.float32)).to(dtype).to(tl.float32)

    @triton.jit
    def _gate_act(g, dtype: tl.constexpr, ACT: tl.constexpr):  # type: ignore[no-untyped-def]
        # ACT 1: SiLU (Llama, Qwen, Mistral); 2: GELU, tanh approximation (Gemma's GeGLU).
        if ACT == 2:
            inner = 0.7978845608028654 * (g + 0.044715 * g * g * g)
            a = 0.5 * g * (2.0 * tl.sigmoid(2.0 * inner))  # 1 + tanh(y) = 2 sigmoid(2y)
        else:
            a = g * tl.sigmoid(g)
        return a.to(dtype).to(tl.float32)

    @triton.jit
    def _rope_kv_kernel(  # type: ignore[no-untyped-def]  # Triton reads the argument annotations
        qkv_ptr,
        qkv_stride,
        cos_ptr,
        sin_ptr,
        pad_ptr,
        slot_ptr,
        q_out_ptr,
        k_cache_ptr,
        v_cache_ptr,
        cache_len,
        q_norm_ptr,
        k_norm_ptr,
        eps,
        NH: tl.constexpr,
        NKV: tl.constexpr,
        D: tl.constexpr,
        QK_NORM: tl.constexpr,
        NORM_F32: tl.constexpr,
    ) -> None:
        b = tl.program_id(0)
        h = tl.program_id(1)
        half: tl.constexpr = D // 2
        d = tl.arange(0, half)
        slot = tl.load(slot_ptr)
        pos = tl.maximum(slot - tl.load(pad_ptr + b), 0)
        c1 = tl.load(cos_ptr + pos * D + d).to(tl.float32)
        c2 = tl.load(cos_ptr + pos * D + half + d).to(tl.float32)
        s1 = tl.load(sin_ptr + pos * D + d).to(tl.float32)
        s2 = tl.load(sin_ptr + pos * D + half + d).to(tl.float32)
        src = qkv_ptr + b * qkv_stride + h * D
        x1 = tl.load(src + d).to(tl.float32)
        x2 = tl.load(src + half + d).to(tl.float32)
        if QK_NORM:  # RMSNorm over this head's D values, rounded to the model dtype as HF does
            w_ptr = q_norm_ptr if h < NH else k_norm_ptr
            inv = tl.rsqrt((tl.sum(x1 * x1, axis=0) + tl.sum(x2 * x2, axis=0)) / D + eps)
            x1 = _norm_scale(x1 * inv, tl.load(w_ptr + d), qkv_ptr.dtype.element_ty, NORM_F32)
            x2 = _norm_scale(x2 * inv, tl.load(w_ptr + half + d), qkv_ptr.dtype.element_ty, NORM_F32)
        # rotate_half(x) = [-x2, x1]
        o1 = x1 * c1 - x2 * s1
        o2 = x2 * c2 + x1 * s2
        if h < NH:
            dst = q_out_ptr + (b * NH + h) * D
            tl.store(dst + d, o1.to(q_out_ptr.dtype.element_ty))
            tl.store(dst + half + d, o2.to(q_out_ptr.dtype.element_ty))
        else:
            kh = h - NH
            row = ((b * NKV + kh) * cache_len + slot) * D
            tl.store(k_cache_ptr + row + d, o1.to(k_cache_ptr.dtype.element_ty))
            tl.store(k_cache_ptr + row + half + d, o2.to(k_cache_ptr.dtype.element_ty))
            v_src = qkv_ptr + b * qkv_stride + (NH + NKV + kh) * D
            full = tl.arange(0, D)
            tl.store(v_cache_ptr + row + full, tl.load(v_src + full))

    @triton.jit
    def _add_rmsnorm_kernel(  # type: ignore[no-untyped-def]  # Triton reads the argument annotations
        x_ptr,
        delta_ptr,
        delta_stride,
        w_ptr,
        out_ptr,
        n_cols,
        eps,
        HAS_DELTA: tl.constexpr,
        NORM_F32: tl.constexpr,
        BLOCK: tl.constexpr,
    ) -> None:
        row = tl.program_id(0)
        cols = tl.arange(0, BLOCK)
        valid = cols < n_cols
        x = tl.load(x_ptr + row * n_cols + cols, mask=valid, other=0.0)
        if HAS_DELTA:
            dlt = tl.load(delta_ptr + row * delta_stride + cols, mask=valid, other=0.0)
            # Round the residual to the model dtype, as the unfused model does.
            x = (x.to(tl.float32) + dlt.to(tl.float32)).to(x_ptr.dtype.element_ty)
            tl.store(x_ptr + row * n_cols + cols, x, mask=valid)
        xf = x.to(tl.float32)
        var = tl.sum(xf * xf, axis=0) / n_cols
        w = tl.load(w_ptr + cols, mask=valid, other=0.0)
        normed = _norm_scale(xf * tl.rsqrt(var + eps), w, out_ptr.dtype.element_ty, NORM_F32)
        tl.store(out_ptr + row * n_cols + cols, normed.to(out_ptr.dtype.element_ty), mask=valid)

    @triton.jit
    def _gate_mul_kernel(  # type: ignore[no-untyped-def]  # Triton reads the argument annotations
        gu_ptr, gu_stride, out_ptr, inter, ACT: tl.constexpr, BLOCK: tl.constexpr
    ) -> None:
        row = tl.program_id(0)
        cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        valid = cols < inter
        g = tl.load(gu_ptr + row * gu_stride + cols, mask=valid, other=0.0).to(tl.float32)
        u = tl.load(gu_ptr + row * gu_stride + inter + cols, mask=valid, other=0.0).to(tl.float32)
        act = _gate_act(g, out_ptr.dtype.element_ty, ACT)
        tl.store(out_ptr + row * inter + cols, (act * u).to(out_ptr.dtype.element_ty), mask=valid)


if HAVE_TRITON:

    @triton.jit
    def _lora_dot(  # type: ignore[no-untyped-def]  # Triton reads the argument annotations
        acc,
        y_ptr,
        y_stride,
        mask_ptr,
        mask_stride,
        b_ptr,
        b_stride,
        rm,
        m_ok,
        rb,
        n_ok,
        blk_lo,
        blk_hi,
        a_lo,
        a_hi,
        OUT_COLS,
        R,
        BK: tl.constexpr,
    ):
        # K is laid out as one block of R columns per sub-module, each block split among the
        # adapters. Only the blocks this column tile's B touches, and inside each only the span
        # of the adapters of this row tile, can be non-zero: visit nothing else.
        for blk in range(blk_lo, blk_hi):
            k_end = blk * R + a_hi
            for k0 in range(blk * R + a_lo, k_end, BK):
                rk = k0 + tl.arange(0, BK)
                k_ok = rk < k_end
                hk = m_ok[:, None] & k_ok[None, :]
                # The LoRA activations sit right after the base outputs in each row of y.
                h = tl.load(y_ptr + rm[:, None] * y_stride + OUT_COLS + rk[None, :], mask=hk, other=0.0)
                keep = tl.load(mask_ptr + rm[:, None] * mask_stride + rk[None, :], mask=hk, other=0.0)
                bk = k_ok[:, None] & n_ok[None, :]
                b_t = tl.load(b_ptr + rb[None, :] * b_stride + rk[:, None], mask=bk, other=0.0)
                acc += tl.dot(h * keep, b_t)
        return acc

    @triton.jit
    def _lora_expand_kernel(  # type: ignore[no-untyped-def]  # Triton reads the argument annotations
        y_ptr,
        y_stride,
        mask_ptr,
        mask_stride,
        b_ptr,
        b_stride,
        col_ptr,
        row_ptr,
        o_ptr,
        o_stride,
        M,
        N,
        OUT_COLS,
        INTER,
        R,
        ACT: tl.constexpr,
        BM: tl.constexpr,
        BN: tl.constexpr,
        BK: tl.constexpr,
    ) -> None:
        row_tile = tl.program_id(0)
        tile = tl.program_id(1)
        rm = row_tile * BM + tl.arange(0, BM)
        rn = tile * BN + tl.arange(0, BN)
        m_ok = rm < M
        n_ok = rn < N
        om = m_ok[:, None] & n_ok[None, :]
        # Issued first: the base outputs do not depend on the range lookups.
        base = tl.load(y_ptr + rm[:, None] * y_stride + rn[None, :], mask=om, other=0.0).to(tl.float32)
        a_lo = tl.load(row_ptr + row_tile * 2)
        a_hi = tl.load(row_ptr + row_tile * 2 + 1)
        acc = tl.zeros((BM, BN), dtype=tl.float32)
        acc = _lora_dot(
            acc, y_ptr, y_stride, mask_ptr, mask_stride, b_ptr, b_stride, rm, m_ok, rn, n_ok,
            tl.load(col_ptr + tile * 4), tl.load(col_ptr + tile * 4 + 1), a_lo, a_hi, OUT_COLS, R, BK,
        )  # fmt: skip
        val = (base + acc).to(o_ptr.dtype.element_ty)
        if ACT > 0:
            up = tl.load(y_ptr + rm[:, None] * y_stride + INTER + rn[None, :], mask=om, other=0.0).to(
                tl.float32
            )
            acc_up = tl.zeros((BM, BN), dtype=tl.float32)
            acc_up = _lora_dot(
                acc_up, y_ptr, y_stride, mask_ptr, mask_stride, b_ptr, b_stride, rm, m_ok, rn + INTER, n_ok,
                tl.load(col_ptr + tile * 4 + 2), tl.load(col_ptr + tile * 4 + 3), a_lo, a_hi, OUT_COLS, R, BK,
            )  # fmt: skip
            u = (up + acc_up).to(o_ptr.dtype.element_ty).to(tl.float32)
            a = _gate_act(val.to(tl.float32), o_ptr.dtype.element_ty, ACT)
            val = (a * u).to(o_ptr.dtype.element_ty)
        tl.store(o_ptr + rm[:, None] * o_stride + rn[None, :], val, mask=om)

    @triton.jit
    def _decode_attention_kernel(  # type: ignore[no-untyped-def]  # Triton reads the argument annotations
        q_ptr,
        k_ptr,
        v_ptr,
        o_ptr,
        pad_ptr,
        slot_ptr,
        cache_len,
        scale,
        softcap,
        window,
        NH: tl.constexpr,
        NKV: tl.constexpr,
        G: tl.constexpr,
        GP: tl.constexpr,
        D: tl.constexpr,
        BN: tl.constexpr,
        IEEE: tl.constexpr,
        SOFTCAP: tl.constexpr,
        WINDOW: tl.constexpr,
    ) -> None:
        b = tl.program_id(0)
        kvh = tl.program_id(1)
        g = tl.arange(0, GP)
        d = tl.arange(0, D)
        g_ok = g < G
        heads = b * NH + kvh * G + g
        q = tl.load(q_ptr + heads[:, None] * D + d[None, :], mask=g_ok[:, None], other=0.0)
        pad = tl.load(pad_ptr + b)
        slot = tl.load(slot_ptr)
        if WINDOW:  # sliding window: only the last `window` positions (HF: key > query - window)
            pad = tl.maximum(pad, slot - window + 1)
        m_i = tl.full((GP,), float("-inf"), dtype=tl.float32)
        l_i = tl.zeros((GP,), dtype=tl.float32)
        acc = tl.zeros((GP, D), dtype=tl.float32)
        cache = (b * NKV + kvh).to(tl.int64) * cache_len * D
        # The first block holds position pad (or the window's first), which is live, so every row's max is finite from
        # the first block on (no NaN from an all-masked block).
        for n0 in range((pad // BN) * BN, slot + 1, BN):
            n = n0 + tl.arange(0, BN)
            live = (n >= pad) & (n <= slot)
            k = tl.load(k_ptr + cache + n[:, None] * D + d[None, :], mask=live[:, None], other=0.0)
            if IEEE:  # noqa: SIM108 - a constexpr branch: Triton compiles only one side
                s = tl.dot(q, tl.trans(k), input_precision="ieee")
            else:
                s = tl.dot(q, tl.trans(k))
            s = s * scale
            if SOFTCAP:  # Gemma 2: softcap * tanh(s / softcap), tanh(y) = 2 sigmoid(2y) - 1
                s = softcap * (2.0 * tl.sigmoid(2.0 * s / softcap) - 1.0)
            s = tl.where(live[None, :], s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, axis=1))
            p = tl.exp(s - m_new[:, None])
            alpha = tl.exp(m_i - m_new)
            l_i = l_i * alpha + tl.sum(p, axis=1)
            v = tl.load(v_ptr + cache + n[:, None] * D + d[None, :], mask=live[:, None], other=0.0)
            if IEEE:  # noqa: SIM108 - a constexpr branch: Triton compiles only one side
                pv = tl.dot(p.to(v.dtype), v, input_precision="ieee")
            else:
                pv = tl.dot(p.to(v.dtype), v)
            acc = acc * alpha[:, None] + pv
            m_i = m_new
        out = acc / l_i[:, None]
        tl.store(o_ptr + heads[:, None] * D + d[None, :], out.to(o_ptr.dtype.element_ty), mask=g_ok[:, None])


@dataclass(frozen=True)
class LoraTiles:
    """Tile shape of ``lora_expand`` for one range of row counts: rows per tile, and columns
    per tile and warps for plain outputs and for the fused gate|up (two accumulators)."""

    bm: int
    bn: int
    warps: int
    act_bn: int
    act_warps: int

    def shape(self, act: bool) -> tuple[int, int]:
        return (self.act_bn, self.act_warps) if act else (self.bn, self.warps)


# Decode (a few dozen rows): small row tiles, so a tile of rows grouped by adapter holds one
# adapter and reads one rank-wide slice of K; prefill (thousands of rows): larger tiles.
# bench/generation.py times the alternatives on the GPU and prints the fastest.
LORA_DECODE = LoraTiles(bm=16, bn=64, warps=4, act_bn=64, act_warps=4)
LORA_PREFILL = LoraTiles(bm=32, bn=128, warps=4, act_bn=64, act_warps=4)
LORA_DECODE_MAX_ROWS = 256
LORA_BK = 16  # K step: the smallest tl.dot K, and a divisor of the usual ranks


def lora_tiles(rows: int) -> LoraTiles:
    return LORA_DECODE if rows <= LORA_DECODE_MAX_ROWS else LORA_PREFILL


def lora_widths() -> set[int]:
    """Every column-tile width the current tile shapes use (col ranges are made per width)."""
    return {t.shape(act)[0] for t in (LORA_DECODE, LORA_PREFILL) for act in (False, True)}


def lora_col_ranges(lora_b: torch.Tensor, out_cols: int, *, act: bool, block: int, bn: int) -> torch.Tensor:
    """Per column tile of ``lora_expand``, the range of K blocks where B is non-zero.

    lora_b [out, K] holds one block of ``block`` columns per sub-module of a fused linear and is
    zero outside each sub-module's block, so a tile of a fused q|k|v reads one block of K
    instead of three. Returns int32 [tiles, 4]: block indices [lo, hi) for the tile's columns
    and, with ``act``, [lo, hi) for the matching up-projection columns.
    """
    nz = lora_b.detach().float().cpu() != 0  # [out, K]
    n = out_cols // 2 if act else out_cols
    tiles = -(-n // bn)

    def span(rows: torch.Tensor) -> tuple[int, int]:
        cols = rows.any(dim=0).nonzero().flatten()
        if cols.numel() == 0:
            return 0, 0
        return int(cols.min()) // block, int(cols.max()) // block + 1

    ranges = torch.zeros(tiles, 4, dtype=torch.int32)
    for t in range(tiles):
        c0, c1 = t * bn, min((t + 1) * bn, n)
        ranges[t, 0], ranges[t, 1] = span(nz[c0:c1])
        if act:
            ranges[t, 2], ranges[t, 3] = span(nz[n + c0 : n + c1])
    return ranges


def lora_row_ranges(
    lo: torch.Tensor, hi: torch.Tensor, bm: int, *, block: int, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Per tile of ``bm`` rows, the span [lo, hi) inside a K block of its rows' adapters.

    ``lo``/``hi`` [M] are each row's adapter columns within a block of ``block`` columns; a row
    without an adapter has lo = block, hi = 0, so a tile of such rows gets an empty span. Rows grouped by
    adapter make most tiles one adapter wide. Returns (or fills ``out``) int32 [tiles, 2].
    """
    m = lo.shape[0]
    tiles = -(-m // bm)
    fill = tiles * bm - m
    if fill:
        lo = torch.cat([lo, lo.new_full((fill,), block)])
        hi = torch.cat([hi, hi.new_zeros(fill)])
    spans = torch.stack([lo.view(tiles, bm).amin(dim=1), hi.view(tiles, bm).amax(dim=1)], dim=1).to(
        torch.int32
    )
    if out is None:
        return spans
    out.copy_(spans)
    return out


def lora_expand(
    y: torch.Tensor,
    out_cols: int,
    mask: torch.Tensor,
    lora_b: torch.Tensor,
    col_ranges: dict[int, torch.Tensor],
    row_ranges: torch.Tensor,
    *,
    block: int,
    act: bool,
    activation: str = "silu",
) -> torch.Tensor:
    """y [M, out + K] = [x W^T | x A^T]; returns y[:, :out] + (y[:, out:] * mask) @ lora_b^T, [M, out].

    With ``act`` the out columns are gate|up and the result is ``activation``(gate) * up, [M, out / 2].
    ``col_ranges[bn]`` comes from ``lora_col_ranges(..., bn=bn)`` for the column tile of
    ``lora_tiles(M).shape(act)``; ``row_ranges`` from ``lora_row_ranges(..., bm)`` for its row tile.
    ``block`` is the width of one sub-module's block of K (all adapters' columns).
    """
    m = y.shape[0]
    n = out_cols // 2 if act else out_cols
    tiles = lora_tiles(m)
    bn, warps = tiles.shape(act)
    cols = col_ranges[bn]
    assert row_ranges.shape[0] == triton.cdiv(m, tiles.bm), "row ranges were made for another row tile"
    out = torch.empty(m, n, device=y.device, dtype=y.dtype)
    grid: Any = (triton.cdiv(m, tiles.bm), triton.cdiv(n, bn))
    _lora_expand_kernel[grid](
        y, y.stride(0), mask, mask.stride(0), lora_b, lora_b.stride(0), cols, row_ranges, out, out.stride(0),
        m, n, out_cols, out_cols // 2, block,
        ACT=ACTIVATIONS[activation] if act else 0, BM=tiles.bm, BN=bn, BK=LORA_BK, num_warps=warps,
    )  # fmt: skip
    return out


ATTN_BN = 128  # cache positions per block of decode_attention (fastest of 32-128 on an H100)
ATTN_BN_WIDE = 64  # for head_dim > 128 (Gemma's 256): K and V blocks of half the positions
ATTN_WARPS = 4


def decode_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    pad: torch.Tensor,
    slot: torch.Tensor,
    out: torch.Tensor,
    *,
    scale: float | None = None,
    softcap: float | None = None,
    window: int | None = None,
    bn: int | None = None,
    warps: int | None = None,
) -> torch.Tensor:
    """q [B, NH, D], caches [B, NKV, L, D]: softmax(q k^T * scale) v over positions pad..slot.

    Writes and returns ``out`` [B, NH, D] (the same maths as SDPA with the decode mask).
    ``scale`` defaults to 1/sqrt(D); ``softcap`` caps scores to softcap * tanh(s / softcap);
    ``window`` keeps only positions > slot - window (a sliding-window layer).
    ``bn`` positions per block and ``warps`` default to ``ATTN_BN`` (``ATTN_BN_WIDE`` for D > 128)
    and ``ATTN_WARPS``.
    """
    bsz, nh, hd = q.shape
    nkv, length = k_cache.shape[1], k_cache.shape[2]
    group = nh // nkv
    grid: Any = (bsz, nkv)
    bn = bn or (ATTN_BN if hd <= 128 else ATTN_BN_WIDE)
    _decode_attention_kernel[grid](
        q, k_cache, v_cache, out, pad, slot, length, hd**-0.5 if scale is None else scale,
        softcap or 1.0, window or 0,
        NH=nh, NKV=nkv, G=group, GP=max(16, triton.next_power_of_2(group)), D=hd, BN=bn,
        IEEE=q.dtype == torch.float32, SOFTCAP=softcap is not None, WINDOW=window is not None,
        num_warps=warps or ATTN_WARPS,
    )  # fmt: skip
    return out


def rope_kv(
    qkv: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    pad: torch.Tensor,
    slot: torch.Tensor,
    q_out: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    n_heads: int,
    n_kv: int,
    head_dim: int,
    *,
    qk_norm: tuple[torch.Tensor, torch.Tensor] | None = None,
    eps: float = 1e-6,
    norm_f32: bool = False,
) -> None:
    """qkv [B, >= (nh+2nkv)*D] rows -> q_out [B, nh, D]; k, v written at ``slot`` of the caches.

    ``qk_norm`` (q weight, k weight), each [D]: RMSNorm each q and k head first (Qwen3, Gemma 3),
    with ``norm_f32`` as in ``add_rmsnorm``.
    """
    bsz = qkv.shape[0]
    grid: Any = (bsz, n_heads + n_kv)
    q_norm, k_norm = qk_norm if qk_norm is not None else (cos, cos)
    _rope_kv_kernel[grid](
        qkv, qkv.stride(0), cos, sin, pad, slot, q_out, k_cache, v_cache, k_cache.shape[2],
        q_norm, k_norm, eps,
        NH=n_heads, NKV=n_kv, D=head_dim, QK_NORM=qk_norm is not None, NORM_F32=norm_f32,
    )  # fmt: skip


def add_rmsnorm(
    x: torch.Tensor, delta: torch.Tensor | None, weight: torch.Tensor, eps: float, *, norm_f32: bool = False
) -> torch.Tensor:
    """x += delta (in place, when given); return RMSNorm(x) * weight. x [B, H] contiguous.

    Llama rounds the normalised x to the model dtype before the weight; with ``norm_f32`` (Gemma)
    the product is taken in float32 with a float32 weight and rounded once.
    """
    bsz, n_cols = x.shape
    out = torch.empty_like(x)
    grid: Any = (bsz,)
    _add_rmsnorm_kernel[grid](
        x, delta if delta is not None else x, delta.stride(0) if delta is not None else 0, weight, out,
        n_cols, eps, HAS_DELTA=delta is not None, NORM_F32=norm_f32, BLOCK=triton.next_power_of_2(n_cols),
    )  # fmt: skip
    return out


def gate_mul(gu: torch.Tensor, inter: int, activation: str = "silu") -> torch.Tensor:
    """gu [B, >= 2*inter] (gate | up) -> activation(gate) * up, [B, inter] (see ``ACTIVATIONS``)."""
    bsz = gu.shape[0]
    out = torch.empty(bsz, inter, device=gu.device, dtype=gu.dtype)
    block = 1024
    grid: Any = (bsz, triton.cdiv(inter, block))
    _gate_mul_kernel[grid](gu, gu.stride(0), out, inter, ACT=ACTIVATIONS[activation], BLOCK=block)
    return out
