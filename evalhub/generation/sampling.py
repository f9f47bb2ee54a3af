"""Token choice: greedy, or seeded temperature/top-p sampling that is a pure function of
(logits, per-row seed, step) — so a row samples the same tokens whatever batch it sits in.

Everything here is plain tensor code with no host synchronisation, so it can live inside a
captured CUDA graph. The random number is a counter-based integer hash of (seed, step), not a
stateful generator: a stateful generator would hand out numbers in batch order.
"""

from __future__ import annotations

import torch

_M31 = (1 << 31) - 1


def _mix31(x: torch.Tensor) -> torch.Tensor:
    # A 31-bit integer hash; every product stays below 2**62, so int64 never overflows.
    x = ((x ^ (x >> 15)) * 0x2C1B3C6D) & _M31
    x = ((x ^ (x >> 12)) * 0x297A2D39) & _M31
    x = ((x ^ (x >> 15)) * 0x1B873593) & _M31
    return x ^ (x >> 16)


def uniform(seeds: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """One float32 in [0, 1) per row, from int64 seeds [B] (non-negative) and an int64 step."""
    lo = seeds & _M31
    hi = (seeds >> 31) & _M31
    h = _mix31(lo ^ _mix31(hi ^ _mix31((step & _M31) + 0x5BD1E995)))
    h2 = _mix31(h ^ 0x68E31DA4)
    bits = ((h & 0xFFF) << 12) | (h2 & 0xFFF)  # 24 random bits
    return bits.to(torch.float32) * (1.0 / (1 << 24))


def choose_tokens(
    logits: torch.Tensor,
    *,
    greedy: bool,
    temperature: float,
    top_p: float,
    seeds: torch.Tensor,
    step: torch.Tensor,
) -> torch.Tensor:
    """Next token per row, int64 [B]. ``logits`` [B, V] in any float dtype."""
    if greedy:
        return torch.argmax(logits, dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    u = uniform(seeds, step).unsqueeze(-1)
    if top_p >= 1.0:
        cdf = torch.cumsum(probs, dim=-1)
        target = u * cdf[:, -1:]
        idx = torch.searchsorted(cdf, target, right=True)
        return idx.clamp_(max=probs.shape[-1] - 1).squeeze(-1)
    sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
    cdf = torch.cumsum(sorted_probs, dim=-1)
    # Keep the smallest prefix whose mass reaches top_p (the first token is always kept).
    keep = (cdf - sorted_probs) < top_p
    kept = torch.where(keep, sorted_probs, torch.zeros_like(sorted_probs))
    kept_cdf = torch.cumsum(kept, dim=-1)
    target = u * kept_cdf[:, -1:]
    idx = torch.searchsorted(kept_cdf, target, right=True).clamp_(max=probs.shape[-1] - 1)
    return torch.gather(order, -1, idx).squeeze(-1)
