"""Scoring: model outputs -> per-item scores and aggregate metrics, agreeing with named
reference implementations sample by sample (see docs/metrics.md for the references).

Scorers register themselves with :func:`scorer` (``registry.py``); every module of this
package is imported on first use, and so is any module named by a ``specbench.scorers`` entry
point, so adding a scorer is one new module.  ``score(dataset, items, outputs)`` runs every
scorer named in ``dataset.scorers``; :func:`answer_capability` says whether a dataset is
answered by generation or by choice log-likelihoods.

A metric is the mean of its per-item values, with lm-eval's ``mean_stderr``; a scorer's corpus
metrics (``@scorer(..., corpus=Corpus(...))``: F1 over all items) are computed from all items at
once, with a seeded bootstrap stderr over items (:func:`corpus_metrics`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats

from specbench.registry.schema import DatasetConfig
from specbench.scoring.registry import METRICS, NEEDS, SCORERS, Corpus, ScorerInfo, scorer
from specbench.types import ChoiceScores, Item, SampleScore, ScoreReport

if TYPE_CHECKING:
    from specbench.sandbox import Limits

__all__ = [
    "COUNTS_PREFIX", "METRICS", "NEEDS", "SCORERS", "Corpus", "ScorerInfo", "answer_capability",
    "bootstrap_stderr", "corpus_metrics", "estimate_pass_at_k", "extract_code", "load_scorers", "mean_stderr",
    "score", "scorer"
]

Outputs = Sequence[Sequence[str]] | Sequence[ChoiceScores]
BOOTSTRAP_RESAMPLES = 1000  # resamples of a corpus metric's stderr: the stderr's own error is ~2% at 1000
BOOTSTRAP_SEED = 20240601  # fixed: the same items and outputs always give the same stderr
COUNTS_PREFIX = "counts."  # per-sample table column of an item's corpus statistics: counts.<scorer>


def load_scorers() -> dict[str, ScorerInfo]:
    """Import every scorer module once (this package's, then entry points)."""
    from specbench.extensions import import_all

    import_all(__name__, __path__, "specbench.scorers")
    return SCORERS


def scorer_info(name: str, dataset_key: str = "?") -> ScorerInfo:
    scorers = load_scorers()
    if name not in scorers:
        raise ValueError(f"dataset '{dataset_key}': unknown scorer '{name}'; valid: {', '.join(sorted(scorers))}")
    return scorers[name]


def answer_capability(dataset: DatasetConfig) -> str:
    """``generate`` or ``loglikelihood``: what the engine must do for this dataset's scorers."""
    caps = {scorer_info(s, dataset.key).capability for s in dataset.scorers}
    if len(caps) != 1:
        raise ValueError(f"dataset '{dataset.key}': scorers {dataset.scorers} need both generated text and choice "
                         "log-likelihoods; one dataset is answered one way")
    return caps.pop()


def mean_stderr(values: Sequence[float]) -> float:
    """lm-eval's mean_stderr (lm_eval/api/metrics.py): sample std (ddof=1) / sqrt(n).
    NaN for fewer than two values (lm-eval reports "N/A" there)."""
    arr = np.asarray(values, dtype=float)
    if arr.size < 2:
        return math.nan
    return float(stats.sem(arr, ddof=1))


def bootstrap_stderr(counts: np.ndarray, reduce: Callable[[np.ndarray], dict[str, np.ndarray]], *,
                     resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> dict[str, float]:
    """Bootstrap standard error over items of metrics computed from summed per-item statistics.

    Each resample draws n items with replacement: its multinomial counts (how often each item was
    drawn) times ``counts`` (items x k) are the resample's summed statistics, which ``reduce`` turns
    into metrics; the stderr is their standard deviation (ddof=1) over the resamples.  NaN for
    fewer than two items, as ``mean_stderr``.
    """
    counts = np.asarray(counts, dtype=float)
    n = counts.shape[0]
    if n < 2:
        return {m: math.nan for m in reduce(counts.sum(axis=0))}
    rng = np.random.default_rng(seed)
    chunk = max(1, 2_000_000 // n)  # resamples per matrix product: bounded memory for large corpora
    values: dict[str, list[np.ndarray]] = {}
    for start in range(0, resamples, chunk):
        weights = rng.multinomial(n, np.full(n, 1.0 / n), size=min(chunk, resamples - start))
        for m, v in reduce(weights @ counts).items():
            values.setdefault(m, []).append(np.asarray(v, dtype=float))
    return {m: float(np.std(np.concatenate(v), ddof=1)) for m, v in values.items()}


def _same(a: float, b: float) -> bool:
    """Equal to rounding, NaN equal to NaN (a metric with nothing to average: every judgment unparsed)."""
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, abs_tol=1e-9)


def corpus_metrics(info: ScorerInfo, items: list[Item], details: list[dict[str, Any]],
                   dataset_key: str = "?", counts: np.ndarray | None = None) -> dict[str, float]:
    """A scorer's corpus metrics over all items, each with its bootstrap ``<metric>_stderr``
    (``counts``: the items' statistics, when the caller has them already)."""
    corpus = info.corpus
    if corpus is None:
        return {}
    point = corpus.value(items, details)
    counts = np.asarray(corpus.counts(items, details) if counts is None else counts, dtype=float)
    reduced = corpus.reduce(counts.sum(axis=0))
    if set(point) != set(corpus.metrics) or any(not _same(point[m], float(reduced[m])) for m in corpus.metrics):
        raise ValueError(f"dataset '{dataset_key}': scorer '{info.name}': corpus metrics {point} disagree with "
                         f"their bootstrap statistics {({m: float(v) for m, v in reduced.items()})}")
    stderr = bootstrap_stderr(counts, corpus.reduce)
    out: dict[str, float] = {}
    for m in corpus.metrics:
        out[m] = float(point[m])
        out[f"{m}_stderr"] = stderr[m]
    return out


def score(dataset: DatasetConfig, items: list[Item], outputs: Outputs,
          limits: Limits | None = None) -> ScoreReport:
    """Run every scorer of ``dataset.scorers`` over ``items`` and their ``outputs``.

    ``outputs[i]`` is the list of generated texts for ``items[i]`` (n samples; every scorer
    but pass_at_k reads the first) or a ChoiceScores for multiple choice.
    """
    infos = [scorer_info(s, dataset.key) for s in dataset.scorers]
    seen: dict[str, str] = {}
    for info in infos:
        for m in info.metrics:
            if m in seen and seen[m] != info.name:
                raise ValueError(f"dataset '{dataset.key}': scorers '{seen[m]}' and '{info.name}' both produce "
                                 f"'{m}'; list only one of them")
            seen[m] = info.name
    if len(items) != len(outputs):
        raise ValueError(f"dataset '{dataset.key}': {len(items)} items but {len(outputs)} outputs")
    if not items:
        raise ValueError(f"dataset '{dataset.key}': nothing to score")

    per_item: list[dict[str, float]] = [{} for _ in items]
    extracted: list[dict[str, str]] = [{} for _ in items]
    details: list[dict[str, Any]] = [{} for _ in items]
    corpus: dict[str, float] = {}
    counts: list[dict[str, list[float]]] = [{} for _ in items]
    for info in infos:
        own: list[dict[str, Any]] = []  # this scorer's details, which its corpus metrics read
        for i, (ext, scores, detail) in enumerate(info(items, list(outputs), limits, dataset_key=dataset.key)):
            if clash := set(scores) & set(info.corpus_metrics):
                raise ValueError(f"dataset '{dataset.key}': scorer '{info.name}' gives item {items[i].id} a per-item "
                                 f"score for its corpus metric(s) {', '.join(sorted(clash))}")
            per_item[i].update(scores)
            extracted[i][info.name] = ext
            details[i].update(detail)
            own.append(detail)
        if info.corpus is not None:  # each item's statistics: for the metrics here and the analysis later
            stats_ = np.asarray(info.corpus.counts(items, own), dtype=float)
            corpus.update(corpus_metrics(info, items, own, dataset.key, stats_))
            for i, row in enumerate(stats_):
                counts[i][info.name] = row.tolist()

    # A metric is the mean over the items that have it: a scorer may report a metric for part of
    # the items only (chartqa's human and augmented splits, each reported apart and together).
    metrics: dict[str, float] = {}
    for m in dict.fromkeys(k for s in per_item for k in s):
        values = np.array([s[m] for s in per_item if m in s], dtype=float)
        metrics[m] = float(values.mean())
        metrics[f"{m}_stderr"] = mean_stderr(values)
    metrics.update(corpus)

    samples = []
    for it, sc, ext, det, cnt in zip(items, per_item, extracted, details, counts, strict=True):
        if len(ext) > 1:  # several scorers extract differently (gsm8k strict + flexible)
            det = {**det, "extracted": dict(ext)}
        samples.append(SampleScore(id=it.id, extracted=next(iter(ext.values())), scores=sc, detail=det,
                                   counts=cnt))
    return ScoreReport(metrics=metrics, samples=samples)


load_scorers()
from specbench.scoring.code import estimate_pass_at_k, extract_code  # noqa: E402 - after registration
