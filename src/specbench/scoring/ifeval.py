"""IFEval: lm-evaluation-harness's own instruction checkers, used as a library (never copied).

Per item, ``lm_eval.tasks.ifeval.utils.process_results`` (lm_eval 0.4.13) runs every instruction's
checker on the response, strictly and loosely (its loose pass also tries the response without its
first/last line and without ``*``), so the per-sample values are lm-eval's by construction.

Aggregation is lm-eval's (lm_eval/tasks/ifeval/ifeval.yaml): the prompt-level accuracies are means
over items; the instruction-level accuracies are pooled over all instructions of all items
(``utils.agg_inst_level_acc``), not means of per-item fractions, so they are corpus metrics here:
each item counts (strict followed, loose followed, instructions) and the sums reduce to lm-eval's
value, which also gives them a bootstrap stderr over items.

lm_eval is imported when an item is scored, not when specbench is imported: it is heavy, it tries
to download NLTK's ``punkt_tab`` at import time, and it lives in the ``dev`` extra
(``lm_eval[ifeval]``, which brings langdetect, immutabledict and nltk).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from specbench.scoring.registry import Corpus, scorer
from specbench.types import Item

LM_EVAL_PIN = "lm_eval[ifeval]==0.4.13"
LANGDETECT_SEED = 0
STRICT, LOOSE = "inst_level_strict_acc", "inst_level_loose_acc"
FOLLOWED_STRICT, FOLLOWED_LOOSE = "ifeval_followed_strict", "ifeval_followed_loose"  # per-item detail keys


def lm_eval_ifeval() -> ModuleType:
    """lm-eval's ``tasks.ifeval.utils``, or one clear line saying what to install."""
    try:
        from lm_eval.tasks.ifeval import utils
    except ImportError as e:  # lm_eval itself, or langdetect / immutabledict / nltk of its ifeval extra
        raise RuntimeError(f"scorer 'ifeval' uses lm-evaluation-harness's instruction checkers, which cannot be "
                           f"imported ({e}); install them: pip install '{LM_EVAL_PIN}'") from None
    # The language checkers (english_lowercase/capital, response_language) call langdetect, which samples
    # at random unless seeded: on short responses two calls can disagree, so a rescore could change a
    # score. langdetect's documented fix is a fixed DetectorFactory.seed (lm-eval leaves it unset).
    import langdetect

    langdetect.DetectorFactory.seed = LANGDETECT_SEED
    return utils


def _doc(item: Item) -> dict[str, Any]:
    """The fields lm-eval's process_results reads, checked so a bad record fails in one line."""
    doc = item.doc
    missing = [k for k in ("key", "prompt", "instruction_id_list", "kwargs") if k not in doc]
    if missing:
        raise ValueError(f"scorer 'ifeval': item {item.id} lacks {', '.join(missing)} (IFEval records have key, "
                         "prompt, instruction_id_list, kwargs)")
    if len(doc["instruction_id_list"]) != len(doc["kwargs"]):
        raise ValueError(f"scorer 'ifeval': item {item.id} has {len(doc['instruction_id_list'])} instructions but "
                         f"{len(doc['kwargs'])} kwargs entries (one per instruction)")
    return {k: doc[k] for k in ("key", "prompt", "instruction_id_list", "kwargs")}


def _inst_value(items: list[Item], details: list[dict[str, Any]]) -> dict[str, float]:
    """lm-eval's own aggregation (utils.agg_inst_level_acc): followed / instructions over all items."""
    agg = lm_eval_ifeval().agg_inst_level_acc
    return {STRICT: float(agg([d[FOLLOWED_STRICT] for d in details])),
            LOOSE: float(agg([d[FOLLOWED_LOOSE] for d in details]))}


def _inst_counts(items: list[Item], details: list[dict[str, Any]]) -> np.ndarray:
    """Per item: [instructions followed strictly, followed loosely, instructions]."""
    return np.array([[sum(d[FOLLOWED_STRICT]), sum(d[FOLLOWED_LOOSE]), len(d[FOLLOWED_STRICT])] for d in details],
                    dtype=float).reshape(len(details), 3)


def _inst_reduce(sums: np.ndarray) -> dict[str, np.ndarray]:
    """Pooled instruction-level accuracies from summed counts (vectorised over bootstrap resamples)."""
    total = np.where(sums[..., 2] > 0, sums[..., 2], np.nan)
    return {STRICT: sums[..., 0] / total, LOOSE: sums[..., 1] / total}


@scorer("ifeval", metrics=["prompt_level_strict_acc", STRICT, "prompt_level_loose_acc", LOOSE], needs="text",
        # lm-eval names for the per-item metrics only: lm-eval's samples file holds a per-sample value for
        # every metric it names, and the pooled ones have none here (their per-item lists are in detail)
        lm_eval={m: (m, "none") for m in ("prompt_level_strict_acc", "prompt_level_loose_acc")},
        corpus=Corpus((STRICT, LOOSE), _inst_value, _inst_counts, _inst_reduce))
def ifeval(item: Item, output: str):
    """lm-eval's process_results on one response: prompt-level scores per item, instruction lists as detail."""
    utils = lm_eval_ifeval()
    doc = _doc(item)
    if unknown := [i for i in doc["instruction_id_list"] if i not in utils.instructions_registry.INSTRUCTION_DICT]:
        raise ValueError(f"scorer 'ifeval': item {item.id}: unknown instruction id(s) {', '.join(unknown)}; valid: "
                         "the keys of lm_eval.tasks.ifeval.instructions_registry.INSTRUCTION_DICT")
    try:
        res = utils.process_results(doc, [output])
    except LookupError as e:  # NLTK data (punkt_tab: length_constraints:number_sentences) not installed
        first = next((ln.strip() for ln in str(e).splitlines() if "Resource" in ln), str(e).strip())
        raise RuntimeError(f"scorer 'ifeval': item {item.id}: lm-eval's checker needs NLTK data ({first}); "
                           "install it: python -m nltk.downloader punkt_tab") from None
    scores = {"prompt_level_strict_acc": float(res["prompt_level_strict_acc"]),
              "prompt_level_loose_acc": float(res["prompt_level_loose_acc"])}
    detail = {FOLLOWED_STRICT: [bool(x) for x in res[STRICT]], FOLLOWED_LOOSE: [bool(x) for x in res[LOOSE]],
              "instruction_id_list": list(doc["instruction_id_list"])}
    return output, scores, detail
