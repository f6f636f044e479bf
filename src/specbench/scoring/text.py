"""Answer extraction and per-sample scores for GSM8K, MATH, multiple choice and PubMedQA.

Each function scores one item and returns ``(extracted, {metric: value}, detail)``.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from specbench.mathequiv import boxed_answer, dollar_span, final_answer_phrase, is_equiv
from specbench.scoring.registry import scorer
from specbench.types import ChoiceScores, Item

INVALID = "[invalid]"  # lm-eval RegexFilter's fallback

# --- GSM8K: lm_eval/tasks/gsm8k/gsm8k.yaml (filter_list, metric_list) ----------------------
GSM8K_STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")  # "strict-match", group_select 0
GSM8K_FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")  # "flexible-extract", group_select -1
# exact_match's regexes_to_ignore, applied in order to prediction and reference alike
GSM8K_IGNORE = (re.compile(","), re.compile(r"\$"), re.compile(r"(?s).*#### "), re.compile(r"\.$"))


def regex_extract(text: str, pattern: re.Pattern[str], group_select: int) -> str:
    """lm-eval ``RegexFilter`` (lm_eval/filters/extraction.py): the ``group_select``-th match;
    for a pattern with several groups the first non-empty group; stripped; else [invalid]."""
    found = pattern.findall(text)
    if not found:
        return INVALID
    match = found[group_select]
    if isinstance(match, tuple):
        match = next((g for g in match if g), INVALID)
    return match.strip()


def gsm8k_normalize(text: str) -> str:
    """exact_match's normalization (lm_eval/api/metrics.py exact_match_hf_evaluate with the
    yaml's regexes_to_ignore, ignore_case true, ignore_punctuation false)."""
    for pattern in GSM8K_IGNORE:
        text = pattern.sub("", text)
    return text.lower()


def _gsm8k(item: Item, output: str, pattern: re.Pattern[str], group: int, metric: str):
    pred = regex_extract(output, pattern, group)
    hit = gsm8k_normalize(pred) == gsm8k_normalize(item.reference)
    return pred, {metric: float(hit)}, {}


@scorer("gsm8k_strict", metrics=["exact_match_strict"], lm_eval={"exact_match_strict": ("exact_match", "strict-match")})
def gsm8k_strict(item: Item, output: str):
    return _gsm8k(item, output, GSM8K_STRICT, 0, "exact_match_strict")


@scorer("gsm8k_flexible", metrics=["exact_match_flexible"],
        lm_eval={"exact_match_flexible": ("exact_match", "flexible-extract")})
def gsm8k_flexible(item: Item, output: str):
    return _gsm8k(item, output, GSM8K_FLEXIBLE, -1, "exact_match_flexible")


# --- MATH: hendrycks/math + lm_eval/tasks/hendrycks_math/utils.py --------------------------
@scorer("math_equiv", metrics=["exact_match", "exact_match_lenient"], lm_eval={"exact_match": ("exact_match", "none")})
def math_equiv(item: Item, output: str):
    """``exact_match``: the last ``\\boxed{}`` of the output, is_equiv to the reference answer
    (hendrycks/math modeling/eval_math_gpt.py with lm-eval's hendrycks_math functions).

    ``exact_match_lenient`` (specbench addition): 1 when any of the boxed answer, the X of
    "the final answer is X" (Minerva style) or lm-eval hendrycks_math process_results' own
    ``$...$`` span is equivalent, so it is never below ``exact_match`` nor below lm-eval's
    hendrycks_math score of the same output.
    """
    boxed = boxed_answer(output)
    strict = boxed is not None and is_equiv(boxed, item.reference)
    candidates = {"boxed": boxed, "final_answer": final_answer_phrase(output),
                  "dollar_span": dollar_span(output)}
    lenient_by = next((name for name, c in candidates.items()
                       if c is not None and is_equiv(c, item.reference)), None)
    # what is shown: the box if any, else what the lenient metric accepted, else the phrase
    shown = boxed if boxed is not None else candidates.get(lenient_by or "final_answer")
    detail: dict[str, Any] = {"lenient_by": lenient_by} if lenient_by else {}
    scores = {"exact_match": float(strict), "exact_match_lenient": float(lenient_by is not None)}
    return (shown if shown is not None else INVALID), scores, detail


# --- multiple choice: lm_eval/api/task.py ConfigurableTask.process_results -----------------
def mc_predictions(item: Item, scores: ChoiceScores) -> tuple[int, int]:
    """(argmax of log-likelihoods, argmax of log-likelihood / len(choice text in characters)).

    lm-eval measures ``len(choice)`` of doc_to_choice's strings, without the target
    delimiter (the leading space of the continuation).  np.argmax keeps the first on ties.
    """
    if item.choices is None or item.gold is None:
        raise ValueError(f"item {item.id}: multiple choice scoring needs choices and gold")
    lls = np.asarray(scores.logprobs, dtype=float)
    if lls.shape != (len(item.choices),):
        raise ValueError(f"item {item.id}: {lls.size} log-likelihoods for {len(item.choices)} choices")
    lengths = np.array([float(len(c)) for c in item.choices])
    with np.errstate(divide="ignore", invalid="ignore"):
        return int(np.argmax(lls)), int(np.argmax(lls / lengths))


@scorer("mc_acc", metrics=["acc"], needs="choice_logprobs", lm_eval={"acc": ("acc", "none")})
def mc_acc(item: Item, scores: ChoiceScores):
    pred, _ = mc_predictions(item, scores)
    return item.choices[pred], {"acc": float(pred == item.gold)}, {"pred": pred}


@scorer("mc_acc_norm", metrics=["acc_norm"], needs="choice_logprobs", lm_eval={"acc_norm": ("acc_norm", "none")})
def mc_acc_norm(item: Item, scores: ChoiceScores):
    _, pred = mc_predictions(item, scores)
    return item.choices[pred], {"acc_norm": float(pred == item.gold)}, {"pred_norm": pred}


# --- PubMedQA, generative (specbench addition; lm-eval's pubmedqa is multiple choice) ------
_YNM = re.compile(r"\b(yes|no|maybe)\b", re.IGNORECASE)
# an explicit answer marker ("Answer: yes", "the answer is **no**") wins over a stray word
_YNM_MARKED = re.compile(r"\banswer\b\W{0,5}(?:is\W{0,5})?(yes|no|maybe)\b", re.IGNORECASE)


@scorer("yes_no_maybe", metrics=["acc"])
def yes_no_maybe(item: Item, output: str):
    marked = _YNM_MARKED.search(output)
    found = marked or _YNM.search(output)
    pred = found.group(1).lower() if found else INVALID
    return pred, {"acc": float(pred == item.reference.strip().lower())}, {}
