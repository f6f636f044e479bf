"""Encoder models answer classification and NER datasets: a frozen-encoder probe, or their own head.

The probe (the SentEval / BERT-feature-extraction recipe) never trains the encoder: the encoder
embeds the training split and the evaluated items, a scikit-learn logistic regression is fitted on
the training vectors, and its predictions are the answers, written as the canonical text
(``specbench.spans``) that generative models are asked for, so one scorer scores both.

- classification: one pooled vector per item (``structure.encoder_input``, with ``encoder_pair`` as
  the pair's second segment) -> one label;
- ner: one vector per word (its first sub-token's) -> one BIO tag per word -> the entity list.  An
  ``I-`` tag that follows ``O`` or another type is left as predicted: seqeval's CoNLL reading (which
  ``format_entities`` uses, like the scorer) starts an entity there, as conlleval does;
- a checkpoint's own head (``encoder.head`` naming the dataset): the head's labels mapped onto the
  dataset's (multi-label heads: the highest label over the threshold wins, none: the default).

Features are standardised (``StandardScaler``) before the regression: encoder vectors have a few
dimensions hundreds of times larger than the rest (BERT's outlier dimensions), on which lbfgs needs
many more iterations and the L2 penalty acts unevenly.  Everything is seeded (the regression's
``random_state=0``; the encoder is deterministic), so a probe answers the same twice.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

from specbench import data
from specbench.engines import Engine
from specbench.pipeline.task import Answered, Prepared
from specbench.registry.schema import TaskType
from specbench.spans import NO_ENTITIES, format_entities
from specbench.types import Item


def answer_encoder(prepared: Prepared, engine: Engine) -> Answered:
    """The prepared items answered by the task's encoder: its head when it answers this dataset,
    else a probe fitted on ``prepared.train``.  An item that cannot be read is answered ``""`` (wrong)
    with its reason in ``prepared.failures``; a training split a probe cannot learn from fails the cell."""
    task = prepared.task
    if task.encoder is None or task.dataset.structure is None:
        raise ValueError(f"{task.dataset.key}: not an encoder task (no encoder or no structure section)")
    if task.head:
        return _by_head(prepared, engine)
    if task.dataset.task_type == TaskType.ner:
        return _ner_probe(prepared, engine)
    return _classification_probe(prepared, engine)


# ---- inputs -------------------------------------------------------------------------------------

def _texts(prepared: Prepared, items: list[Item], failures: dict[int, str]) -> tuple[list[str], list[str] | None]:
    """Each item's encoder input (and pair segment); an item whose template fails gets "" and a failure."""
    st = prepared.task.dataset.structure
    texts: list[str] = []
    pairs: list[str] | None = [] if st.encoder_pair else None
    for i, item in enumerate(items):
        try:
            text = data.render(st.encoder_input, item.doc, "structure.encoder_input")
            pair = data.render(st.encoder_pair, item.doc, "structure.encoder_pair") if st.encoder_pair else ""
        except ValueError as exc:
            failures[i] = f"item {item.id}: {exc}"
            text = pair = ""
        texts.append(text)
        if pairs is not None:
            pairs.append(pair)
    return texts, pairs


def _words(items: list[Item], failures: dict[int, str]) -> list[list[str]]:
    out = []
    for i, item in enumerate(items):
        tokens = item.doc.get("tokens")
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            failures[i] = f"item {item.id}: doc.tokens must be a list of words, got {type(tokens).__name__}"
            tokens = []
        out.append(tokens)
    return out


def _check_train(prepared: Prepared, labels: list[str], failed: dict[int, str]) -> None:
    """A probe needs training items of at least two classes: else one line, and the cell fails."""
    ds = prepared.task.dataset.key
    where = prepared.train_source or f"split '{prepared.task.dataset.structure.train_split}'"
    if failed:
        first = next(iter(failed.values()))
        raise ValueError(f"{ds}: {len(failed)} training item(s) of {where} cannot be read, e.g. {first}")
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise ValueError(f"{ds}: the probe's training split ({where}) has {len(prepared.train)} item(s) and "
                         f"{len(classes)} class(es) ({', '.join(classes) or 'none'}); a classifier needs >= 2")


def _fit(prepared: Prepared, x: Any, y: list[str]) -> tuple[Any, dict[str, float]]:
    """A standardised logistic regression on (x, y), seeded; with its fit time and convergence."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    enc = prepared.task.encoder
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=enc.probe_c, max_iter=enc.probe_max_iter,
                                                               random_state=0))
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        probe.fit(x, y)
    fit_s = time.perf_counter() - t0
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    reg = probe[-1]
    return probe, {"fit_s": fit_s, "probe_converged": float(converged), "probe_iterations": float(max(reg.n_iter_)),
                   "probe_classes": float(len(reg.classes_)), "probe_train_accuracy": float(probe.score(x, y))}


def _figures(embedded: Any, n_sentences: int, n_train: int, extra: dict[str, float]) -> dict[str, float | None]:
    wall = embedded.wall_s
    return {"embed_s": wall, "sentences_per_s": n_sentences / wall if wall else None, "train_items": float(n_train),
            "items_over_window": float(len(embedded.over_window)), "embed_tokens": float(embedded.tokens), **extra}


# ---- the three ways ---------------------------------------------------------------------------

def _classification_probe(prepared: Prepared, engine: Engine) -> Answered:
    import numpy as np

    train, test = prepared.train, prepared.items
    train_failed: dict[int, str] = {}
    tr_texts, tr_pairs = _texts(prepared, train, train_failed)
    _check_train(prepared, [it.reference for it in train], train_failed)
    te_texts, te_pairs = _texts(prepared, test, prepared.failures)
    pairs = tr_pairs + te_pairs if tr_pairs is not None and te_pairs is not None else None
    embedded = engine.embed(tr_texts + te_texts, pairs)  # one call: full batches across the two splits
    vectors = np.asarray(embedded.vectors)
    probe, fit = _fit(prepared, vectors[:len(train)], [it.reference for it in train])
    predicted = probe.predict(vectors[len(train):]) if test else []
    outputs = [[""] if i in prepared.failures else [str(label)] for i, label in enumerate(predicted)]
    return Answered(outputs, _figures(embedded, len(train) + len(test), len(train), fit), wall_s=embedded.wall_s)


def _ner_probe(prepared: Prepared, engine: Engine) -> Answered:
    import numpy as np

    train, test = prepared.train, prepared.items
    train_failed: dict[int, str] = {}
    tr_words = _words(train, train_failed)
    tags: list[str] = []
    for i, (item, words) in enumerate(zip(train, tr_words, strict=True)):
        item_tags = item.doc.get("tags")
        if not isinstance(item_tags, list) or len(item_tags) != len(words):
            train_failed.setdefault(i, f"item {item.id}: doc.tags must be one BIO tag per word "
                                       f"({len(words)} words)")
        else:
            tags += [str(t) for t in item_tags]
    _check_train(prepared, tags, train_failed)
    te_words = _words(test, prepared.failures)
    embedded = engine.embed_words(tr_words + te_words)
    per_item = [np.asarray(v) for v in embedded.vectors]
    x_train = np.concatenate([v for v in per_item[:len(train)] if len(v)])
    probe, fit = _fit(prepared, x_train, tags)
    outputs: list[list[str]] = []
    for i, (words, vec) in enumerate(zip(te_words, per_item[len(train):], strict=True)):
        if i in prepared.failures:
            outputs.append([""])
        elif not words:
            outputs.append([NO_ENTITIES])
        else:
            outputs.append([format_entities(words, [str(t) for t in probe.predict(vec)])])
    n_words = sum(map(len, te_words)) + len(tags)
    fit["words_per_s"] = n_words / embedded.wall_s if embedded.wall_s else None
    return Answered(outputs, _figures(embedded, len(train) + len(test), len(train), fit), wall_s=embedded.wall_s)


def _by_head(prepared: Prepared, engine: Engine) -> Answered:
    """The checkpoint's head: its probabilities mapped onto the dataset's labels (``encoder.head``)."""
    head = prepared.task.encoder.head
    ds = prepared.task.dataset.key
    texts, pairs = _texts(prepared, prepared.items, prepared.failures)
    t0 = time.perf_counter()
    probs = engine.classify(texts, pairs)
    wall = getattr(probs, "wall_s", 0.0) or time.perf_counter() - t0
    outputs: list[list[str]] = []
    fired_none = 0
    for i, p in enumerate(probs):
        missing = [h for h in head.labels if h not in p]
        if missing:
            raise ValueError(f"{ds}: encoder.head.labels {', '.join(missing)} are not the head's labels "
                             f"({', '.join(p)})")
        if i in prepared.failures:
            outputs.append([""])
            continue
        if head.multi_label:
            firing = [(p[h], h) for h in head.labels if p[h] > head.threshold]
            label = head.labels[max(firing)[1]] if firing else head.default
            fired_none += not firing
        else:
            label = head.labels[max((p[h], h) for h in head.labels)[1]]
        outputs.append([str(label)])
    over = getattr(probs, "over_window", None)  # the encoder engine says; another engine may not
    figures: dict[str, float | None] = {
        "embed_s": wall, "sentences_per_s": len(texts) / wall if wall else None, "train_items": 0.0,
        "items_over_window": float(len(over)) if over is not None else None}
    if head.multi_label:
        figures["head_default_answers"] = float(fired_none)
    return Answered(outputs, figures, wall_s=wall)
