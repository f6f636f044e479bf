"""The scorer registry: each scorer declares, where it is defined, what it produces and needs.

``@scorer("gsm8k_strict", metrics=["exact_match_strict"], needs="text")`` on a function makes
it a scorer: the metric names it produces (each aggregate also gets ``<metric>_stderr``) and
what it reads from the engine.  Planning derives from ``needs`` whether a dataset is answered
by generation or by choice log-likelihoods and which engines can serve it; ``validate`` checks
datasets' scorer names and main metrics against ``METRICS``.  No second table to keep in step.

``lm_eval={"exact_match_strict": ("exact_match", "strict-match")}`` names each metric as
lm-evaluation-harness reports it (metric, filter: its ``"exact_match,strict-match"`` key), for
the lm-eval files a cell writes (``pipeline.lmeval_io``); a scorer serving several lm-eval tasks
under different names maps a metric to ``{lm-eval task: (metric, filter)}`` instead.  Metrics
left out are specbench's own and have no lm-eval counterpart.

``corpus=Corpus(...)`` declares metrics that are not means over items (F1 over a corpus,
seqeval's entity F1): computed once from all items, with a bootstrap stderr over items
(``scoring.corpus_metrics``).  Their names never appear among a scorer's per-item scores, so the
per-sample table has no ``score.<metric>`` column for them and comparisons use the logged stderr.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from specbench.types import ChoiceScores, Item, Judged

if TYPE_CHECKING:
    import numpy as np

# What a scorer reads -> what the engine must do for it.
#   text: the first generated text of an item; texts: all n generated texts of each item, scored
#   as a batch (pass@k); choice_logprobs: the log-likelihood of each choice (multiple choice);
#   judgments: an item's answers (one per turn) with its judge's judgments (``types.Judged``, made by
#   ``pipeline.judge``).
NEEDS: dict[str, str] = {"text": "generate", "texts": "generate", "choice_logprobs": "loglikelihood",
                         "judgments": "generate"}

LmEvalName = tuple[str, str]  # (lm-eval metric, lm-eval filter)


@dataclass(frozen=True)
class Corpus:
    """Metrics computed from all items at once, and how to resample them cheaply.

    ``value(items, details)`` -> ``{metric: value}``: the point estimate, by the reference library
    (scikit-learn, seqeval) over every item; ``details`` are the scorer's own per-item details.
    ``counts(items, details)`` -> array (items, k): additive per-item statistics (true positives,
    false positives, ... per class), and ``reduce(sums)`` -> ``{metric: array}``: the metrics from
    summed statistics of shape (..., k), vectorised over the leading axes.  A bootstrap resample is
    then one matrix product instead of a re-run of the library; ``scoring.score`` checks that
    ``reduce`` of all items equals ``value``, so the two cannot drift apart.
    """

    metrics: tuple[str, ...]
    value: Callable[[list[Item], list[dict[str, Any]]], dict[str, float]]
    counts: Callable[[list[Item], list[dict[str, Any]]], np.ndarray]
    reduce: Callable[[np.ndarray], dict[str, np.ndarray]]


@dataclass(frozen=True)
class ScorerInfo:
    name: str
    fn: Callable[..., Any]  # per item: (item, output) -> (extracted, scores, detail); batch: (items, outputs, limits)
    metrics: tuple[str, ...]
    needs: str
    batch: bool
    lm_eval: dict[str, LmEvalName | dict[str, LmEvalName]] = field(default_factory=dict)
    corpus: Corpus | None = None  # metrics computed from all items at once (see Corpus)
    sandboxed: bool = False  # runs generated code in specbench.sandbox: its cell records the isolation level

    @property
    def corpus_metrics(self) -> tuple[str, ...]:
        return self.corpus.metrics if self.corpus else ()

    def lm_eval_name(self, metric: str, task: str) -> LmEvalName | None:
        """lm-eval's (metric, filter) for ``metric`` in lm-eval task ``task``; None: not an lm-eval metric."""
        name = self.lm_eval.get(metric)
        return name.get(task) if isinstance(name, dict) else name

    @property
    def capability(self) -> str:
        """The engine capability answering this scorer's input needs."""
        return NEEDS[self.needs]

    def __call__(self, items: list[Item], outputs: list[Any], limits: Any = None,
                 dataset_key: str = "?") -> list[tuple[str, dict[str, float], dict[str, Any]]]:
        """Score items from their outputs: ``(extracted, {metric: value}, detail)`` per item."""
        inputs = [self._input(dataset_key, it, out) for it, out in zip(items, outputs, strict=True)]
        if self.batch:
            return self.fn(items, inputs, limits)
        return [self.fn(it, x) for it, x in zip(items, inputs, strict=True)]

    def _input(self, dataset_key: str, item: Item, out: Any) -> Any:
        """What this scorer reads of one item's output, checked against what it declared."""
        if self.needs == "choice_logprobs":
            if not isinstance(out, ChoiceScores):
                raise ValueError(f"dataset '{dataset_key}': scorer '{self.name}' needs ChoiceScores "
                                 f"(log-likelihoods) for item {item.id}, got {type(out).__name__}")
            return out
        if self.needs == "judgments":
            if not isinstance(out, Judged):
                raise ValueError(f"dataset '{dataset_key}': scorer '{self.name}' needs judged answers for item "
                                 f"{item.id} (graded by the judge its dataset names), got {type(out).__name__}")
            return out
        texts = [out] if isinstance(out, str) else out
        if isinstance(texts, ChoiceScores) or not texts or not all(isinstance(t, str) for t in texts):
            raise ValueError(f"dataset '{dataset_key}': scorer '{self.name}' needs generated text for item "
                             f"{item.id}, got {type(out).__name__}")
        return list(texts) if self.needs == "texts" else texts[0]  # text: the first sample (lm-eval's take_first)


SCORERS: dict[str, ScorerInfo] = {}
METRICS: dict[str, list[str]] = {}  # scorer -> metric names; filled by @scorer alongside SCORERS


def scorer(name: str | None = None, *, metrics: list[str] | tuple[str, ...], needs: str = "text", batch: bool = False,
           lm_eval: dict[str, LmEvalName | dict[str, LmEvalName]] | None = None, corpus: Corpus | None = None,
           sandboxed: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function as a scorer (see the module docstring)."""
    if needs not in NEEDS:
        raise ValueError(f"scorer {name!r}: unknown needs '{needs}'; valid: {', '.join(NEEDS)}")
    if not metrics:
        raise ValueError(f"scorer {name!r}: declare the metrics it produces")
    if unknown := set(lm_eval or {}) - set(metrics):
        raise ValueError(f"scorer {name!r}: lm_eval names metrics it does not produce: {', '.join(sorted(unknown))}")
    if corpus is not None and (unknown := set(corpus.metrics) - set(metrics)):
        raise ValueError(f"scorer {name!r}: corpus metrics not among its metrics: {', '.join(sorted(unknown))}")

    def add(fn: Callable[..., Any]) -> Callable[..., Any]:
        key = name or fn.__name__
        old = SCORERS.get(key)
        if old is not None and old.fn.__qualname__ != fn.__qualname__:
            raise ValueError(f"scorer '{key}' is registered twice ({old.fn.__module__} and {fn.__module__})")
        SCORERS[key] = ScorerInfo(key, fn, tuple(metrics), needs, batch or needs == "texts", dict(lm_eval or {}),
                                  corpus, sandboxed)
        METRICS[key] = list(metrics)
        return fn

    return add
