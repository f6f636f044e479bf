"""ROUGE for summarization (``rouge``): Google's ``rouge-score`` package, as lm-eval uses it.

The reference is lm-eval 0.4.13's summarization task ``cnn_dailymail``
(``lm_eval/tasks/cnn_dailymail/utils.py``, ``process_results``): ``RougeScorer(["rouge1",
"rouge2", "rougeL"], use_stemmer=True)``, ``score(reference, output)``, each F-measure per item,
the metric their mean.  Why these settings:

- ``use_stemmer=True`` (Porter) is ROUGE-1.5.5's ``-m``, with which the arXiv and PubMed
  summarization results (Cohan et al. 2018, PEGASUS, BigBird) are reported; without it "models"
  and "model" would not match.
- ``rougeL`` is the LCS over the whole text, not ``rougeLsum``'s per-sentence union, which
  needs sentences split by newlines that generated summaries do not reliably have.
- F-measure, not recall: a long output would otherwise win by listing words.

rouge-score tokenizes by lower-casing and keeping runs of ``[a-z0-9]`` (English only);
lm-eval's own whitespace normalisation first changes none of those tokens, so it is left out.
Per-item means, so the stderr is lm-eval's ``mean_stderr`` like every mean metric.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from specbench.scoring.registry import scorer
from specbench.types import Item

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


@cache
def _scorer() -> Any:
    from rouge_score import rouge_scorer  # imported on first use: it loads nltk's stemmer

    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)


@scorer("rouge", metrics=list(ROUGE_TYPES))
def rouge(item: Item, output: str):
    scores = _scorer().score(item.reference, output)  # (target, prediction)
    return output.strip(), {t: float(scores[t].fmeasure) for t in ROUGE_TYPES}, {}
