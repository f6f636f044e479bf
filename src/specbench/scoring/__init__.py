"""Scoring: model outputs -> per-item scores and aggregate metrics, agreeing with named
reference implementations sample by sample (see docs/metrics.md for the references).

``score(dataset, items, outputs)`` runs every scorer named in ``dataset.scorers``.
``SCORERS`` maps a scorer name to its callable, ``METRICS`` to the metric names it
produces (each aggregate also gets ``<metric>_stderr``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats

from specbench.registry.schema import DatasetConfig
from specbench.scoring import text as _text
from specbench.scoring.code import estimate_pass_at_k, extract_code
from specbench.scoring.code import pass_at_k as _pass_at_k
from specbench.types import ChoiceScores, Item, SampleScore, ScoreReport

if TYPE_CHECKING:
    from specbench.sandbox import Limits

__all__ = ["SCORERS", "METRICS", "score", "mean_stderr", "estimate_pass_at_k", "extract_code"]

Outputs = Sequence[Sequence[str]] | Sequence[ChoiceScores]
Scored = tuple[str, dict[str, float], dict[str, Any]]
Scorer = Callable[..., list[Scored]]  # (items, outputs, limits, dataset_key=...) -> per item


def _first_text(dataset_key: str, scorer: str, item: Item, out: Any) -> str:
    """Generative scorers read the first sample (lm-eval's take_first filter)."""
    if isinstance(out, str):
        return out
    if isinstance(out, ChoiceScores) or not out or not isinstance(out[0], str):
        raise ValueError(f"dataset '{dataset_key}': scorer '{scorer}' needs generated text for item "
                         f"{item.id}, got {type(out).__name__}")
    return out[0]


def _per_text(name: str, fn: Callable[[Item, str], Scored]) -> Scorer:
    def run(items: list[Item], outputs: list[Any], limits: Limits | None = None,
            dataset_key: str = "?") -> list[Scored]:
        return [fn(it, _first_text(dataset_key, name, it, out))
                for it, out in zip(items, outputs, strict=True)]
    run.__doc__ = fn.__doc__
    return run


def _per_choice(name: str, fn: Callable[[Item, ChoiceScores], Scored]) -> Scorer:
    def run(items: list[Item], outputs: list[Any], limits: Limits | None = None,
            dataset_key: str = "?") -> list[Scored]:
        for it, out in zip(items, outputs, strict=True):
            if not isinstance(out, ChoiceScores):
                raise ValueError(f"dataset '{dataset_key}': scorer '{name}' needs ChoiceScores "
                                 f"(log-likelihoods) for item {it.id}, got {type(out).__name__}")
        return [fn(it, out) for it, out in zip(items, outputs, strict=True)]
    run.__doc__ = fn.__doc__
    return run


def _code(items: list[Item], outputs: list[Any], limits: Limits | None = None,
          dataset_key: str = "?") -> list[Scored]:
    samples: list[list[str]] = []
    for it, out in zip(items, outputs, strict=True):
        outs = [out] if isinstance(out, str) else out
        if isinstance(outs, ChoiceScores) or not outs or not all(isinstance(o, str) for o in outs):
            raise ValueError(f"dataset '{dataset_key}': scorer 'pass_at_k' needs one or more "
                             f"generated programs for item {it.id}")
        samples.append(list(outs))
    return _pass_at_k(items, samples, limits)


SCORERS: dict[str, Scorer] = {
    "gsm8k_strict": _per_text("gsm8k_strict", _text.gsm8k_strict),
    "gsm8k_flexible": _per_text("gsm8k_flexible", _text.gsm8k_flexible),
    "math_equiv": _per_text("math_equiv", _text.math_equiv),
    "mc_acc": _per_choice("mc_acc", _text.mc_acc),
    "mc_acc_norm": _per_choice("mc_acc_norm", _text.mc_acc_norm),
    "yes_no_maybe": _per_text("yes_no_maybe", _text.yes_no_maybe),
    "pass_at_k": _code,
}

METRICS: dict[str, list[str]] = {
    "gsm8k_strict": ["exact_match_strict"],
    "gsm8k_flexible": ["exact_match_flexible"],
    "math_equiv": ["exact_match", "exact_match_lenient"],
    "mc_acc": ["acc"],
    "mc_acc_norm": ["acc_norm"],
    "yes_no_maybe": ["acc"],
    "pass_at_k": ["pass_at_1", "pass_at_10", "pass_at_100"],  # pass_at_k only for k <= n
}


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
    unknown = [s for s in dataset.scorers if s not in SCORERS]
    if unknown:
        raise ValueError(f"dataset '{dataset.key}': unknown scorer(s) {', '.join(map(repr, unknown))}; "
                         f"valid: {', '.join(sorted(SCORERS))}")
    seen: dict[str, str] = {}
    for name in dataset.scorers:
        for m in METRICS[name]:
            if m in seen and seen[m] != name:
                raise ValueError(f"dataset '{dataset.key}': scorers '{seen[m]}' and '{name}' both produce "
                                 f"'{m}'; list only one of them")
            seen[m] = name
    if len(items) != len(outputs):
        raise ValueError(f"dataset '{dataset.key}': {len(items)} items but {len(outputs)} outputs")
    if not items:
        raise ValueError(f"dataset '{dataset.key}': nothing to score")

    per_item: list[dict[str, float]] = [{} for _ in items]
    extracted: list[dict[str, str]] = [{} for _ in items]
    details: list[dict[str, Any]] = [{} for _ in items]
    for name in dataset.scorers:
        results = SCORERS[name](items, list(outputs), limits, dataset_key=dataset.key)
        for i, (ext, scores, detail) in enumerate(results):
            per_item[i].update(scores)
            extracted[i][name] = ext
            details[i].update(detail)

    names = list(per_item[0])
    metrics: dict[str, float] = {}
    for m in names:
        values = np.array([s[m] for s in per_item], dtype=float)
        metrics[m] = float(values.mean())
        metrics[f"{m}_stderr"] = mean_stderr(values)

    samples = []
    for it, sc, ext, det in zip(items, per_item, extracted, details, strict=True):
        if len(ext) > 1:  # several scorers extract differently (gsm8k strict + flexible)
            det = {**det, "extracted": dict(ext)}
        samples.append(SampleScore(id=it.id, extracted=next(iter(ext.values())), scores=sc, detail=det))
    return ScoreReport(metrics=metrics, samples=samples)
