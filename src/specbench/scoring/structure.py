"""Scorers of structure tasks: single-label classification (``label_f1``) and named entities (``entity_f1``).

Both read the canonical output text (``specbench.spans``), whether a generative model wrote it
or an encoder probe did: one parse for specialists and generalists, so their scores compare.

**Classification** (:func:`parse_label`, labels = the dataset's ``structure.labels``, which
``data.loading`` puts in every item's ``doc["labels"]``):

1. the stripped output equal to a label, ignoring case, is that label;
2. else the label mentioned first, as written (case-insensitive, not inside a longer word:
   ``\\w`` may not touch either end); at one position the longer label wins, so
   ``AGONIST-ACTIVATOR`` beats ``AGONIST``;
3. else, the same with each ``-``/``_`` of a label read as any run of spaces, hyphens or
   underscores (``offensive language`` for ``offensive_language``).  A fallback only: prose
   such as "part of" or "used for" must not outrank a label the model spelled out (SciERC's
   ``PART-OF``, ``USED-FOR``);
4. else the output is unparsed: it counts as wrong (``acc`` 0, a miss of its gold class in the
   F1s) and is counted (``unparsed``).

``acc`` and ``unparsed`` are per-item means; ``f1_macro`` and ``f1_micro`` are corpus metrics,
scikit-learn's ``f1_score`` over all items with ``labels=`` the declared set (a class never
predicted still counts in the macro mean), ``zero_division=0``, an unparsed prediction mapped
to a sentinel outside the set (a false negative of its gold class, a false positive of none).

**NER** (:func:`parse_entities`, types = ``doc["labels"]``, the sentence = ``doc["tokens"]``):

- each non-blank line ``<type>: <entity text>``, after an optional bullet (``-``, ``*``,
  ``•``, ``1.``, ``1)``); the type is matched to a declared type ignoring case and reading
  ``-``/``_``/spaces alike; the text (surrounding quotes, backticks or ``*`` dropped when the
  text is not found as written) is located in the sentence by comparing, without whitespace and
  case-folded, against concatenations of consecutive tokens, so ``IL-2`` finds
  ``["IL", "-", "2"]``;
- EVERY occurrence is tagged (``B-``/``I-``): a list names an entity once, while the sentence
  may hold it more than once;
- overlapping matches: longer spans first (in tokens), then the earlier in the sentence, then
  the earlier line; a span overlapping one already placed is dropped (so ``breast cancer``
  keeps its tokens from a listed ``cancer``, and the first of two types given one span wins);
- a line whose type is unknown, or whose text is not in the sentence, is an unparsed line
  (counted per item, in the detail);
- the output ``none`` alone (any case, a trailing period allowed) means no entities; any other
  output without a single located entity is an unparsed item: scored with no predicted
  entities, and counted (``unparsed``).

``entity_f1``, ``entity_precision`` and ``entity_recall`` are seqeval's (CoNLL default mode,
micro average, over all sentences' tag sequences), corpus metrics.  Both scorers' corpus
metrics get a bootstrap stderr over items (``scoring.corpus_metrics``) from per-item counts:
true positives, false positives and false negatives per class (classification) or entities
found, predicted and gold per sentence (NER).
"""

from __future__ import annotations

import re
import warnings
from typing import Any, NamedTuple

import numpy as np

from specbench.scoring.registry import Corpus, scorer
from specbench.spans import NO_ENTITIES, entity_spans, format_entities
from specbench.types import Item

UNPARSED = "[unparsed]"  # the extracted answer, and scikit-learn's class, of an output no label was read from
_SEP = re.compile(r"[\s_-]+")
_BULLET = re.compile(r"^(?:[-*•]|\d+[.)])\s+")
_QUOTES = "\"'`*"


def _loose(text: str) -> str:
    """Case-folded, with runs of spaces/hyphens/underscores read as one space (type names, loose labels)."""
    return _SEP.sub(" ", text.strip()).casefold()


def _label_pattern(label: str, loose: bool) -> re.Pattern[str]:
    body = r"[\s_-]+".join(map(re.escape, _SEP.split(label.strip()))) if loose else re.escape(label)
    return re.compile(rf"(?<!\w){body}(?!\w)", re.IGNORECASE)


def parse_label(text: str, labels: list[str]) -> str | None:
    """The label an output names, spelled as declared; None when it names none (see the module docstring)."""
    stripped = text.strip().casefold()
    for label in labels:
        if stripped == label.casefold():
            return label
    for loose in (False, True):
        # (position, -length): the first mention, and at one position the longer label
        found = [(m.start(), -len(m.group()), i) for i, label in enumerate(labels)
                 if (m := _label_pattern(label, loose).search(text))]
        if found:
            return labels[min(found)[2]]
    return None


class ParsedEntities(NamedTuple):
    tags: list[str]  # BIO tags of the sentence's tokens
    unparsed_lines: list[str]  # lines with an unknown type or a text not found in the sentence
    none: bool  # the output said there are no entities


def _occurrences(norm: list[str], target: str) -> list[tuple[int, int]]:
    """(first, last) token of every run of consecutive tokens whose concatenation is ``target``."""
    found = []
    for start in range(len(norm)):
        joined = ""
        for end in range(start, len(norm)):
            joined += norm[end]
            if len(joined) >= len(target):
                if joined == target:
                    found.append((start, end))
                break
    return found


def read_entities(text: str, tokens: list[str], types: list[str]) -> ParsedEntities:
    """The parse of an entity list against its sentence (see the module docstring)."""
    by_name = {_loose(t): t for t in types}
    norm = ["".join(tok.split()).casefold() for tok in tokens]
    lines = [_BULLET.sub("", line.strip()).strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    if len(lines) == 1 and lines[0].rstrip(".").strip().casefold() == NO_ENTITIES:
        return ParsedEntities(["O"] * len(tokens), [], True)
    spans: list[tuple[int, int, int, str]] = []  # (-length, start, line, type)
    unparsed = []
    for n, line in enumerate(lines):
        name, colon, entity = line.partition(":")
        etype = by_name.get(_loose(name.strip(_QUOTES))) if colon else None
        found: list[tuple[int, int]] = []
        if etype is not None:
            for candidate in dict.fromkeys((entity, entity.strip().strip(_QUOTES))):
                target = "".join(candidate.split()).casefold()
                if target and (found := _occurrences(norm, target)):
                    break
        if not found:
            unparsed.append(line)
        spans += [(start - end - 1, start, n, etype) for start, end in found]
    tags = ["O"] * len(tokens)
    for neg_len, start, _, etype in sorted(spans, key=lambda s: s[:3]):
        end = start - neg_len
        if all(t == "O" for t in tags[start:end]):
            tags[start:end] = [f"B-{etype}"] + [f"I-{etype}"] * (end - start - 1)
    return ParsedEntities(tags, unparsed, False)


def parse_entities(text: str, tokens: list[str], types: list[str]) -> tuple[list[str], int]:
    """(BIO tags, number of unparsed lines) of an entity list against its sentence's tokens."""
    parsed = read_entities(text, tokens, types)
    return parsed.tags, len(parsed.unparsed_lines)


def _labels(item: Item, scorer_name: str) -> list[str]:
    labels = item.doc.get("labels")
    if not labels or not isinstance(labels, list):
        raise ValueError(f"item {item.id}: scorer '{scorer_name}' needs doc['labels'], the dataset's "
                         "structure.labels (data.loading adds it); declare a structure: section")
    return labels


def _corpus_labels(items: list[Item], scorer_name: str) -> list[str]:
    labels = _labels(items[0], scorer_name)
    if bad := next((it for it in items if it.doc.get("labels") != labels), None):
        raise ValueError(f"item {bad.id}: scorer '{scorer_name}': doc['labels'] {bad.doc.get('labels')} differ from "
                         f"the other items' {labels}; one dataset has one label set")
    return labels


# --- classification ------------------------------------------------------------------------
def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """2tp / (2tp + fp + fn), 0 where nothing was predicted or expected (scikit-learn's zero_division=0)."""
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros(np.broadcast(tp, denom).shape), where=denom > 0)


def _label_value(items: list[Item], details: list[dict[str, Any]]) -> dict[str, float]:
    from sklearn.metrics import f1_score

    labels = _corpus_labels(items, "label_f1")
    gold = [d["gold"] for d in details]
    pred = [UNPARSED if d["pred"] is None else d["pred"] for d in details]
    return {avg_name: float(f1_score(gold, pred, labels=labels, average=avg, zero_division=0))
            for avg_name, avg in (("f1_macro", "macro"), ("f1_micro", "micro"))}


def _label_counts(items: list[Item], details: list[dict[str, Any]]) -> np.ndarray:
    """Per item and class: [tp | fp | fn] (3 x classes columns)."""
    labels = _corpus_labels(items, "label_f1")
    index = {label: i for i, label in enumerate(labels)}
    k = len(labels)
    counts = np.zeros((len(details), 3 * k))
    for row, d in zip(counts, details, strict=True):
        g, p = index[d["gold"]], index.get(d["pred"])  # p None: unparsed, a miss of g only
        if p == g:
            row[g] = 1
        else:
            row[2 * k + g] = 1
            if p is not None:
                row[k + p] = 1
    return counts


def _label_reduce(sums: np.ndarray) -> dict[str, np.ndarray]:
    tp, fp, fn = np.split(sums, 3, axis=-1)
    return {"f1_macro": _f1(tp, fp, fn).mean(axis=-1),
            "f1_micro": _f1(tp.sum(axis=-1), fp.sum(axis=-1), fn.sum(axis=-1))}


@scorer("label_f1", metrics=["acc", "f1_macro", "f1_micro", "unparsed"],
        corpus=Corpus(("f1_macro", "f1_micro"), _label_value, _label_counts, _label_reduce))
def label_f1(item: Item, output: str):
    labels = _labels(item, "label_f1")
    if item.reference not in labels:
        raise ValueError(f"item {item.id}: gold label '{item.reference}' is not in structure.labels "
                         f"({', '.join(labels)})")
    if UNPARSED in labels:
        raise ValueError(f"item {item.id}: structure.labels holds '{UNPARSED}', the unparsed sentinel")
    pred = parse_label(output, labels)
    scores = {"acc": float(pred == item.reference), "unparsed": float(pred is None)}
    return (UNPARSED if pred is None else pred), scores, {"gold": item.reference, "pred": pred}


# --- named entities ------------------------------------------------------------------------
def _sentence(item: Item) -> tuple[list[str], list[str]]:
    tokens, tags = item.doc.get("tokens"), item.doc.get("tags")
    if not isinstance(tokens, list) or not isinstance(tags, list) or len(tokens) != len(tags):
        raise ValueError(f"item {item.id}: scorer 'entity_f1' needs doc['tokens'] and doc['tags'], lists of one "
                         "length (a NER adapter's items)")
    return tokens, tags


def _entity_value(items: list[Item], details: list[dict[str, Any]]) -> dict[str, float]:
    from seqeval.metrics import f1_score, precision_score, recall_score

    gold = [_sentence(it)[1] for it in items]
    pred = [d["tags"] for d in details]
    with warnings.catch_warnings():  # no predicted (or gold) entity at all: 0, as zero_division="warn" gives
        warnings.simplefilter("ignore")
        return {"entity_f1": float(f1_score(gold, pred)), "entity_precision": float(precision_score(gold, pred)),
                "entity_recall": float(recall_score(gold, pred))}


def _entity_counts(items: list[Item], details: list[dict[str, Any]]) -> np.ndarray:
    """Per sentence: [entities both gold and predicted (type and span), predicted, gold], seqeval's counts."""
    rows = []
    for it, d in zip(items, details, strict=True):
        gold, pred = set(entity_spans(_sentence(it)[1])), set(entity_spans(d["tags"]))
        rows.append((len(gold & pred), len(pred), len(gold)))
    return np.array(rows, dtype=float).reshape(len(rows), 3)


def _entity_reduce(sums: np.ndarray) -> dict[str, np.ndarray]:
    tp, n_pred, n_gold = sums[..., 0], sums[..., 1], sums[..., 2]
    precision = np.divide(tp, n_pred, out=np.zeros(np.shape(tp)), where=n_pred > 0)
    recall = np.divide(tp, n_gold, out=np.zeros(np.shape(tp)), where=n_gold > 0)
    total = precision + recall
    # seqeval's form, 2pr / (p + r), so the point estimate agrees to the last bit
    f1 = np.divide(2 * precision * recall, total, out=np.zeros(np.shape(tp)), where=total > 0)
    return {"entity_f1": f1, "entity_precision": precision, "entity_recall": recall}


@scorer("entity_f1", metrics=["entity_f1", "entity_precision", "entity_recall", "unparsed"],
        corpus=Corpus(("entity_f1", "entity_precision", "entity_recall"), _entity_value, _entity_counts,
                      _entity_reduce))
def entity_f1(item: Item, output: str):
    tokens, _ = _sentence(item)
    parsed = read_entities(output, tokens, _labels(item, "entity_f1"))
    unparsed = not parsed.none and all(t == "O" for t in parsed.tags)
    extracted = UNPARSED if unparsed else format_entities(tokens, parsed.tags)
    detail = {"entities": [] if extracted in (UNPARSED, NO_ENTITIES) else extracted.splitlines(),
              "unparsed_lines": parsed.unparsed_lines, "tags": parsed.tags}
    return extracted, {"unparsed": float(unparsed)}, detail
