"""Token choice: greedy, seeded sampling as a pure function of (logits, seed, step)."""

from __future__ import annotations

import torch

from evalhub.generation.sampling import choose_tokens, uniform


def test_uniform_is_deterministic_spread_and_in_range() -> None:
    seeds = torch.arange(20000, dtype=torch.long) * 7919 + 12345
    u = uniform(seeds, torch.tensor(3))
    assert torch.equal(u, uniform(seeds, torch.tensor(3)))
    assert not torch.equal(u, uniform(seeds, torch.tensor(4)))
    assert float(u.min()) >= 0 and float(u.max()) < 1
    assert abs(float(u.mean()) - 0.5) < 0.01
    hist = torch.histc(u, bins=10, min=0, max=1)
    assert float(hist.min()) > 1700  # ~2000 per bin


def test_sampling_follows_the_distribution() -> None:
    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1]])).repeat(6000, 1)
    seeds = torch.arange(6000, dtype=torch.long) * 104729
    tokens = choose_tokens(
        logits, greedy=False, temperature=1.0, top_p=1.0, seeds=seeds, step=torch.tensor(0)
    )
    freq = torch.bincount(tokens, minlength=3).float() / 6000
    assert torch.allclose(freq, torch.tensor([0.7, 0.2, 0.1]), atol=0.03)


def test_top_p_keeps_only_the_nucleus() -> None:
    logits = torch.log(torch.tensor([[0.1, 0.6, 0.25, 0.05]])).repeat(2000, 1)
    seeds = torch.arange(2000, dtype=torch.long) * 31337
    tokens = choose_tokens(
        logits, greedy=False, temperature=1.0, top_p=0.8, seeds=seeds, step=torch.tensor(1)
    )
    assert set(tokens.tolist()) == {1, 2}
    tiny = choose_tokens(logits, greedy=False, temperature=1.0, top_p=0.01, seeds=seeds, step=torch.tensor(1))
    assert set(tiny.tolist()) == {1}


def test_greedy_takes_the_first_maximum() -> None:
    logits = torch.tensor([[0.0, 2.0, 2.0], [5.0, 1.0, 0.0]])
    tokens = choose_tokens(
        logits,
        greedy=True,
        temperature=0,
        top_p=1,
        seeds=torch.zeros(2, dtype=torch.long),
        step=torch.tensor(0),
    )
    assert tokens.tolist() == [1, 0]
