"""Bradley-Terry ratings from pairwise battles, as LMSYS Chatbot Arena computes them, and the
style-controlled variant that separates "better" from "longer / more markdown".

The likelihood is fitted with ``scipy.optimize.minimize`` (L-BFGS-B with an analytic
gradient), the same approach as FastChat's ``fastchat/serve/monitor/rating_systems.py``
(``fit_bt`` / ``fit_contextual_bt``); it is equivalent to a no-intercept logistic regression
on the +-1 design matrix, with ties entered as outcome 0.5 (half a win for each side).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.special import expit
from threadpoolctl import threadpool_limits

from metrics.stats import StatResult, mc_field, percentile_mc_se

Battle = tuple[str, str, str]
"""``(model_a, model_b, winner)`` with winner one of ``"a"``, ``"b"``, ``"tie"``, ``"both_bad"``."""

_OUTCOME = {"a": 1.0, "b": 0.0, "tie": 0.5, "both_bad": 0.5}

STYLE_FEATURES = ("tokens", "headers", "lists", "bold")
"""Arena's style-control covariates: length in tokens, header, list-item and bold counts."""
LENGTH_ONLY = ("tokens",)


@dataclass(frozen=True)
class StyleFeatures(StatResult):
    """Surface features of one output; build with ``style_features(text)`` or by hand when a
    real tokenizer count is available."""

    chars: int
    tokens: int
    headers: int
    lists: int
    bold: int

    def get(self, name: str) -> int:
        if name not in self.__dataclass_fields__:
            raise ValueError(f"unknown style feature {name!r}")
        return int(getattr(self, name))


_CODE_BLOCK = re.compile(r"```[^`]*```")
_HEADER = re.compile(r"^#{1,6}\s", re.MULTILINE)
_ORDERED_ITEM = re.compile(r"^\s*\d+\.\s", re.MULTILINE)
_UNORDERED_ITEM = re.compile(r"^\s*[-*+]\s", re.MULTILINE)
_BOLD = re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__")
_TOKEN = re.compile(r"\w+|[^\w\s]")


def _markdown_counts(text: str) -> tuple[int, int, int]:
    """Header, list-item and bold counts outside fenced code blocks. Each pattern runs only when
    the characters it needs are in the text (the counts are the same, the scans fewer)."""
    prose = _CODE_BLOCK.sub("", text) if "```" in text else text
    headers = len(_HEADER.findall(prose)) if "#" in prose else 0
    lists = len(_ORDERED_ITEM.findall(prose)) if "." in prose else 0
    if "-" in prose or "*" in prose or "+" in prose:
        lists += len(_UNORDERED_ITEM.findall(prose))
    bold = len(_BOLD.findall(prose)) if "**" in prose or "__" in prose else 0
    return headers, lists, bold


def style_features(text: str) -> StyleFeatures:
    """Length and markdown counts of an output, with the patterns of FastChat's
    ``add_markdown_info.py``: markdown is counted outside fenced code blocks.

    ``tokens`` approximates a tokenizer by counting words and punctuation marks; pass a real
    tokenizer count in a hand-built ``StyleFeatures`` when one is at hand.
    """
    headers, lists, bold = _markdown_counts(text)
    return StyleFeatures(
        chars=len(text), tokens=len(_TOKEN.findall(text)), headers=headers, lists=lists, bold=bold
    )


# Per ASCII character, as the _TOKEN pattern classifies it: 1 a word character (\w), 2 another
# non-space character (a one-character token), 0 white space.
_ASCII_CLASS = np.array(
    [1 if re.fullmatch(r"\w", chr(c)) else 0 if re.fullmatch(r"\s", chr(c)) else 2 for c in range(128)],
    dtype=np.int8,
)


def _ascii_counts(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """For ASCII texts at once: ``len(_TOKEN.findall(t))`` (a token starts at each run of word
    characters and at each other non-space character), and whether the text holds any character
    a markdown pattern needs (each text is followed by a space, which neither counts nor matches)."""
    if not texts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    data = np.frombuffer((" ".join(texts) + " ").encode("ascii"), dtype=np.uint8)
    kind = _ASCII_CLASS[data]
    word = kind == 1
    start = kind == 2
    start[0] |= word[0]
    start[1:] |= word[1:] & ~word[:-1]
    # One segment per text with its trailing space, so that no segment is empty (reduceat would
    # return the next element for an empty one); the space never starts a token or marks markdown.
    offsets = np.concatenate([[0], np.cumsum([len(t) + 1 for t in texts])[:-1]])
    tokens = np.add.reduceat(start, offsets, dtype=np.int64)
    marks = np.logical_or.reduceat(_MARKDOWN_CHARS[data], offsets)
    return tokens, marks


# Every markdown pattern needs one of these: a code fence, "#", "1.", "-", "*", "+", "**" or "__".
_MARKDOWN_CHARS = np.zeros(256, dtype=bool)
_MARKDOWN_CHARS[[ord(c) for c in "`#.-*+_"]] = True


def style_feature_table(texts: Sequence[str], features: Sequence[str] = STYLE_FEATURES) -> np.ndarray:
    """``style_features`` of many texts as an array (one row per text, one column per name in
    ``features``): the same counts, with the token counts of ASCII texts done by numpy in one
    pass, and the markdown patterns run only on texts holding a character they need."""
    ascii_rows = [i for i, t in enumerate(texts) if t.isascii()]
    tokens = np.zeros(len(texts), dtype=np.int64)
    needs_markdown = np.ones(len(texts), dtype=bool)
    tokens[ascii_rows], needs_markdown[ascii_rows] = _ascii_counts([texts[i] for i in ascii_rows])
    for i, text in enumerate(texts):
        if not text.isascii():
            tokens[i] = len(_TOKEN.findall(text))
    markdown = np.zeros((len(texts), 3), dtype=np.int64)
    for i in np.flatnonzero(needs_markdown).tolist():
        markdown[i] = _markdown_counts(texts[i])
    columns = {
        "chars": np.array([len(t) for t in texts], dtype=np.int64),
        "tokens": tokens,
        "headers": markdown[:, 0],
        "lists": markdown[:, 1],
        "bold": markdown[:, 2],
    }
    unknown = [f for f in features if f not in columns]
    if unknown:
        raise ValueError(f"unknown style features {unknown}")
    return np.column_stack([columns[f] for f in features]).astype(float).reshape(len(texts), len(features))


@dataclass(frozen=True)
class ModelRating(StatResult):
    """A model's rating on the Elo-like scale with its bootstrap percentile interval."""

    model: str
    rating: float | None
    ci_low: float | None
    ci_high: float | None
    n_battles: int
    score: float
    """Wins plus half the ties."""
    mc_se_low: float | None = mc_field()
    """Monte-Carlo standard errors of the interval's endpoints (``mc_error=True``)."""
    mc_se_high: float | None = mc_field()


@dataclass(frozen=True)
class BradleyTerryResult(StatResult):
    """Ratings sorted best first. ``P(i beats j) = 1 / (1 + base ** ((R_j - R_i) / scale))``;
    the ratings average ``initial`` unless ``anchor`` pins one model to it."""

    ratings: tuple[ModelRating, ...]
    n_battles: int
    scale: float
    base: float
    initial: float
    anchor: str | None
    reg: float
    confidence: float
    resamples: int
    resamples_used: int
    seed: int
    reason: str | None = None

    def rating(self, model: str) -> ModelRating:
        for entry in self.ratings:
            if entry.model == model:
                return entry
        raise KeyError(model)


@dataclass(frozen=True)
class StyleCoefficient(StatResult):
    """Log-odds change per standard deviation of the normalised difference (a minus b)."""

    feature: str
    coefficient: float | None
    ci_low: float | None
    ci_high: float | None
    std: float | None
    reason: str | None = None
    mc_se_low: float | None = mc_field()
    mc_se_high: float | None = mc_field()


@dataclass(frozen=True)
class StyleControlledResult(StatResult):
    """Bradley-Terry ratings with style covariates, and the style coefficients."""

    ratings: BradleyTerryResult
    style: tuple[StyleCoefficient, ...]


@dataclass(frozen=True)
class ControlledWinRate(StatResult):
    """Candidate-vs-baseline win probability predicted at zero style difference."""

    candidate: str
    baseline: str
    n_battles: int
    observed_win_rate: float | None
    """Candidate wins plus half the ties over their direct battles."""
    uncontrolled_win_rate: float | None
    """The same prediction from the plain Bradley-Terry fit (no style covariates)."""
    controlled_win_rate: float | None
    ci_low: float | None
    ci_high: float | None
    features: tuple[str, ...]
    style: tuple[StyleCoefficient, ...]
    confidence: float
    resamples: int
    resamples_used: int
    seed: int
    reason: str | None = None
    mc_se_low: float | None = mc_field()
    """Monte-Carlo standard errors of the interval's endpoints (``mc_error=True``)."""
    mc_se_high: float | None = mc_field()


@dataclass(frozen=True)
class BattleArrays:
    """Battles as integer-coded columns: battle i is ``models[a[i]]`` against ``models[b[i]]``
    with ``outcome[i]`` 1 (a won), 0 (b won) or 0.5 (tie or both bad). Models are numbered in
    order of first appearance, as when parsing ``Battle`` tuples. Build with ``battle_arrays``."""

    models: list[str]
    a: np.ndarray
    b: np.ndarray
    outcome: np.ndarray


_Battles = BattleArrays
WINNERS = ("a", "b", "tie", "both_bad")
"""The winner codes of ``battle_arrays``: 0 a, 1 b, 2 tie, 3 both bad."""


def battle_arrays(names: Sequence[str], a: np.ndarray, b: np.ndarray, winner: np.ndarray) -> BattleArrays:
    """Battles from integer columns (for many battles, without a tuple per battle): battle i is
    ``names[a[i]]`` against ``names[b[i]]`` and ``WINNERS[winner[i]]`` won. Equals parsing the
    tuples ``(names[a[i]], names[b[i]], WINNERS[winner[i]])``."""
    a, b, winner = (np.asarray(x, dtype=np.int64).reshape(-1) for x in (a, b, winner))
    if not a.size == b.size == winner.size:
        raise ValueError("a, b and winner must have the same length")
    if np.any((winner < 0) | (winner >= len(WINNERS))):
        raise ValueError(f"winner codes must be 0..{len(WINNERS) - 1} ({', '.join(WINNERS)})")
    same = np.flatnonzero(a == b)
    if same.size:
        raise ValueError(f"a battle needs two different models, got {names[int(a[same[0]])]!r} twice")
    # Number the models as _parse does: by first appearance, scanning a then b of each battle.
    seen = np.column_stack([a, b]).reshape(-1)
    distinct, first = np.unique(seen, return_index=True)
    order = distinct[np.argsort(first, kind="stable")]
    recode = np.zeros(int(distinct.max()) + 1 if distinct.size else 0, dtype=np.int64)
    recode[order] = np.arange(order.size)
    outcome = np.array([_OUTCOME[w] for w in WINNERS])[winner]
    return BattleArrays([names[int(i)] for i in order], recode[a], recode[b], outcome)


def _parse(battles: Sequence[Battle] | BattleArrays) -> BattleArrays:
    if isinstance(battles, BattleArrays):
        return battles
    models: dict[str, int] = {}
    a, b, outcome = [], [], []
    for model_a, model_b, winner in battles:
        if winner not in _OUTCOME:
            raise ValueError(f"unknown winner {winner!r}; expected one of {sorted(_OUTCOME)}")
        if model_a == model_b:
            raise ValueError(f"a battle needs two different models, got {model_a!r} twice")
        a.append(models.setdefault(model_a, len(models)))
        b.append(models.setdefault(model_b, len(models)))
        outcome.append(_OUTCOME[winner])
    return _Battles(list(models), np.array(a, dtype=int), np.array(b, dtype=int), np.array(outcome))


def _identifiable(data: _Battles, weights: np.ndarray, *, strict: bool) -> bool:
    """Whether the ratings are determined: the battle graph must be connected, and without
    regularisation every model must have scored against, and conceded to, the rest (the
    "won-by" graph strongly connected; Zermelo 1929, Ford 1957), or the MLE diverges."""
    p = len(data.models)
    present = (weights > 0).astype(float)
    # The graphs have p nodes: count each (i, j) edge's battles first, then look at the p x p table.
    pair = data.a * p + data.b
    if not strict:
        graph = coo_matrix(np.bincount(pair, present, minlength=p * p).reshape(p, p))
        return connected_components(graph, directed=False)[0] == 1
    # Edge i -> j when i scored (won or tied) against j.
    scored = np.bincount(pair, present * (data.outcome > 0), minlength=p * p).reshape(p, p)
    conceded = np.bincount(pair, present * (data.outcome < 1), minlength=p * p).reshape(p, p)
    graph = coo_matrix(scored + conceded.T)
    return connected_components(graph, directed=True, connection="strong")[0] == 1


def _fit(
    data: _Battles, features: np.ndarray, weights: np.ndarray, *, alpha: float, reg: float
) -> np.ndarray:
    """Weighted (contextual) Bradley-Terry MLE; returns ``[ratings..., style coefficients...]``
    with ratings in units of ``1 / alpha`` log-odds, centred on zero."""
    p = len(data.models)
    y = data.outcome

    def loss_and_grad(params: np.ndarray) -> tuple[float, np.ndarray]:
        ratings, gamma = params[:p], params[p:]
        logits = alpha * (ratings[data.a] - ratings[data.b]) + features @ gamma
        # log(sigmoid(z)) = -logaddexp(0, -z): stable for large |z|.
        loss = float(np.sum(weights * (y * np.logaddexp(0, -logits) + (1 - y) * np.logaddexp(0, logits))))
        loss += 0.5 * reg * float(params @ params)
        g = -weights * (y - expit(logits))
        grad = reg * params
        grad[:p] += alpha * (np.bincount(data.a, g, minlength=p) - np.bincount(data.b, g, minlength=p))
        grad[p:] += features.T @ g
        return loss, grad

    result = minimize(
        loss_and_grad,
        np.zeros(p + features.shape[1]),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 1000, "gtol": 1e-8},
    )
    params = np.asarray(result.x, dtype=float)
    params[:p] -= params[:p].mean()
    return params


def _unique_rows(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(table, axis=0, return_counts=True)`` (rows sorted lexicographically) by a
    lexsort of the columns: the same rows and counts several times faster on wide float rows."""
    if table.shape[0] == 0:
        return table.copy(), np.zeros(0, dtype=np.int64)
    order = np.lexsort(table.T[::-1])
    ordered = table[order]
    starts = np.concatenate([[True], np.any(ordered[1:] != ordered[:-1], axis=1)])
    index = np.flatnonzero(starts)
    counts = np.diff(np.append(index, table.shape[0]))
    return ordered[index], counts


def _percentiles(samples: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    tail = 100 * (1 - confidence) / 2
    return np.percentile(samples, tail, axis=0), np.percentile(samples, 100 - tail, axis=0)


McErrors = tuple[float | None, float | None]
_NO_MC: McErrors = (None, None)


def _mc_errors(samples: np.ndarray, confidence: float, wanted: bool) -> list[McErrors]:
    """Per column, the endpoints' Monte-Carlo standard errors (None, None when not ``wanted``):
    these fits are too costly to resample until the error is small, so the report shows it beside
    the interval."""
    table = samples.reshape(len(samples), -1)
    if not wanted:
        return [_NO_MC] * table.shape[1]
    return [percentile_mc_se(table[:, k], confidence) for k in range(table.shape[1])]


@dataclass(frozen=True)
class _Fit:
    params: np.ndarray | None
    boot: np.ndarray  # resamples_used x n_params
    reason: str | None


def _fit_with_bootstrap(
    data: _Battles,
    features: np.ndarray,
    *,
    alpha: float,
    reg: float,
    resamples: int,
    seed: int,
) -> _Fit:
    n = data.a.size
    n_params = len(data.models) + features.shape[1]
    # Identical battles (same pair, outcome and style) become one weighted row: resampling
    # battles with replacement is then a multinomial draw of the row weights, as in FastChat.
    rows, counts = _unique_rows(np.column_stack([data.a, data.b, data.outcome, features]))
    unique = _Battles(data.models, rows[:, 0].astype(int), rows[:, 1].astype(int), rows[:, 2])
    unique_features = rows[:, 3:]
    counts = counts.astype(float)
    if not _identifiable(unique, counts, strict=reg == 0):
        reason = (
            "ratings are not identifiable: some model won every battle or lost every battle "
            "against the others, so the maximum-likelihood ratings diverge (use reg > 0)"
            if reg == 0
            else "ratings are not identifiable: the battles do not connect all models"
        )
        return _Fit(None, np.empty((0, n_params)), reason)
    rng = np.random.default_rng(seed)
    boot = []
    # These fits are tiny: OpenBLAS waking its threads for each L-BFGS-B step costs far more
    # than the arithmetic (20x slower on a busy 2-core machine), so keep BLAS single-threaded.
    with threadpool_limits(limits=1, user_api="blas"):
        params = _fit(unique, unique_features, counts, alpha=alpha, reg=reg)
        for weights in rng.multinomial(n, counts / n, size=resamples).astype(float):
            if _identifiable(unique, weights, strict=reg == 0):
                boot.append(_fit(unique, unique_features, weights, alpha=alpha, reg=reg))
    return _Fit(params, np.array(boot).reshape(len(boot), n_params), None)


def _rating_table(
    data: _Battles,
    fit: _Fit,
    *,
    scale: float,
    initial: float,
    anchor: str | None,
    confidence: float,
    mc_error: bool = False,
) -> tuple[ModelRating, ...]:
    p = len(data.models)
    n_battles = np.bincount(data.a, minlength=p) + np.bincount(data.b, minlength=p)
    score = np.bincount(data.a, data.outcome, minlength=p) + np.bincount(
        data.b, 1 - data.outcome, minlength=p
    )
    if anchor is not None and anchor not in data.models:
        raise ValueError(f"anchor {anchor!r} is not among the models")

    def to_scale(ratings: np.ndarray) -> np.ndarray:
        shifted = ratings - ratings[..., [data.models.index(anchor)]] if anchor is not None else ratings
        return np.asarray(scale * shifted + initial)

    point = to_scale(fit.params[:p]) if fit.params is not None else None
    mc: list[McErrors] = [_NO_MC] * p
    if len(fit.boot):
        low, high = _percentiles(to_scale(fit.boot[:, :p]), confidence)
        if point is not None:
            mc = _mc_errors(to_scale(fit.boot[:, :p]), confidence, mc_error)
    table = [
        ModelRating(
            model=model,
            rating=float(point[i]) if point is not None else None,
            ci_low=float(low[i]) if point is not None and len(fit.boot) else None,
            ci_high=float(high[i]) if point is not None and len(fit.boot) else None,
            n_battles=int(n_battles[i]),
            score=float(score[i]),
            mc_se_low=mc[i][0],
            mc_se_high=mc[i][1],
        )
        for i, model in enumerate(data.models)
    ]
    return tuple(sorted(table, key=lambda r: (-(r.rating if r.rating is not None else -math.inf), r.model)))


def bradley_terry(
    battles: Sequence[Battle] | BattleArrays,
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    scale: float = 400.0,
    base: float = 10.0,
    initial: float = 1000.0,
    anchor: str | None = None,
    reg: float = 0.0,
    mc_error: bool = False,
) -> BradleyTerryResult:
    """Bradley-Terry ratings on the Arena scale (scale 400, base 10, mean 1000) with seeded
    bootstrap percentile intervals (battles resampled with replacement).

    A tie and a "both bad" verdict each count as half a win for both sides, as in Arena.
    With ``reg=0`` (Arena's plain BT) the ratings are None with a reason when the MLE does not
    exist; bootstrap resamples where it does not exist are skipped and counted. ``mc_error``
    adds each endpoint's Monte-Carlo standard error (``metrics.stats.percentile_mc_se``).
    """
    data = _parse(battles)
    no_features = np.zeros((data.a.size, 0))
    common: dict[str, Any] = {
        "n_battles": int(data.a.size),
        "scale": scale,
        "base": base,
        "initial": initial,
        "anchor": anchor,
        "reg": reg,
        "confidence": confidence,
        "resamples": resamples,
        "seed": seed,
    }
    if len(data.models) < 2:
        return BradleyTerryResult(ratings=(), resamples_used=0, reason="no battles", **common)
    fit = _fit_with_bootstrap(
        data, no_features, alpha=math.log(base), reg=reg, resamples=resamples, seed=seed
    )
    return BradleyTerryResult(
        ratings=_rating_table(
            data, fit, scale=scale, initial=initial, anchor=anchor, confidence=confidence, mc_error=mc_error
        ),
        resamples_used=len(fit.boot),
        reason=fit.reason,
        **common,
    )


Styles = Sequence[StyleFeatures] | Sequence[dict[str, int]] | np.ndarray
"""Per battle side: ``StyleFeatures`` (or their dicts), or an array with one row per battle and
one column per name in ``features``, in that order (the raw counts, not differences)."""


def _raw_styles(styles: Styles, features: Sequence[str]) -> np.ndarray:
    if isinstance(styles, np.ndarray):
        raw = np.asarray(styles, dtype=float).reshape(len(styles), -1)
        if raw.shape[1] != len(features):
            raise ValueError(f"style arrays need one column per feature ({', '.join(features)})")
        return raw
    return np.array([[s.get(f) for f in features] for s in styles], dtype=float).reshape(-1, len(features))


def _style_matrix(
    styles_a: Styles, styles_b: Styles, features: Sequence[str]
) -> tuple[np.ndarray, list[float | None]]:
    """Arena's normalised differences (a - b) / (a + b + 1), divided by their standard
    deviation. Unlike Arena they are not mean-centred: in a model without an intercept a
    non-zero mean would act as a position bias, and here "no style difference" must be
    exactly zero so the controlled win rate is the same whichever side the candidate was
    shown on. Constant features get a zero column and a None std."""
    raw_a, raw_b = _raw_styles(styles_a, features), _raw_styles(styles_b, features)
    diff = (raw_a - raw_b) / (raw_a + raw_b + 1)
    std = diff.std(axis=0)
    stds: list[float | None] = [float(s) if s > 0 else None for s in std]
    safe = np.where(std > 0, std, 1.0)
    return np.where(std > 0, diff / safe, 0.0), stds


def _style_table(
    features: Sequence[str],
    stds: list[float | None],
    fit: _Fit,
    p: int,
    confidence: float,
    mc_error: bool = False,
) -> tuple[StyleCoefficient, ...]:
    mc: list[McErrors] = [_NO_MC] * len(features)
    if len(fit.boot):
        low, high = _percentiles(fit.boot[:, p:], confidence)
        mc = _mc_errors(fit.boot[:, p:], confidence, mc_error)
    table = []
    for k, name in enumerate(features):
        if stds[k] is None:
            table.append(
                StyleCoefficient(name, None, None, None, None, "feature does not vary across battles")
            )
        elif fit.params is None:
            table.append(StyleCoefficient(name, None, None, None, stds[k], fit.reason))
        else:
            table.append(
                StyleCoefficient(
                    name,
                    float(fit.params[p + k]),
                    float(low[k]) if len(fit.boot) else None,
                    float(high[k]) if len(fit.boot) else None,
                    stds[k],
                    mc_se_low=mc[k][0],
                    mc_se_high=mc[k][1],
                )
            )
    return tuple(table)


def _check_styles(battles: Sequence[Battle] | BattleArrays, styles_a: Styles, styles_b: Styles) -> None:
    n = battles.a.size if isinstance(battles, BattleArrays) else len(battles)
    if not n == len(styles_a) == len(styles_b):
        raise ValueError("battles, styles_a and styles_b must have the same length")


def style_controlled_bradley_terry(
    battles: Sequence[Battle] | BattleArrays,
    styles_a: Styles,
    styles_b: Styles,
    *,
    features: Sequence[str] = STYLE_FEATURES,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    scale: float = 400.0,
    base: float = 10.0,
    initial: float = 1000.0,
    anchor: str | None = None,
    reg: float = 0.5,
    mc_error: bool = False,
) -> StyleControlledResult:
    """Bradley-Terry with style covariates (Arena's "style control"): the log-odds that a
    beats b is ``ln(base) * (R_a - R_b) / scale + sum_k gamma_k * x_k`` where ``x_k`` is the
    normalised difference of feature k between the two outputs. The ratings are then the
    strengths with style held equal, and ``gamma`` says how much each feature sways raters.

    ``reg`` is an L2 penalty on all parameters; 0.5 is Arena's default for this fit (it keeps
    the fit defined when a model wins every battle, and shrinks ratings slightly).
    """
    _check_styles(battles, styles_a, styles_b)
    data = _parse(battles)
    x, stds = _style_matrix(styles_a, styles_b, features)
    common: dict[str, Any] = {
        "n_battles": int(data.a.size),
        "scale": scale,
        "base": base,
        "initial": initial,
        "anchor": anchor,
        "reg": reg,
        "confidence": confidence,
        "resamples": resamples,
        "seed": seed,
    }
    if len(data.models) < 2:
        empty = _Fit(None, np.empty((0, len(features))), "no battles")
        return StyleControlledResult(
            BradleyTerryResult(ratings=(), resamples_used=0, reason="no battles", **common),
            _style_table(features, stds, empty, 0, confidence),
        )
    fit = _fit_with_bootstrap(data, x, alpha=math.log(base), reg=reg, resamples=resamples, seed=seed)
    p = len(data.models)
    ratings = BradleyTerryResult(
        ratings=_rating_table(
            data, fit, scale=scale, initial=initial, anchor=anchor, confidence=confidence, mc_error=mc_error
        ),
        resamples_used=len(fit.boot),
        reason=fit.reason,
        **common,
    )
    return StyleControlledResult(ratings, _style_table(features, stds, fit, p, confidence, mc_error))


def controlled_win_rate(
    battles: Sequence[Battle] | BattleArrays,
    styles_a: Styles,
    styles_b: Styles,
    *,
    candidate: str,
    baseline: str,
    features: Sequence[str] = STYLE_FEATURES,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    reg: float = 0.5,
    mc_error: bool = False,
) -> ControlledWinRate:
    """Length- and style-controlled win rate of ``candidate`` over ``baseline``: the
    probability the style-controlled Bradley-Terry fit gives the candidate of winning when
    both outputs have the same length and markdown (all covariates zero), with a seeded
    bootstrap interval. ``features=LENGTH_ONLY`` controls for length alone.

    Other models' battles may be included; they inform the fit through shared opponents
    and the style coefficients.
    """
    _check_styles(battles, styles_a, styles_b)
    data = _parse(battles)
    x, stds = _style_matrix(styles_a, styles_b, features)
    ci = data.models.index(candidate) if candidate in data.models else -1
    bi = data.models.index(baseline) if baseline in data.models else -1
    is_direct = ((data.a == ci) & (data.b == bi)) | ((data.a == bi) & (data.b == ci))
    direct = np.where(data.a == ci, data.outcome, 1 - data.outcome)[is_direct]
    common: dict[str, Any] = {
        "candidate": candidate,
        "baseline": baseline,
        "n_battles": int(direct.size),
        "observed_win_rate": float(np.mean(direct)) if direct.size else None,
        "features": tuple(features),
        "confidence": confidence,
        "resamples": resamples,
        "seed": seed,
    }
    if candidate not in data.models or baseline not in data.models:
        missing = [m for m in (candidate, baseline) if m not in data.models]
        return ControlledWinRate(
            uncontrolled_win_rate=None,
            controlled_win_rate=None,
            ci_low=None,
            ci_high=None,
            style=(),
            resamples_used=0,
            reason=f"no battles for {', '.join(missing)}",
            **common,
        )
    alpha = math.log(10.0)
    i, j = data.models.index(candidate), data.models.index(baseline)
    fit = _fit_with_bootstrap(data, x, alpha=alpha, reg=reg, resamples=resamples, seed=seed)
    style = _style_table(features, stds, fit, len(data.models), confidence, mc_error)
    if fit.params is None:
        return ControlledWinRate(
            uncontrolled_win_rate=None,
            controlled_win_rate=None,
            ci_low=None,
            ci_high=None,
            style=style,
            resamples_used=0,
            reason=fit.reason,
            **common,
        )
    plain = _fit(data, np.zeros((data.a.size, 0)), np.ones(data.a.size), alpha=alpha, reg=reg)
    boot = expit(alpha * (fit.boot[:, i] - fit.boot[:, j]))
    low, high = _percentiles(boot, confidence) if boot.size else (None, None)
    mc = _mc_errors(boot, confidence, mc_error)[0] if boot.size else _NO_MC
    return ControlledWinRate(
        uncontrolled_win_rate=float(expit(alpha * (plain[i] - plain[j]))),
        controlled_win_rate=float(expit(alpha * (fit.params[i] - fit.params[j]))),
        ci_low=float(low) if low is not None else None,
        ci_high=float(high) if high is not None else None,
        style=style,
        resamples_used=len(fit.boot),
        mc_se_low=mc[0],
        mc_se_high=mc[1],
        **common,
    )
