"""Scorers of the multimodal datasets: ChartQA, DocVQA, VQAv2 and ScienceQA (image questions).

Each agrees sample by sample with lmms-eval 0.7.3, the field's reference for these tasks (the
function each replicates is named in its docstring and in docs/metrics.md).  lmms-eval's
``ConfigurableTask.process_results`` (lmms_eval/api/task.py) strips every generated text
(``str.strip()``) before a task's own ``process_results`` or metric sees it, so every scorer here
starts from the stripped output; nothing else is stripped unless the reference strips it.
"""

from __future__ import annotations

import re
import statistics
from typing import Any

from rapidfuzz.distance import Levenshtein

from specbench.scoring.registry import scorer
from specbench.types import Item

# --- ChartQA: lmms_eval/tasks/chartqa/utils.py chartqa_process_results ---------------------
CHARTQA_SPLITS = {"human_test": "relaxed_accuracy_human", "augmented_test": "relaxed_accuracy_augmented"}


def _chartqa_number(text: str) -> float | None:
    """A number as relaxed correctness reads it: Python's ``float`` of the text, a trailing
    ``%`` (any run of them) dividing by 100; None when that fails.  ``float`` itself accepts
    surrounding whitespace, ``1_000``, ``1e3``, ``nan`` and ``inf``, so these are numbers too;
    thousands separators (``1,000``) and units are not."""
    try:
        return float(text.rstrip("%")) / 100.0 if text.endswith("%") else float(text)
    except ValueError:
        return None


def relaxed_correct(prediction: str, target: str, tolerance: float = 0.05) -> bool:
    """ChartQA's relaxed correctness (Masry et al. 2022, sec. 5.1, as lmms-eval's
    ``relaxed_correctness``): within ``tolerance`` relative to the target when both parse as
    numbers and the target is non-zero, else case-insensitive string equality.

    A target of 0 (falsy) is compared as a string: "0" never matches "0.0".  A NaN target
    never matches, not even "nan" (the relative change is NaN).  Neither side is stripped here.
    """
    pred, gold = _chartqa_number(prediction), _chartqa_number(target)
    if pred is not None and gold:
        return abs(pred - gold) / abs(gold) <= tolerance
    return prediction.lower() == target.lower()


@scorer("relaxed_accuracy", metrics=["relaxed_accuracy", "relaxed_accuracy_human", "relaxed_accuracy_augmented"])
def relaxed_accuracy(item: Item, output: str):
    """ChartQA relaxed accuracy: lmms_eval/tasks/chartqa/utils.py ``chartqa_process_results``
    (``relaxed_correctness``), on the stripped output against ``item.reference`` as given.

    ``relaxed_accuracy`` is lmms-eval's ``relaxed_overall``; ``relaxed_accuracy_human`` and
    ``relaxed_accuracy_augmented`` (its ``relaxed_human_split`` / ``relaxed_augmented_split``)
    are reported only for items of that split (``doc["type"]``).  lmms-eval counts any type but
    ``human_test`` as augmented; an unknown type here is an adapter error and raises.
    """
    split = item.doc.get("type")
    if split not in CHARTQA_SPLITS:
        raise ValueError(f"item {item.id}: ChartQA needs doc['type'] in {sorted(CHARTQA_SPLITS)}, got {split!r}")
    pred = output.strip()
    value = float(relaxed_correct(pred, item.reference))
    return pred, {"relaxed_accuracy": value, CHARTQA_SPLITS[split]: value}, {}


# --- DocVQA: lmms_eval/api/metrics.py anls ------------------------------------------------
ANLS_THRESHOLD = 0.5


def _anls_normalise(text: str) -> str:
    return " ".join(text.strip().lower().split())


def anls_value(answers: list[str], prediction: str, threshold: float = ANLS_THRESHOLD) -> float:
    """Average Normalized Levenshtein Similarity of one question (Biten et al. 2019), as
    lmms-eval's ``anls`` computes it: 1 - the smallest normalised distance to any gold answer,
    0 below ``threshold``.

    The distance is between the normalised strings (stripped, lower-cased, whitespace runs
    collapsed), but it is divided by the longer of the **raw** strings' upper-cased lengths:
    extra spaces in a gold answer ("  Total  ") lengthen the denominator without adding to the
    distance, and ``str.upper`` may change a length ("ß" -> "SS").  Both empty: distance 0.
    """
    pred = _anls_normalise(prediction)
    distances = []
    for answer in answers:
        length = max(len(answer.upper()), len(prediction.upper()))
        dist = Levenshtein.distance(_anls_normalise(answer), pred)
        distances.append(0.0 if length == 0 else float(dist) / float(length))
    value = 1 - min(distances)
    return 0.0 if value < threshold else float(value)


@scorer("anls", metrics=["anls"])
def anls(item: Item, output: str):
    """DocVQA ANLS: lmms_eval/api/metrics.py ``anls`` (threshold 0.5) over ``doc["answers"]``,
    as lmms-eval's ``ConfigurableTask.process_results`` calls it for docvqa_val (stripped output).
    A lone string is refused, not wrapped: lmms-eval would take list(string), its characters."""
    answers = item.doc.get("answers")
    if not isinstance(answers, list) or not answers or not all(isinstance(a, str) for a in answers):
        raise ValueError(f"item {item.id}: ANLS needs doc['answers'], a non-empty list of strings; got {answers!r}")
    pred = output.strip()
    return pred, {"anls": anls_value(answers, pred)}, {}


# --- VQAv2: lmms_eval/tasks/vqav2/utils.py vqav2_process_results ---------------------------
# The answer normalisation of the VQA challenge as evaluated on EvalAI, in the form lmms-eval
# uses (MMF's EvalAIAnswerProcessor, pythia/tasks/processors.py).  It differs from the original
# GT-Vision-Lab/VQA vqaEval.py in its punctuation list (no ':' or "'", adds '{}-!') and in
# straight apostrophes in the contractions; see docs/metrics.md.
VQA_PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`",
                   ",", "?", "!")
VQA_NUMBERS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
               "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
VQA_ARTICLES = frozenset({"a", "an", "the"})
# Words typed without their apostrophe -> the contraction.  Data of the reference, kept as is:
# the capitalised keys never match (words are lower-cased first) and "somebody'd" maps to
# "somebodyd" (a slip in the original table that every implementation keeps).
VQA_CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's", "howd": "how'd",
    "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm", "Ive": "I've",
    "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll", "let's": "let's",
    "maam": "ma'am", "mightnt": "mightn't", "mightnt've": "mightn't've", "mightn'tve": "mightn't've",
    "mightve": "might've", "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at",
    "'ow'sat": "'ow's'at", "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's",
    "shouldve": "should've", "shouldnt": "shouldn't", "shouldnt've": "shouldn't've",
    "shouldn'tve": "shouldn't've", "somebody'd": "somebodyd", "somebodyd've": "somebody'd've",
    "somebody'dve": "somebody'd've", "somebodyll": "somebody'll", "somebodys": "somebody's",
    "someoned": "someone'd", "someoned've": "someone'd've", "someone'dve": "someone'd've",
    "someonell": "someone'll", "someones": "someone's", "somethingd": "something'd",
    "somethingd've": "something'd've", "something'dve": "something'd've", "somethingll": "something'll",
    "thats": "that's", "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've",
    "therere": "there're", "theres": "there's", "theyd": "they'd", "theyd've": "they'd've",
    "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're", "theyve": "they've", "twas": "'twas",
    "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've", "werent": "weren't",
    "whatll": "what'll", "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's",
    "whered": "where'd", "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've",
    "who'dve": "who'd've", "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll",
    "whyre": "why're", "whys": "why's", "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll",
    "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've",
    "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll", "youre": "you're",
    "youve": "you've",
}
_DIGIT_COMMA_DIGIT = re.compile(r"\d,+\d")
# A period not followed by a digit goes ("2." -> "2", "a.m." -> "am"; "2.5" stays).  The original
# pattern's "(?!<=\d)" reads as a lookbehind but is a lookahead that never fires, so periods
# after digits go too.  It is applied with count=re.UNICODE (32): the flag is passed where the
# count goes, so only the first 32 such periods are removed.
_PERIOD = re.compile(r"\.(?!\d)")
_PERIOD_COUNT = int(re.UNICODE)


def vqa_punctuation(text: str) -> str:
    """Punctuation: each mark is removed where it touches a space, or anywhere once the text
    holds a digit-comma-digit ("1,000"); otherwise it becomes a space ("yes/no" -> "yes no")."""
    has_number = _DIGIT_COMMA_DIGIT.search(text) is not None
    out = text
    for p in VQA_PUNCTUATION:  # decided on the original text, mark by mark
        out = out.replace(p, "" if (has_number or p + " " in text or " " + p in text) else " ")
    return _PERIOD.sub("", out, count=_PERIOD_COUNT)


def vqa_digit_article(text: str) -> str:
    """Lower-case, split on whitespace, number words zero..ten (and "none") -> digits, drop
    articles, then expand apostrophe-less contractions; words joined by single spaces."""
    words = [VQA_NUMBERS.get(w, w) for w in text.lower().split()]
    return " ".join(VQA_CONTRACTIONS.get(w, w) for w in words if w not in VQA_ARTICLES)


def vqa_normalise(text: str) -> str:
    """One answer as the VQA accuracy compares it (gold and predicted alike)."""
    text = text.replace("\n", " ").replace("\t", " ").strip()
    return vqa_digit_article(vqa_punctuation(text))


def vqa_accuracy_value(answers: list[Any], prediction: str) -> tuple[float, int]:
    """(VQA accuracy, how many gold answers equal the prediction) for one question.

    For each gold answer left out in turn, min(#other gold answers equal to the prediction / 3,
    1); the accuracy is the mean over the left-out answers (``statistics.mean``, exactly as the
    reference averages).  An answer is left out as the reference does it, by equality
    (``item != gtAnsDatum``): a hub record's answers are dicts with a distinct ``answer_id``, so
    that is one annotator; dicts equal after normalisation (no ``answer_id``) are all left out
    together, as there.  Plain strings carry no annotator, so each is left out by position.
    """
    pred = vqa_normalise(prediction)
    entries: list[tuple[Any, str]] = []  # (what "left out" compares, the normalised answer)
    for i, ans in enumerate(answers):
        if isinstance(ans, dict):
            norm = vqa_normalise(ans["answer"])
            entries.append(({**ans, "answer": norm}, norm))
        else:
            entries.append((i, vqa_normalise(ans)))
    accs = [min(1.0, sum(1 for key, norm in entries if key != left and norm == pred) / 3) for left, _ in entries]
    return float(statistics.mean(accs)), sum(1 for _, norm in entries if norm == pred)


@scorer("vqa_accuracy", metrics=["vqa_accuracy"])
def vqa_accuracy(item: Item, output: str):
    """VQAv2 accuracy: lmms_eval/tasks/vqav2/utils.py ``vqav2_process_results`` (its
    ``exact_match``), with lmms_eval/tasks/_task_utils/vqa_eval_metric.py
    ``EvalAIAnswerProcessor.process_punctuation`` / ``process_digit_article``, over
    ``doc["answers"]`` ({"answer": ...} dicts as lmms-lab/VQAv2 has them, or plain strings).
    Unlike the reference (0 without answers) an item without gold answers raises."""
    answers = item.doc.get("answers")
    if not answers or not all(isinstance(a, str) or (isinstance(a, dict) and isinstance(a.get("answer"), str))
                              for a in answers):
        raise ValueError(f"item {item.id}: VQA accuracy needs doc['answers'], a non-empty list of "
                         f"{{'answer': str}} dicts or strings; got {answers!r}")
    value, matches = vqa_accuracy_value(answers, output.strip())
    return vqa_normalise(output.strip()), {"vqa_accuracy": value}, {"matching_answers": matches}


# --- ScienceQA (image questions): lmms_eval/tasks/scienceqa/utils.py sqa_process_results ---
def _letter_form(pred: str) -> bool:
    """LLaVA's 'X. ...' form: an upper-case first character followed by a period."""
    return len(pred) >= 2 and pred[0].isupper() and pred[1] == "."


@scorer("letter_acc", metrics=["acc"])
def letter_acc(item: Item, output: str):
    """Multiple choice answered by letter: lmms_eval/tasks/scienceqa/utils.py
    ``sqa_process_results`` (LLaVA's parse).  Correct when the stripped output is the gold
    letter in either case ("b"), or starts "B." with that letter in upper case ("B. mammal").
    Anything else is wrong: "(B)", "B)", "b. mammal", "The answer is B".

    The gold letter is ``chr(ord("A") + item.gold)``, as the reference's ``sqa_doc_to_target``
    derives it from the answer index; ``item.reference`` (the letter) when there is no index.
    """
    if item.gold is not None:
        if item.choices is not None and not 0 <= item.gold < len(item.choices):
            raise ValueError(f"item {item.id}: gold index {item.gold} outside its {len(item.choices)} choices")
        target = chr(ord("A") + item.gold).lower()
    else:
        target = item.reference.strip().lower()
    pred = output.strip()
    if pred.lower() == target:
        return pred, {"acc": 1.0}, {}
    if _letter_form(pred):
        return pred[0], {"acc": float(pred[0].lower() == target)}, {}
    return pred, {"acc": 0.0}, {}
