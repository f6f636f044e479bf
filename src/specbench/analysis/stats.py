"""Statistics for comparisons: confidence intervals and paired tests on per-item scores.

Everything here is a thin layer over SciPy so the numbers are the textbook ones:
``scipy.stats.bootstrap`` for intervals (seeded, so a report regenerates byte for byte),
``scipy.stats.binomtest`` for McNemar's exact test, ``scipy.stats.chi2`` for its
continuity-corrected form, ``scipy.stats.false_discovery_control`` for the Benjamini-Hochberg
adjustment of a table's p-values (its significance marks are on the adjusted values).
Paired tests take two score vectors already aligned by item id (see
``analysis.tables.pair_scores``); NaN never enters them.  ``SEED`` is the report
schema's default seed (one definition, in ``registry.reports``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

from specbench.registry.reports import BOOTSTRAP_SEED as SEED

CONFIDENCE = 0.95
N_RESAMPLES = 2000


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def is_binary(*arrays: np.ndarray) -> bool:
    """True when every score is 0 or 1 (accuracy-like metrics), which decides the paired test."""
    return all(np.isin(np.asarray(a, dtype=float), (0.0, 1.0)).all() for a in arrays)


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    n: int


def bootstrap_mean(scores: np.ndarray | list[float], confidence: float = CONFIDENCE,
                   n_resamples: int = N_RESAMPLES, seed: int = SEED) -> Interval:
    """Mean with a percentile bootstrap interval.

    Percentile rather than BCa: BCa is undefined when every item has the same score
    (an all-wrong cell of a small model is common), and the percentile interval is what
    evaluation papers usually report for accuracies.
    """
    x = np.asarray(scores, dtype=float)
    if x.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    mean = float(x.mean())
    if x.size == 1 or np.all(x == x[0]):
        return Interval(mean, mean, mean, int(x.size))
    res = stats.bootstrap((x,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                          method="percentile", vectorized=True, rng=_rng(seed))
    return Interval(mean, float(res.confidence_interval.low), float(res.confidence_interval.high), int(x.size))


@dataclass(frozen=True)
class McNemar:
    """McNemar's test on paired right/wrong outcomes.

    ``b``: items A got right and B wrong; ``c``: items A got wrong and B right.  Only these
    discordant pairs carry information; under H0 each is A's with probability 1/2.
    """

    b: int
    c: int
    n: int  # paired items
    p_exact: float  # two-sided exact binomial test on the discordant pairs
    statistic: float  # chi-square with continuity correction, (|b - c| - 1)^2 / (b + c)
    p_chi2: float


def mcnemar(a: np.ndarray | list[float], b: np.ndarray | list[float]) -> McNemar:
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired scores differ in length: {x.shape} vs {y.shape}")
    if not is_binary(x, y):
        raise ValueError("McNemar's test needs 0/1 scores; use paired_bootstrap for the rest")
    n01 = int(np.sum((x == 1) & (y == 0)))
    n10 = int(np.sum((x == 0) & (y == 1)))
    d = n01 + n10
    if d == 0:  # no discordant pair: no evidence either way
        return McNemar(n01, n10, int(x.size), 1.0, 0.0, 1.0)
    p_exact = float(stats.binomtest(n01, d, 0.5, alternative="two-sided").pvalue)
    stat = (abs(n01 - n10) - 1) ** 2 / d
    return McNemar(n01, n10, int(x.size), min(p_exact, 1.0), float(stat), float(stats.chi2.sf(stat, 1)))


@dataclass(frozen=True)
class PairedResult:
    """Mean difference A - B over paired items, its bootstrap interval and a p-value."""

    delta: float
    low: float
    high: float
    p_value: float
    n: int
    test: str  # mcnemar_exact | paired_bootstrap | none
    b: int | None = None  # McNemar's discordant counts, for the tables
    c: int | None = None


def paired_bootstrap(a: np.ndarray | list[float], b: np.ndarray | list[float], confidence: float = CONFIDENCE,
                     n_resamples: int = N_RESAMPLES, seed: int = SEED) -> PairedResult:
    """Bootstrap of the per-item differences (items resampled, pairs kept together).

    The two-sided p-value is the shifted-null bootstrap test: the resampled mean
    differences, centred on the observed one, approximate the null distribution, and p
    is the share at least as far from zero as the observed difference
    (Berg-Kirkpatrick et al., 2012; Koehn, 2004), with the usual +1 correction.
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired scores differ in length: {x.shape} vs {y.shape}")
    d = x - y
    n = int(d.size)
    if n == 0:
        return PairedResult(float("nan"), float("nan"), float("nan"), float("nan"), 0, "none")
    delta = float(d.mean())
    if n == 1 or np.all(d == 0):  # one item, or no item differs: nothing to resample
        return PairedResult(delta, delta, delta, 1.0 if delta == 0 else float("nan"), n, "paired_bootstrap")
    res = stats.bootstrap((d,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                          method="percentile", vectorized=True, rng=_rng(seed))
    dist = np.asarray(res.bootstrap_distribution)
    extreme = int(np.sum(np.abs(dist - delta) >= abs(delta) - 1e-12))
    p = (extreme + 1) / (dist.size + 1)
    return PairedResult(delta, float(res.confidence_interval.low), float(res.confidence_interval.high),
                        float(min(p, 1.0)), n, "paired_bootstrap")


def paired_test(a: np.ndarray | list[float], b: np.ndarray | list[float], confidence: float = CONFIDENCE,
                n_resamples: int = N_RESAMPLES, seed: int = SEED) -> PairedResult:
    """McNemar (exact) for right/wrong scores, the paired bootstrap otherwise; the interval
    of the difference is the paired bootstrap's in both cases."""
    boot = paired_bootstrap(a, b, confidence, n_resamples, seed)
    if boot.n and is_binary(a, b):
        m = mcnemar(a, b)
        return PairedResult(boot.delta, boot.low, boot.high, m.p_exact, boot.n, "mcnemar_exact", m.b, m.c)
    return boot


Reduce = Callable[[np.ndarray], dict[str, np.ndarray]]  # summed per-item statistics -> metrics (scoring.Corpus)


def _resample_weights(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """How often each of n items is drawn in each resample (rows): a bootstrap as a matrix product."""
    return _rng(seed).multinomial(n, np.full(n, 1.0 / n), size=n_resamples).astype(float)


def bootstrap_corpus(counts: np.ndarray, reduce: Reduce, metric: str, confidence: float = CONFIDENCE,
                     n_resamples: int = N_RESAMPLES, seed: int = SEED) -> Interval:
    """A corpus metric (F1 over all items, not a mean of per-item scores) with a percentile bootstrap
    interval: items are resampled and the metric recomputed from their summed statistics."""
    c = np.asarray(counts, dtype=float)
    n = int(c.shape[0])
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    est = float(reduce(c.sum(axis=0))[metric])
    if n == 1:
        return Interval(est, est, est, 1)
    dist = np.asarray(reduce(_resample_weights(n, n_resamples, seed) @ c)[metric], dtype=float)
    tail = (1 - confidence) / 2 * 100
    return Interval(est, float(np.percentile(dist, tail)), float(np.percentile(dist, 100 - tail)), n)


def paired_corpus(a: np.ndarray, b: np.ndarray, reduce: Reduce, metric: str, confidence: float = CONFIDENCE,
                  n_resamples: int = N_RESAMPLES, seed: int = SEED) -> PairedResult:
    """The paired bootstrap for a corpus metric: the same resampled items for both models, the metric
    recomputed for each, the difference's percentile interval and the shifted-null p-value (as
    ``paired_bootstrap``; Berg-Kirkpatrick et al., 2012 -- F1 is where NLP uses it most)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired statistics differ in shape: {x.shape} vs {y.shape}")
    n = int(x.shape[0])
    if n == 0:
        return PairedResult(float("nan"), float("nan"), float("nan"), float("nan"), 0, "none")
    delta = float(reduce(x.sum(axis=0))[metric]) - float(reduce(y.sum(axis=0))[metric])
    if n == 1 or np.array_equal(x, y):
        return PairedResult(delta, delta, delta, 1.0 if delta == 0 else float("nan"), n, "paired_bootstrap")
    w = _resample_weights(n, n_resamples, seed)
    dist = np.asarray(reduce(w @ x)[metric], dtype=float) - np.asarray(reduce(w @ y)[metric], dtype=float)
    tail = (1 - confidence) / 2 * 100
    p = (int(np.sum(np.abs(dist - delta) >= abs(delta) - 1e-12)) + 1) / (dist.size + 1)
    return PairedResult(delta, float(np.percentile(dist, tail)), float(np.percentile(dist, 100 - tail)),
                        float(min(p, 1.0)), n, "paired_bootstrap")


def adjust_pvalues(p_values: np.ndarray | list[float]) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (``scipy.stats.false_discovery_control``).

    A delta matrix runs one paired test per specialist x baseline x dataset; at p<0.05 each,
    one table of twenty tests shows a "significant" difference by chance alone.  Marking the
    adjusted values (q-values) instead bounds the expected share of false discoveries among
    the marked cells at the level (5% for ``*``).  BH rather than Holm/Bonferroni: the tests
    share items and models (positively dependent, where BH holds) and a comparison wants the
    discoveries, not a guarantee that none is false.  NaN (no test) stays NaN and is not
    counted as a test.
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = stats.false_discovery_control(np.clip(p[ok], 0.0, 1.0), method="bh")
    return out


def stars(p: float | None) -> str:
    """Significance marks used in every table and heatmap (given adjusted p-values there)."""
    if p is None or not np.isfinite(p):
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""


def pareto_front(x: np.ndarray | list[float], y: np.ndarray | list[float], *, maximize_x: bool = True,
                 maximize_y: bool = True) -> np.ndarray:
    """Mask of the points no other point beats on both axes (NaN points are never on it).

    A point is dominated when another is at least as good on both axes and strictly
    better on one.
    """
    xs = np.asarray(x, dtype=float) * (1 if maximize_x else -1)
    ys = np.asarray(y, dtype=float) * (1 if maximize_y else -1)
    ok = np.isfinite(xs) & np.isfinite(ys)
    front = np.zeros(xs.size, dtype=bool)
    for i in np.flatnonzero(ok):
        better = ok & (xs >= xs[i]) & (ys >= ys[i]) & ((xs > xs[i]) | (ys > ys[i]))
        front[i] = not better.any()
    return front
