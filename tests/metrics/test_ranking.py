"""Bradley-Terry ratings, style features and style control, on simulations with known truth."""

import json
import math

import numpy as np
import pytest

from metrics.ranking import (
    LENGTH_ONLY,
    STYLE_FEATURES,
    StyleFeatures,
    _unique_rows,
    battle_arrays,
    bradley_terry,
    controlled_win_rate,
    style_controlled_bradley_terry,
    style_feature_table,
    style_features,
)
from tests.lazy import lazy_import

sm = lazy_import("statsmodels.api")  # ~2 s to import: only the tests that fit a model pay

TRUE_ELO = {"m0": 1200.0, "m1": 1100.0, "m2": 1000.0, "m3": 1000.0, "m4": 900.0, "m5": 800.0}


def simulate_battles(n: int, seed: int) -> list[tuple[str, str, str]]:
    rng = np.random.default_rng(seed)
    names = list(TRUE_ELO)
    battles = []
    for _ in range(n):
        i, j = rng.choice(len(names), 2, replace=False)
        a, b = names[i], names[j]
        p_a = 1 / (1 + 10 ** ((TRUE_ELO[b] - TRUE_ELO[a]) / 400))
        battles.append((a, b, "a" if rng.random() < p_a else "b"))
    return battles


def test_bradley_terry_recovers_known_strengths_from_simulated_battles() -> None:
    result = bradley_terry(simulate_battles(4000, seed=11), resamples=200, seed=0)
    mean_true = np.mean(list(TRUE_ELO.values()))
    covered = 0
    for model, true in TRUE_ELO.items():
        entry = result.rating(model)
        assert entry.rating == pytest.approx(true - mean_true + 1000, abs=35)
        covered += entry.ci_low <= true - mean_true + 1000 <= entry.ci_high
    assert covered >= 5
    assert [r.model for r in result.ratings][:2] == ["m0", "m1"]
    assert np.mean([r.rating for r in result.ratings]) == pytest.approx(1000)
    assert result.resamples_used == 200


def test_bradley_terry_matches_a_direct_logistic_regression_mle() -> None:
    battles = simulate_battles(1500, seed=3)
    names = list(TRUE_ELO)
    design = np.zeros((len(battles), len(names)))
    for row, (a, b, _) in enumerate(battles):
        design[row, names.index(a)] = math.log(10)
        design[row, names.index(b)] = -math.log(10)
    won = np.array([w == "a" for _, _, w in battles], dtype=float)
    # Drop the last model's column: its rating is the reference zero.
    logit = sm.Logit(won, design[:, :-1]).fit(disp=0, tol=1e-12)
    direct = np.append(logit.params, 0.0) * 400
    result = bradley_terry(battles, resamples=0, anchor="m5")
    ours = np.array([result.rating(m).rating - 1000 for m in names])
    np.testing.assert_allclose(ours, direct, atol=0.05)


def test_two_models_rating_gap_follows_the_win_share_with_ties_as_half() -> None:
    # 2 wins, 1 tie, 1 loss: a scores 2.5 of 4, so 10 ** (gap / 400) = 2.5 / 1.5.
    battles = [("x", "y", "a"), ("y", "x", "b"), ("x", "y", "tie"), ("x", "y", "b")]
    result = bradley_terry(battles, resamples=0)
    gap = result.rating("x").rating - result.rating("y").rating
    assert gap == pytest.approx(400 * math.log10(2.5 / 1.5), abs=1e-3)
    assert result.rating("x").score == 2.5
    both_bad = [("x", "y", "a"), ("y", "x", "b"), ("x", "y", "both_bad"), ("x", "y", "b")]
    assert bradley_terry(both_bad, resamples=0).rating("x").rating == pytest.approx(result.rating("x").rating)


def test_bootstrap_intervals_are_reproducible_for_a_seed() -> None:
    battles = simulate_battles(600, seed=5)
    first = bradley_terry(battles, resamples=100, seed=9)
    assert first == bradley_terry(battles, resamples=100, seed=9)
    assert first != bradley_terry(battles, resamples=100, seed=10)


def test_undefined_ratings_are_none_with_reason() -> None:
    sweep = bradley_terry([("x", "y", "a"), ("x", "y", "a")], resamples=10)
    assert all(r.rating is None for r in sweep.ratings)
    assert sweep.reason is not None and "not identifiable" in sweep.reason
    json.dumps(sweep.to_dict())
    # With Arena's L2 penalty the sweep gets a finite rating.
    assert bradley_terry([("x", "y", "a"), ("x", "y", "a")], resamples=10, reg=0.5).rating("x").rating > 1000
    disconnected = bradley_terry(
        [("x", "y", "a"), ("y", "x", "a"), ("u", "v", "a"), ("v", "u", "a")], resamples=0, reg=0.5
    )
    assert disconnected.reason == "ratings are not identifiable: the battles do not connect all models"
    assert bradley_terry([], resamples=10).reason == "no battles"


def test_battles_with_unknown_winner_or_one_model_are_refused() -> None:
    with pytest.raises(ValueError):
        bradley_terry([("x", "y", "model_a")])
    with pytest.raises(ValueError):
        bradley_terry([("x", "x", "a")])


def test_style_features_count_length_and_markdown_outside_code() -> None:
    text = (
        "# Title\n"
        "Some **bold** and __also bold__ text.\n"
        "## Steps\n"
        "1. first\n"
        "2. second\n"
        "- bullet\n"
        "```\n# not a header\n- not a list\n```\n"
    )
    features = style_features(text)
    assert (features.headers, features.lists, features.bold) == (2, 3, 2)
    assert features.chars == len(text)
    assert style_features("Hello, world!").tokens == 4
    assert style_features("").tokens == 0


def simulate_length_bias(n: int, seed: int, quality_gap: float = 0.0) -> tuple[list, list, list]:
    """Two models; raters prefer the longer answer (and, with quality_gap, model "long")."""
    rng = np.random.default_rng(seed)
    battles, styles_a, styles_b = [], [], []

    def output(model: str) -> StyleFeatures:
        tokens = int(rng.uniform(150, 600) if model == "long" else rng.uniform(50, 400))
        return StyleFeatures(
            chars=5 * tokens,
            tokens=tokens,
            headers=int(rng.integers(0, 3)),
            lists=int(rng.integers(0, 5)),
            bold=int(rng.integers(0, 3)),
        )

    for _ in range(n):
        pair = ("long", "short") if rng.random() < 0.5 else ("short", "long")
        fa, fb = output(pair[0]), output(pair[1])
        length = (fa.tokens - fb.tokens) / (fa.tokens + fb.tokens + 1)
        quality = quality_gap if pair[0] == "long" else -quality_gap
        p_a = 1 / (1 + math.exp(-(4 * length + quality)))
        battles.append((*pair, "a" if rng.random() < p_a else "b"))
        styles_a.append(fa)
        styles_b.append(fb)
    return battles, styles_a, styles_b


def test_style_control_removes_a_pure_length_advantage() -> None:
    battles, styles_a, styles_b = simulate_length_bias(1500, seed=1)
    plain = bradley_terry(battles, resamples=100)
    assert plain.rating("long").ci_low > plain.rating("short").ci_high

    controlled = style_controlled_bradley_terry(battles, styles_a, styles_b, resamples=100)
    long_, short = controlled.ratings.rating("long"), controlled.ratings.rating("short")
    assert abs(long_.rating - short.rating) < 25
    assert long_.ci_low < short.ci_high and short.ci_low < long_.ci_high
    coefficients = {c.feature: c for c in controlled.style}
    assert coefficients["tokens"].ci_low > 0.5
    for name in ("headers", "lists", "bold"):
        assert coefficients[name].ci_low < 0 < coefficients[name].ci_high

    rate = controlled_win_rate(
        battles, styles_a, styles_b, candidate="long", baseline="short", features=LENGTH_ONLY, resamples=100
    )
    assert rate.uncontrolled_win_rate > 0.6
    assert rate.observed_win_rate == pytest.approx(rate.uncontrolled_win_rate, abs=0.01)
    assert rate.ci_low < 0.5 < rate.ci_high
    json.dumps(rate.to_dict())


def test_style_control_keeps_a_real_quality_advantage() -> None:
    battles, styles_a, styles_b = simulate_length_bias(1500, seed=4, quality_gap=0.8)
    rate = controlled_win_rate(battles, styles_a, styles_b, candidate="long", baseline="short", resamples=100)
    # True controlled win probability: 1 / (1 + exp(-0.8)) = 0.69.
    assert rate.ci_low < 1 / (1 + math.exp(-0.8)) < rate.ci_high
    assert rate.ci_low > 0.6
    assert rate.controlled_win_rate < rate.uncontrolled_win_rate


def test_style_control_reports_constant_features_and_missing_models() -> None:
    battles, styles_a, styles_b = simulate_length_bias(200, seed=4)
    flat = [StyleFeatures(chars=s.chars, tokens=s.tokens, headers=0, lists=0, bold=0) for s in styles_a]
    flat_b = [StyleFeatures(chars=s.chars, tokens=s.tokens, headers=0, lists=0, bold=0) for s in styles_b]
    result = style_controlled_bradley_terry(battles, flat, flat_b, resamples=20)
    headers = next(c for c in result.style if c.feature == "headers")
    assert headers.coefficient is None and headers.reason == "feature does not vary across battles"
    missing = controlled_win_rate(
        battles, styles_a, styles_b, candidate="nope", baseline="short", resamples=5
    )
    assert missing.controlled_win_rate is None and missing.reason == "no battles for nope"
    with pytest.raises(ValueError):
        style_controlled_bradley_terry(battles, styles_a[:-1], styles_b)


STYLE_PIECES = [
    "word",
    "Ünïcode",
    "ß",
    "1.",
    "2. item",
    "- a",
    "* b",
    "+ c",
    "# H",
    "####### x",
    "**bold**",
    "__u__",
    "```code # x **y**```",
    "```",
    "\n",
    "\n\n",
    " ",
    "\t",
    "é",
    "—",
    ",",
    "!",
    "_",
    "x_y",
    "9",
    "\u00a0",
]


def test_style_feature_table_counts_as_style_features_does() -> None:
    rng = np.random.default_rng(4)
    texts = [
        "".join(
            str(rng.choice(STYLE_PIECES)) + str(rng.choice([" ", "\n", ""]))
            for _ in range(int(rng.integers(0, 30)))
        )
        for _ in range(400)
    ] + ["", "plain ascii words, and punctuation!"]
    names = ("chars", "tokens", "headers", "lists", "bold")
    table = style_feature_table(texts, names)
    expected = [[style_features(t).get(f) for f in names] for t in texts]
    np.testing.assert_array_equal(table, expected)
    assert any(t.isascii() for t in texts) and not all(t.isascii() for t in texts)


def test_battle_arrays_fit_the_same_as_battle_tuples() -> None:
    battles = simulate_battles(600, seed=5)
    names = list(TRUE_ELO)
    winner = {"a": 0, "b": 1}
    arrays = battle_arrays(
        names,
        np.array([names.index(a) for a, _, _ in battles]),
        np.array([names.index(b) for _, b, _ in battles]),
        np.array([winner[w] for _, _, w in battles]),
    )
    assert arrays.models == list(dict.fromkeys(m for a, b, _ in battles for m in (a, b)))
    assert bradley_terry(arrays, resamples=20, seed=1) == bradley_terry(battles, resamples=20, seed=1)
    styles = [style_features("word " * (3 + i % 7) + "# x\n" * (i % 2)) for i in range(len(battles))]
    other = list(reversed(styles))
    raw = np.array([[s.get(f) for f in LENGTH_ONLY] for s in styles])
    raw_other = np.array([[s.get(f) for f in LENGTH_ONLY] for s in other])
    by_tuples = controlled_win_rate(
        battles, styles, other, candidate="m1", baseline="m2", features=LENGTH_ONLY, resamples=10
    )
    by_arrays = controlled_win_rate(
        arrays, raw, raw_other, candidate="m1", baseline="m2", features=LENGTH_ONLY, resamples=10
    )
    assert by_arrays == by_tuples


def test_battle_arrays_refuse_a_model_against_itself_and_unknown_winners() -> None:
    with pytest.raises(ValueError, match="twice"):
        battle_arrays(["x", "y"], np.array([0]), np.array([0]), np.array([0]))
    with pytest.raises(ValueError, match="winner"):
        battle_arrays(["x", "y"], np.array([0]), np.array([1]), np.array([4]))


def test_unique_rows_are_numpys_unique_rows() -> None:
    rng = np.random.default_rng(2)
    table = np.column_stack(
        [
            rng.integers(0, 3, 3000),
            rng.integers(0, 3, 3000),
            rng.choice([0, 0.5, 1], 3000),
            rng.integers(0, 5, (3000, 2)) / 3,
        ]
    )
    rows, counts = _unique_rows(table)
    expected_rows, expected_counts = np.unique(table, axis=0, return_counts=True)
    np.testing.assert_array_equal(rows, expected_rows)
    np.testing.assert_array_equal(counts, expected_counts)


def test_style_feature_table_handles_empty_texts_anywhere() -> None:
    texts = ["", "a b!", "", "", "# x", ""]
    expected = [[style_features(t).get(f) for f in STYLE_FEATURES] for t in texts]
    np.testing.assert_array_equal(style_feature_table(texts), expected)
    assert style_feature_table([]).shape == (0, len(STYLE_FEATURES))
