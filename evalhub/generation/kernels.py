"""Three small fused Triton kernels for the CUDA decode step (used only where Triton imports).

At batch 64 a decode step of a 1B model moves ~2 GB of weights (0.66 ms on an H100) but
runs hundreds of tiny element-wise kernels; each costs microseconds even inside a CUDA
graph. These replace the chattiest groups:

* ``rope_kv``: RoPE on q and k of one new token, k/v written into the cache slot, q packed
  for attention (replaces ~8 kernels per layer);
* ``add_rmsnorm``: residual add + RMSNorm in one pass (replaces ~8);
* ``silu_mul``: SiLU(gate) * up (replaces 2);
* ``lora_expand``: base + (h * row mask) @ B^T for every adapter at once, optionally followed by
  SiLU(gate) * up for the fused gate|up projection (replaces 2-4); each column tile reads only
  the K range where its B block is non-zero (one sub-module's block of a fused q|k|v);
* ``decode_attention``: one new query token per row against the KV cache, flash-decoding style:
  one program per (row, KV head) loads each K/V block once for all query heads of its group
  and visits only the row's live positions (pad..slot), where SDPA with a mask reads the whole
  static cache length and needs a [B, L] mask kernel first.
"""

from __future__ import annotations

from typing import Any

import torch

try:  # Triton ships with CUDA builds of torch; CPU installs run the eager path instead.
    import triton
    import triton.language as tl

    HAVE_TRITON = True
except ImportError:  # pragma: no cover - depends on the install
    HAVE_TRITON = False


def available(device: torch.device) -> bool:
    return HAVE_TRITON and device.type == "cuda"


if HAVE_TRITON:

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
        NH: tl.constexpr,
        NKV: tl.constexpr,
        D: tl.constexpr,
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
        normed = (xf * tl.rsqrt(var + eps)).to(out_ptr.dtype.element_ty)
        w = tl.load(w_ptr + cols, mask=valid, other=0.0)
        tl.store(
            out_ptr + row * n_cols + cols,
            (w.to(tl.float32) * normed.to(tl.float32)).to(out_ptr.dtype.element_ty),
            mask=valid,
        )

    @triton.jit
    def _silu_mul_kernel(  # type: ignore[no-untyped-def]  # Triton reads the argument annotations
        gu_ptr, gu_stride, out_ptr, inter, BLOCK: tl.constexpr
    ) -> None:
        row = tl.program_id(0)
        cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        valid = cols < inter
        g = tl.load(gu_ptr + row * gu_stride + cols, mask=valid, other=0.0).to(tl.float32)
        u = tl.load(gu_ptr + row * gu_stride + inter + cols, mask=valid, other=0.0).to(tl.float32)
        act = (g * tl.sigmoid(g)).to(out_ptr.dtype.element_ty).to(tl.float32)
        tl.store(out_ptr + row * inter + cols, (act * u).to(out_ptr.dtype.element_ty), mask=valid)


if HAVE_TRITON:

    @triton.jit
    def _lora_expand_kernel(  # type: ignore[no-untyped-def]  # Triton reads the argument annotations
        y_ptr,
        y_stride,
        mask_ptr,
        mask_stride,
        b_ptr,
        b_stride,
        kr_ptr,
        o_ptr,
        o_stride,
        M,
        N,
        OUT_COLS,
        INTER,
        ACT: tl.constexpr,
        BM: tl.constexpr,
        BN: tl.constexpr,
        BK: tl.constexpr,
    ) -> None:
        tile = tl.program_id(1)
        rm = tl.program_id(0) * BM + tl.arange(0, BM)
        rn = tile * BN + tl.arange(0, BN)
        m_ok = rm < M
        n_ok = rn < N
        acc = tl.zeros((BM, BN), dtype=tl.float32)
        # The K range of this column tile where B is non-zero (precomputed per tile; outside
        # it B holds zeros, so skipping it changes nothing but the work).
        k_lo = tl.load(kr_ptr + tile * 4)
        k_hi = tl.load(kr_ptr + tile * 4 + 1)
        for k0 in range(k_lo, k_hi, BK):
            rk = k0 + tl.arange(0, BK)
            k_ok = rk < k_hi
            hk = m_ok[:, None] & k_ok[None, :]
            # The LoRA activations sit right after the base outputs in each row of y.
            h = tl.load(y_ptr + rm[:, None] * y_stride + OUT_COLS + rk[None, :], mask=hk, other=0.0)
            keep = tl.load(mask_ptr + rm[:, None] * mask_stride + rk[None, :], mask=hk, other=0.0)
            h = h * keep
            bk = k_ok[:, None] & n_ok[None, :]
            b_t = tl.load(b_ptr + rn[None, :] * b_stride + rk[:, None], mask=bk, other=0.0)
            acc += tl.dot(h, b_t)
        om = m_ok[:, None] & n_ok[None, :]
        base = tl.load(y_ptr + rm[:, None] * y_stride + rn[None, :], mask=om, other=0.0).to(tl.float32)
        val = (base + acc).to(o_ptr.dtype.element_ty)
        if ACT:
            acc_up = tl.zeros((BM, BN), dtype=tl.float32)
            u_lo = tl.load(kr_ptr + tile * 4 + 2)
            u_hi = tl.load(kr_ptr + tile * 4 + 3)
            for k0 in range(u_lo, u_hi, BK):
                rk = k0 + tl.arange(0, BK)
                k_ok = rk < u_hi
                hk = m_ok[:, None] & k_ok[None, :]
                h = tl.load(y_ptr + rm[:, None] * y_stride + OUT_COLS + rk[None, :], mask=hk, other=0.0)
                keep = tl.load(mask_ptr + rm[:, None] * mask_stride + rk[None, :], mask=hk, other=0.0)
                h = h * keep
                bk = k_ok[:, None] & n_ok[None, :]
                b_up = tl.load(b_ptr + (rn[None, :] + INTER) * b_stride + rk[:, None], mask=bk, other=0.0)
                acc_up += tl.dot(h, b_up)
            up = tl.load(y_ptr + rm[:, None] * y_stride + INTER + rn[None, :], mask=om, other=0.0).to(
                tl.float32
            )
            u = (up + acc_up).to(o_ptr.dtype.element_ty).to(tl.float32)
            g = val.to(tl.float32)
            a = (g * tl.sigmoid(g)).to(o_ptr.dtype.element_ty).to(tl.float32)
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
        NH: tl.constexpr,
        NKV: tl.constexpr,
        G: tl.constexpr,
        GP: tl.constexpr,
        D: tl.constexpr,
        BN: tl.constexpr,
        IEEE: tl.constexpr,
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
        m_i = tl.full((GP,), float("-inf"), dtype=tl.float32)
        l_i = tl.zeros((GP,), dtype=tl.float32)
        acc = tl.zeros((GP, D), dtype=tl.float32)
        cache = (b * NKV + kvh).to(tl.int64) * cache_len * D
        # The first block holds position pad, which is live, so every row's max is finite from
        # the first block on (no NaN from an all-masked block).
        for n0 in range((pad // BN) * BN, slot + 1, BN):
            n = n0 + tl.arange(0, BN)
            live = (n >= pad) & (n <= slot)
            k = tl.load(k_ptr + cache + n[:, None] * D + d[None, :], mask=live[:, None], other=0.0)
            if IEEE:  # noqa: SIM108 - a constexpr branch: Triton compiles only one side
                s = tl.dot(q, tl.trans(k), input_precision="ieee")
            else:
                s = tl.dot(q, tl.trans(k))
            s = tl.where(live[None, :], s * scale, float("-inf"))
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


LORA_BN = 32  # column tile of lora_expand; the per-tile K ranges are computed for it


def lora_k_ranges(lora_b: torch.Tensor, out_cols: int, *, act: bool, block: int) -> torch.Tensor:
    """Per column tile of ``lora_expand``, the [lo, hi) range of K where B is non-zero.

    lora_b [out, K] is zero outside each sub-module's block of K, so a tile of a fused
    q|k|v reads one block of K instead of all three. Returns int32 [tiles, 4]: (lo, hi) for the
    tile's columns and, with ``act``, (lo, hi) for the matching up-projection columns.
    """
    nz = lora_b.detach().float().cpu() != 0  # [out, K]
    k = nz.shape[1]
    n = out_cols // 2 if act else out_cols
    tiles = -(-n // LORA_BN)

    def span(rows: torch.Tensor) -> tuple[int, int]:
        cols = rows.any(dim=0).nonzero().flatten()
        if cols.numel() == 0:
            return 0, 0
        lo, hi = int(cols.min()), int(cols.max()) + 1
        # Whole K blocks, so the loads stay aligned; still within [0, K).
        return (lo // block) * block, min(-(-hi // block) * block, k)

    ranges = torch.zeros(tiles, 4, dtype=torch.int32)
    for t in range(tiles):
        c0, c1 = t * LORA_BN, min((t + 1) * LORA_BN, n)
        ranges[t, 0], ranges[t, 1] = span(nz[c0:c1])
        if act:
            ranges[t, 2], ranges[t, 3] = span(nz[n + c0 : n + c1])
    return ranges


LORA_BK = 32  # K step of lora_expand


def lora_expand(
    y: torch.Tensor,
    out_cols: int,
    mask: torch.Tensor,
    lora_b: torch.Tensor,
    k_ranges: torch.Tensor,
    *,
    act: bool,
) -> torch.Tensor:
    """y [M, out + K] = [x W^T | x A^T]; returns y[:, :out] + (y[:, out:] * mask) @ lora_b^T, [M, out].

    With ``act`` the out columns are gate|up and the result is SiLU(gate) * up, [M, out / 2].
    ``k_ranges`` comes from ``lora_k_ranges(lora_b, out_cols, act=act, block=LORA_BK)``.
    """
    m = y.shape[0]
    n = out_cols // 2 if act else out_cols
    out = torch.empty(m, n, device=y.device, dtype=y.dtype)
    bm = 16 if m <= 16 else 32 if m <= 32 else 64
    grid: Any = (triton.cdiv(m, bm), triton.cdiv(n, LORA_BN))
    _lora_expand_kernel[grid](
        y, y.stride(0), mask, mask.stride(0), lora_b, lora_b.stride(0), k_ranges, out, out.stride(0),
        m, n, out_cols, out_cols // 2, ACT=act, BM=bm, BN=LORA_BN, BK=LORA_BK,
    )  # fmt: skip
    return out


def decode_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    pad: torch.Tensor,
    slot: torch.Tensor,
    out: torch.Tensor,
) -> torch.Tensor:
    """q [B, NH, D], caches [B, NKV, L, D]: softmax(q k^T / sqrt(D)) v over positions pad..slot.

    Writes and returns ``out`` [B, NH, D] (the same maths as SDPA with the decode mask).
    """
    bsz, nh, hd = q.shape
    nkv, length = k_cache.shape[1], k_cache.shape[2]
    group = nh // nkv
    grid: Any = (bsz, nkv)
    _decode_attention_kernel[grid](
        q, k_cache, v_cache, out, pad, slot, length, hd**-0.5,
        NH=nh, NKV=nkv, G=group, GP=max(16, triton.next_power_of_2(group)), D=hd, BN=64,
        IEEE=q.dtype == torch.float32,
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
) -> None:
    """qkv [B, >= (nh+2nkv)*D] rows -> q_out [B, nh, D]; k, v written at ``slot`` of the caches."""
    bsz = qkv.shape[0]
    grid: Any = (bsz, n_heads + n_kv)
    _rope_kv_kernel[grid](
        qkv, qkv.stride(0), cos, sin, pad, slot, q_out, k_cache, v_cache, k_cache.shape[2],
        NH=n_heads, NKV=n_kv, D=head_dim,
    )  # fmt: skip


def add_rmsnorm(
    x: torch.Tensor, delta: torch.Tensor | None, weight: torch.Tensor, eps: float
) -> torch.Tensor:
    """x += delta (in place, when given); return RMSNorm(x) * weight. x [B, H] contiguous."""
    bsz, n_cols = x.shape
    out = torch.empty_like(x)
    grid: Any = (bsz,)
    _add_rmsnorm_kernel[grid](
        x, delta if delta is not None else x, delta.stride(0) if delta is not None else 0, weight, out,
        n_cols, eps, HAS_DELTA=delta is not None, BLOCK=triton.next_power_of_2(n_cols),
    )  # fmt: skip
    return out


def silu_mul(gu: torch.Tensor, inter: int) -> torch.Tensor:
    """gu [B, >= 2*inter] (gate | up) -> SiLU(gate) * up, [B, inter]."""
    bsz = gu.shape[0]
    out = torch.empty(bsz, inter, device=gu.device, dtype=gu.dtype)
    block = 1024
    grid: Any = (bsz, triton.cdiv(inter, block))
    _silu_mul_kernel[grid](gu, gu.stride(0), out, inter, BLOCK=block)
    return out
