"""Scoring: model outputs -> per-item scores and aggregate metrics, agreeing with named
reference implementations sample by sample (see docs/metrics.md for the references).

Scorers register themselves with :func:`scorer` (``registry.py``); every module of this
package is imported on first use, and so is any module named by a ``specbench.scorers`` entry
point, so adding a scorer is one new module.  ``score(dataset, items, outputs)`` runs every
scorer named in ``dataset.scorers``; :func:`answer_capability` says whether a dataset is
answered by generation or by choice log-likelihoods.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats

from specbench.registry.schema import DatasetConfig
from specbench.scoring.registry import METRICS, NEEDS, SCORERS, ScorerInfo, scorer
from specbench.types import ChoiceScores, Item, SampleScore, ScoreReport

if TYPE_CHECKING:
    from specbench.sandbox import Limits

__all__ = ["METRICS", "NEEDS", "SCORERS", "ScorerInfo", "answer_capability", "estimate_pass_at_k", "extract_code",
           "load_scorers", "mean_stderr", "score", "scorer"]

Outputs = Sequence[Sequence[str]] | Sequence[ChoiceScores]


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
    for info in infos:
        for i, (ext, scores, detail) in enumerate(info(items, list(outputs), limits, dataset_key=dataset.key)):
            per_item[i].update(scores)
            extracted[i][info.name] = ext
            details[i].update(detail)

    # A metric is the mean over the items that have it: a scorer may report a metric for part of
    # the items only (chartqa's human and augmented splits, each reported apart and together).
    metrics: dict[str, float] = {}
    for m in dict.fromkeys(k for s in per_item for k in s):
        values = np.array([s[m] for s in per_item if m in s], dtype=float)
        metrics[m] = float(values.mean())
        metrics[f"{m}_stderr"] = mean_stderr(values)

    samples = []
    for it, sc, ext, det in zip(items, per_item, extracted, details, strict=True):
        if len(ext) > 1:  # several scorers extract differently (gsm8k strict + flexible)
            det = {**det, "extracted": dict(ext)}
        samples.append(SampleScore(id=it.id, extracted=next(iter(ext.values())), scores=sc, detail=det))
    return ScoreReport(metrics=metrics, samples=samples)


load_scorers()
from specbench.scoring.code import estimate_pass_at_k, extract_code  # noqa: E402 - after registration
