"""Structure-task scorers (scoring/structure.py, scoring/summary.py) and corpus aggregation.

Agreement with the reference libraries on crafted predictions: scikit-learn's f1_score (macro,
micro) for ``label_f1``, seqeval's entity F1/precision/recall for ``entity_f1``, rouge-score (and
lm-eval's cnn_dailymail function) for ``rouge``; the parse rules; the canonical text written by
``spans.format_entities`` parsing back to its tags; the bootstrap stderr of corpus metrics.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
from seqeval.metrics import f1_score as seq_f1
from seqeval.metrics import precision_score as seq_precision
from seqeval.metrics import recall_score as seq_recall
from sklearn.metrics import accuracy_score, f1_score

from specbench import scoring
from specbench.registry.schema import DatasetConfig, PromptConfig, TaskType
from specbench.registry.schema_structure import StructureConfig
from specbench.scoring import SCORERS, bootstrap_stderr, corpus_metrics, score
from specbench.scoring.structure import parse_entities, parse_label, read_entities
from specbench.spans import format_entities
from specbench.types import Item

RELATIONS = ["USED-FOR", "PART-OF", "AGONIST", "AGONIST-ACTIVATOR", "offensive_language", "COMPARE"]
TYPES = ["Gene", "Disease", "cell_type"]


def dataset(scorer: str, main: str, task_type: TaskType, labels: list[str]) -> DatasetConfig:
    return DatasetConfig(key="demo", display_name="demo", hub_path="local", split="test", task_type=task_type,
                         scorers=[scorer], main_metric=main, license="MIT", samples=1,
                         prompt=PromptConfig(template="{{ text }}"), structure=StructureConfig(labels=labels))


def label_item(i: int, gold: str) -> Item:
    return Item(id=f"rel/{i}", doc={"text": "x", "labels": list(RELATIONS)}, reference=gold)


def ner_item(i: int, tokens: list[str], tags: list[str]) -> Item:
    return Item(id=f"ner/{i}", doc={"tokens": tokens, "tags": tags, "text": " ".join(tokens), "labels": list(TYPES)},
                reference=format_entities(tokens, tags))


# --- classification ------------------------------------------------------------------------
def test_parse_label_rules():
    assert parse_label("  used-for \n", RELATIONS) == "USED-FOR"  # exact, any case
    assert parse_label("The relation is **PART-OF**.", RELATIONS) == "PART-OF"  # inside a sentence
    assert parse_label("COMPARE, not USED-FOR", RELATIONS) == "COMPARE"  # the first mentioned
    assert parse_label("It is AGONIST-ACTIVATOR", RELATIONS) == "AGONIST-ACTIVATOR"  # longer label at one position
    assert parse_label("AGONIST only", RELATIONS) == "AGONIST"
    assert parse_label("AGONISTS", RELATIONS) is None  # not inside a longer word
    assert parse_label("offensive language", RELATIONS) == "offensive_language"  # separators read loosely
    # ...but only as a fallback: a label spelled as declared beats earlier prose
    assert parse_label("As part of the method, the answer is USED-FOR", RELATIONS) == "USED-FOR"
    assert parse_label("I cannot tell", RELATIONS) is None


def test_label_f1_agrees_with_scikit_learn():
    gold = ["USED-FOR", "USED-FOR", "PART-OF", "PART-OF", "AGONIST", "COMPARE", "COMPARE", "USED-FOR", "COMPARE"]
    outputs = ["USED-FOR", "part-of", "PART-OF", "no idea", "AGONIST-ACTIVATOR", "COMPARE", "USED-FOR",
               "The answer: USED-FOR", "???"]
    items = [label_item(i, g) for i, g in enumerate(gold)]
    report = score(dataset("label_f1", "f1_macro", TaskType.classification, RELATIONS), items, [[o] for o in outputs])
    pred = ["USED-FOR", "PART-OF", "PART-OF", "#", "AGONIST-ACTIVATOR", "COMPARE", "USED-FOR", "USED-FOR", "#"]
    assert [s.extracted for s in report.samples] == [p if p != "#" else "[unparsed]" for p in pred]
    m = report.metrics
    # offensive_language is never predicted nor gold, AGONIST-ACTIVATOR only predicted: both count in the macro
    assert m["f1_macro"] == pytest.approx(f1_score(gold, pred, labels=RELATIONS, average="macro", zero_division=0))
    assert m["f1_micro"] == pytest.approx(f1_score(gold, pred, labels=RELATIONS, average="micro", zero_division=0))
    seen = sorted((set(gold) | set(pred)) - {"#"})  # without the never-seen offensive_language
    assert m["f1_macro"] < f1_score(gold, pred, labels=seen, average="macro", zero_division=0)
    assert m["acc"] == pytest.approx(accuracy_score(gold, pred)) and m["unparsed"] == pytest.approx(2 / 9)
    # corpus metrics: no per-item value (analysis reads score.<metric> as per-item values), a bootstrap stderr
    assert all(set(s.scores) == {"acc", "unparsed"} for s in report.samples)
    assert m["f1_macro_stderr"] > 0 and m["f1_micro_stderr"] > 0
    assert report.samples[3].detail == {"gold": "PART-OF", "pred": None}


# --- NER -----------------------------------------------------------------------------------
def test_parse_entities_rules():
    tokens = ["IL", "-", "2", "binds", "IL-4", ";", "il", "-", "2", "causes", "breast", "cancer", "."]
    text = "- Gene: IL-2\n* gene:  IL - 4 \nDisease: breast cancer\nFoo: bar\nDisease: diabetes\nHere they are:"
    tags, bad = parse_entities(text, tokens, TYPES)
    assert tags == ["B-Gene", "I-Gene", "I-Gene", "O", "B-Gene", "O", "B-Gene", "I-Gene", "I-Gene", "O",
                    "B-Disease", "I-Disease", "O"]  # every occurrence, case-folded, spaces ignored
    assert bad == 3  # unknown type, text not in the sentence, no type at all
    # overlaps: the longer span keeps its tokens, the shorter is tagged where it stands alone
    tags, bad = parse_entities("Disease: cancer\nDisease: breast cancer", ["breast", "cancer", "and", "cancer"], TYPES)
    assert tags == ["B-Disease", "I-Disease", "O", "B-Disease"] and bad == 0
    # type spelled loosely, numbered list; the first line wins one span given two types
    tags, _ = parse_entities("1. Cell Type: T cells\n2. Gene: T cells", ["T", "cells"], TYPES)
    assert tags == ["B-cell_type", "I-cell_type"]
    assert read_entities("None.", ["a"], TYPES).none and not read_entities("no entities", ["a"], TYPES).none
    assert parse_entities("no entities", ["a"], TYPES) == (["O"], 1)


def test_canonical_text_round_trips():
    sentences = [
        (["IL", "-", "2", "gene", "expression", "in", "T", "cells"],
         ["B-Gene", "I-Gene", "I-Gene", "O", "O", "O", "B-cell_type", "I-cell_type"]),
        (["BRCA1", "BRCA2", "and", "breast", "cancer"], ["B-Gene", "B-Gene", "O", "B-Disease", "I-Disease"]),
        (["No", "entities", "here"], ["O", "O", "O"]),
        (["p53", "Diabetes"], ["B-Gene", "B-Disease"]),
    ]
    for tokens, tags in sentences:
        assert parse_entities(format_entities(tokens, tags), tokens, TYPES) == (tags, 0)


def ner_case() -> tuple[list[Item], list[str], list[list[str]]]:
    """Crafted sentences: gold with an I- after O (CoNLL: starts an entity), adjacent entities of two
    types, multi-token entities, a sentence without entities; outputs right, wrong, partial, unparsed."""
    cases = [
        (["IL", "-", "2", "and", "TNF", "alpha"], ["B-Gene", "I-Gene", "I-Gene", "O", "I-Gene", "I-Gene"],
         "Gene: IL-2\nGene: TNF alpha"),
        (["BRCA1", "cancer", "risk"], ["B-Gene", "B-Disease", "O"], "Gene: BRCA1\nDisease: cancer risk"),
        (["nothing", "here"], ["O", "O"], "none"),
        (["nothing", "here"], ["O", "O"], "Gene: here"),
        (["T", "cells", "and", "sepsis"], ["B-cell_type", "I-cell_type", "O", "B-Disease"], "I don't know"),
        (["sepsis", "and", "sepsis"], ["B-Disease", "O", "O"], "Disease: sepsis"),
        (["T", "cells", "express", "p53"], ["B-cell_type", "I-cell_type", "O", "B-Gene"], "Gene: T cells\nGene: p53"),
    ]
    items = [ner_item(i, tokens, tags) for i, (tokens, tags, _) in enumerate(cases)]
    outputs = [out for *_, out in cases]
    pred = [parse_entities(o, it.doc["tokens"], TYPES)[0] for o, it in zip(outputs, items, strict=True)]
    return items, outputs, pred


def test_entity_f1_agrees_with_seqeval():
    items, outputs, pred = ner_case()
    gold = [it.doc["tags"] for it in items]
    report = score(dataset("entity_f1", "entity_f1", TaskType.ner, TYPES), items, [[o] for o in outputs])
    m = report.metrics
    assert m["entity_f1"] == pytest.approx(seq_f1(gold, pred), abs=1e-12)
    assert m["entity_precision"] == pytest.approx(seq_precision(gold, pred), abs=1e-12)
    assert m["entity_recall"] == pytest.approx(seq_recall(gold, pred), abs=1e-12)
    # by hand: 9 gold entities, 9 predicted (sepsis twice, "here", wrong spans and types), 5 right
    assert m["entity_precision"] == pytest.approx(5 / 9) and m["entity_recall"] == pytest.approx(5 / 9)
    assert m["unparsed"] == pytest.approx(1 / 7)  # "I don't know"; "none" and a wrong entity are parsed
    assert all(set(s.scores) == {"unparsed"} for s in report.samples)
    assert [s.extracted for s in report.samples][2:5] == ["none", "Gene: here", "[unparsed]"]
    assert report.samples[5].detail["entities"] == ["Disease: sepsis"] and report.samples[5].detail["tags"] == \
        ["B-Disease", "O", "B-Disease"]  # both occurrences tagged: one false positive
    assert m["entity_f1_stderr"] > 0


def test_corpus_statistics_agree_with_seqeval_on_ill_formed_predictions():
    # predictions the parse never writes (I- after O, I- of another type): the per-sentence counts
    # still follow seqeval's reading, else corpus_metrics raises
    items, _, _ = ner_case()
    pred = [["I-Gene", "I-Gene", "B-Gene", "O", "I-Disease", "I-Gene"], ["B-Gene", "I-Disease", "O"], ["O", "I-Gene"],
            ["O", "O"], ["I-cell_type", "I-cell_type", "O", "B-Disease"], ["B-Disease", "O", "O"],
            ["B-cell_type", "I-cell_type", "O", "B-Gene"]]
    gold = [it.doc["tags"] for it in items]
    got = corpus_metrics(SCORERS["entity_f1"], items, [{"tags": p} for p in pred])
    assert got["entity_f1"] == pytest.approx(seq_f1(gold, pred), abs=1e-12)
    assert got["entity_precision"] == pytest.approx(seq_precision(gold, pred), abs=1e-12)
    assert got["entity_recall"] == pytest.approx(seq_recall(gold, pred), abs=1e-12)


# --- corpus aggregation --------------------------------------------------------------------
def test_bootstrap_stderr_is_deterministic_and_positive():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 4, size=(200, 3)).astype(float)

    def reduce(sums):
        return {"ratio": sums[..., 0] / sums[..., 1:].sum(axis=-1)}

    first, again = bootstrap_stderr(counts, reduce), bootstrap_stderr(counts, reduce)
    assert first == again and first["ratio"] > 0
    assert bootstrap_stderr(counts, reduce, seed=1)["ratio"] != first["ratio"]
    # a mean is a ratio too: its bootstrap stderr is close to the analytic one
    ones = np.column_stack([rng.random(400), np.ones(400)])
    boot = bootstrap_stderr(ones, lambda s: {"mean": s[..., 0] / s[..., 1]})["mean"]
    assert boot == pytest.approx(scoring.mean_stderr(ones[:, 0]), rel=0.1)
    assert math.isnan(bootstrap_stderr(counts[:1], reduce)["ratio"])


def test_per_item_score_under_a_corpus_name_is_refused(monkeypatch):
    info = SCORERS["label_f1"]

    def leaky(item, output):
        ext, scores, detail = info.fn(item, output)
        return ext, {**scores, "f1_macro": 1.0}, detail

    monkeypatch.setitem(SCORERS, "label_f1", type(info)(**{**info.__dict__, "fn": leaky}))
    with pytest.raises(ValueError, match=r"scorer 'label_f1' gives item rel/0 a per-item score .*f1_macro"):
        score(dataset("label_f1", "f1_macro", TaskType.classification, RELATIONS), [label_item(0, "COMPARE")],
              [["COMPARE"]])


# --- ROUGE ---------------------------------------------------------------------------------
def test_rouge_agrees_with_rouge_score_and_lm_eval():
    import lm_eval
    from rouge_score import rouge_scorer

    refs = ["The models were trained on PubMed abstracts and evaluated on arXiv papers.",
            "We propose a new summarization method."]
    outs = ["Models are trained on abstracts from PubMed;  evaluated on arXiv.", "A method for translation."]
    items = [Item(id=str(i), doc={"text": "x"}, reference=r) for i, r in enumerate(refs)]
    ds = DatasetConfig(key="sum", display_name="sum", hub_path="local", split="test",
                       task_type=TaskType.summarization, scorers=["rouge"], main_metric="rougeL", license="MIT",
                       samples=1, prompt=PromptConfig(template="{{ text }}"))
    report = score(ds, items, [[o] for o in outs])
    ref = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    for sample, r, o in zip(report.samples, refs, outs, strict=True):
        want = ref.score(r, o)
        assert sample.scores == {t: want[t].fmeasure for t in ("rouge1", "rouge2", "rougeL")}
    assert 0 < report.samples[0].scores["rouge2"] < report.samples[0].scores["rouge1"]  # stemming: trained~train
    path = Path(lm_eval.__file__).parent / "tasks" / "cnn_dailymail" / "utils.py"
    spec = importlib.util.spec_from_file_location("lm_eval_cnn_dailymail_utils", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    theirs = module.calculate_rouge_scores(outs, refs)
    assert {t: report.metrics[t] for t in theirs} == pytest.approx(theirs, abs=1e-12)
