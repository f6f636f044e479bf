"""The multimodal scorers (scoring/vision.py) against lmms-eval 0.7.3 sample by sample.

The reference is lmms-eval's own pipeline, not a re-reading of it: a real ``ConfigurableTask``
built from the task's YAML (chartqa.yaml, docvqa_val.yaml, vqav2_val.yaml, scienceqa_img.yaml;
the dataset swapped for a one-line local JSON file so nothing is downloaded), whose
``process_results`` strips the generated text and dispatches to the task's function or metric,
as lmms-eval's evaluator calls it; the means come from the task's own aggregation functions.
Crafted outputs cover right, wrong, near-numeric, percentages, formatting, number words,
articles, contractions and empty answers, and the reference's quirks each scorer replicates.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from specbench.scoring import score
from specbench.scoring.vision import VQA_ARTICLES, VQA_CONTRACTIONS, VQA_NUMBERS, VQA_PUNCTUATION, vqa_normalise
from specbench.types import Item

# lmms-eval metric -> ours, per dataset
CHARTQA = {"relaxed_overall": "relaxed_accuracy", "relaxed_human_split": "relaxed_accuracy_human",
           "relaxed_augmented_split": "relaxed_accuracy_augmented"}


@pytest.fixture(scope="module")
def lmms_task(tmp_path_factory: pytest.TempPathFactory):
    """Build lmms-eval ConfigurableTasks from their YAML files (``!function`` resolved by
    lmms-eval's own loader), each over a one-document local JSON dataset."""
    import lmms_eval
    import lmms_eval.api.metrics  # noqa: F401 - registers the "mean" aggregation
    from lmms_eval.api.task import ConfigurableTask
    from lmms_eval.utils import load_yaml_config

    tasks_dir = Path(lmms_eval.__file__).parent / "tasks"
    tmp = tmp_path_factory.mktemp("lmms")

    def build(yaml_rel: str, doc: dict[str, Any]) -> Any:
        cfg = load_yaml_config(str(tasks_dir / yaml_rel))
        data = tmp / (Path(yaml_rel).stem + ".jsonl")
        data.write_text(json.dumps(doc) + "\n")
        cfg.update(dataset_path="json", dataset_name=None,
                   dataset_kwargs={"data_files": {cfg["test_split"]: str(data)}, "cache_dir": str(tmp / "cache")})
        return ConfigurableTask(config=cfg)

    return build


def _agree(registry, task: Any, dataset_key: str, scorer: str, names: dict[str, str],
           items: list[Item], docs: list[dict[str, Any]], outputs: list[str]) -> None:
    """Our per-sample values == lmms-eval's on the same outputs, and so are the means."""
    ds = replace(registry.datasets[dataset_key], scorers=[scorer])
    report = score(ds, items, [[o] for o in outputs])
    ref_values: dict[str, list[float]] = {m: [] for m in names.values()}
    for sample, doc, out in zip(report.samples, docs, outputs, strict=True):
        ref = task.process_results(copy.deepcopy(doc), [out])  # vqav2 normalises the doc in place
        ref = {names[k]: v for k, v in ref.items() if k in names}
        assert sample.scores == ref, f"{sample.id}: output {out!r}: ours {sample.scores} != lmms-eval {ref}"
        for m, v in ref.items():
            ref_values[m].append(v)
    # Means agree to the last bit or two: scoring.score sums with numpy (pairwise), lmms-eval's
    # mean with Python's sum (left to right); the per-sample values above are identical.
    aggregate = task.aggregation()
    for lmms_name, ours in names.items():
        assert report.metrics[ours] == pytest.approx(aggregate[lmms_name](ref_values[ours]), rel=1e-14, abs=0), ours


# --- ChartQA -------------------------------------------------------------------------------
CHARTQA_CASES = [  # (gold answer, type, output)
    ("12", "human_test", "12"),
    ("12", "human_test", "12.5"),  # 4.2%: within
    ("12", "augmented_test", "12.7"),  # 5.8%: outside
    ("12", "augmented_test", "12.6"),  # 5% up to rounding: within
    ("12", "human_test", "11.4"),  # 5% below
    ("-5", "augmented_test", "-5.2"),
    ("0.5", "human_test", "50%"),  # percent -> fraction
    ("45%", "human_test", "45"),  # 0.45 vs 45: wrong
    ("45%", "augmented_test", "0.45"),
    ("45%", "augmented_test", "45%"),
    ("50", "human_test", "50%%"),  # every trailing % goes: 0.5
    ("12", "augmented_test", "12 %"),  # 0.12
    ("Yes", "human_test", "yes"),  # case-insensitive
    ("Yes", "human_test", "  yes\n"),  # the output is stripped
    (" Yes", "human_test", "Yes"),  # the gold answer is not
    ("Yes", "human_test", "Yes."),  # no punctuation removed
    ("United States", "augmented_test", "united  states"),  # nor whitespace collapsed
    ("0", "human_test", "0.0"),  # a zero target is compared as a string
    ("0", "human_test", "0"),
    ("1,000", "augmented_test", "1000"),  # "1,000" is no number: string compare
    ("1000", "augmented_test", "1,000"),
    ("1000", "human_test", "1_000"),  # Python float() reads these
    ("1000", "human_test", "1e3"),
    ("nan", "human_test", "nan"),  # NaN target: never
    ("12", "human_test", ""),
    ("17.5", "augmented_test", "The answer is 17.5"),
    ("Inf", "augmented_test", "inf"),  # inf/inf is NaN: wrong, though the strings agree
]


def test_relaxed_accuracy_agrees_with_lmms_eval(registry, lmms_task) -> None:
    task = lmms_task("chartqa/chartqa.yaml", {"question": "q", "answer": "1", "type": "human_test"})
    docs = [{"question": "q?", "answer": a, "type": t} for a, t, _ in CHARTQA_CASES]
    items = [Item(id=f"chartqa/{i}", doc=d, reference=d["answer"]) for i, d in enumerate(docs)]
    outputs = [o for *_, o in CHARTQA_CASES]
    _agree(registry, task, "chartqa", "relaxed_accuracy", CHARTQA, items, docs, outputs)


def test_relaxed_accuracy_splits_and_values(registry) -> None:
    ds = replace(registry.datasets["chartqa"], scorers=["relaxed_accuracy"])
    items = [Item(id=str(i), doc={"type": t}, reference=a) for i, (a, t, _) in enumerate(CHARTQA_CASES)]
    report = score(ds, items, [[o] for *_, o in CHARTQA_CASES])
    by_id = {s.id: s.scores for s in report.samples}
    assert by_id["1"] == {"relaxed_accuracy": 1.0, "relaxed_accuracy_human": 1.0}
    assert by_id["2"] == {"relaxed_accuracy": 0.0, "relaxed_accuracy_augmented": 0.0}
    human = [s.scores["relaxed_accuracy"] for s in report.samples if "relaxed_accuracy_human" in s.scores]
    assert report.metrics["relaxed_accuracy_human"] == pytest.approx(sum(human) / len(human))
    assert len(human) + sum("relaxed_accuracy_augmented" in s.scores for s in report.samples) == len(items)
    bad = [Item(id="x", doc={"type": "test"}, reference="1")]
    with pytest.raises(ValueError, match="doc\\['type'\\]"):
        score(ds, bad, [["1"]])


# --- DocVQA --------------------------------------------------------------------------------
DOCVQA_CASES = [  # (gold answers, output)
    (["Hello World"], "Hello World"),
    (["Hello World"], " hello   WORLD "),  # normalised: 1
    (["1/10/98", "january 10, 1998"], "January 10, 1998"),  # best of several
    (["Total", "Grand Total"], "grand total"),
    (["ITC Limited"], "ITC Ltd"),  # 1 - 4/11
    (["ITC Limited"], "ITC"),  # below 0.5: 0
    (["abcd"], "ab"),  # exactly 0.5 stays
    (["Washington"], "Washingtn"),
    (["$12.50"], "12.50"),
    (["50%"], "50 %"),
    (["  Total   Amount "], "total amounts"),  # raw gold length 17 divides, not 12
    (["straße"], "strase"),  # "straße".upper() is 7 long: 1 - 1/7
    (["İstanbul"], "istanbul"),  # "İ".lower() is 2 characters
    (["Dr. John Smith"], "DR. JOHN SMITH"),
    (["yes"], "The answer is yes"),
    (["abc"], ""),
    ([""], ""),  # both empty: 1
    (["  "], ""),  # raw length 2, normalised distance 0: 1
    (["a"], "b"),
]


def test_anls_agrees_with_lmms_eval(registry, lmms_task) -> None:
    task = lmms_task("docvqa/docvqa_val.yaml", {"question": "q", "answers": ["a"], "questionId": "1"})
    assert list(task._metric_fn_list) == ["anls"]  # the metric lmms-eval's docvqa_val dispatches to
    docs = [{"question": "q?", "answers": a, "questionId": str(i)} for i, (a, _) in enumerate(DOCVQA_CASES)]
    items = [Item(id=f"docvqa/{i}", doc=d, reference=json.dumps(d["answers"])) for i, d in enumerate(docs)]
    _agree(registry, task, "docvqa", "anls", {"anls": "anls"}, items, docs, [o for _, o in DOCVQA_CASES])


def test_anls_length_rule() -> None:
    """The denominator is the raw strings' upper-cased length, not the normalised one."""
    from specbench.scoring.vision import anls_value

    assert anls_value(["  Total   Amount "], "total amounts") == 1 - 1 / 17
    assert anls_value(["straße"], "strase") == 1 - 1 / 7
    assert anls_value(["abcd"], "ab") == 0.5
    assert anls_value(["abcd"], "a") == 0.0
    assert anls_value([""], "") == 1.0


def test_anls_needs_a_list_of_answers(registry) -> None:
    ds = replace(registry.datasets["docvqa"], scorers=["anls"])
    for answers in ("a lone string", [], None, [1]):
        with pytest.raises(ValueError, match="doc\\['answers'\\]"):
            score(ds, [Item(id="x", doc={"answers": answers}, reference="")], [["a"]])


# --- VQAv2 ---------------------------------------------------------------------------------
def _annotators(*answers: str) -> list[dict[str, Any]]:
    """lmms-lab/VQAv2's shape: one dict per annotator, each with its own answer_id."""
    return [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1} for i, a in enumerate(answers)]


VQA_CASES = [  # (gold answers, output)
    (_annotators(*["2"] * 10), "2"),
    (_annotators(*["2"] * 10), "two"),  # number words
    (_annotators(*["2"] * 10), "Two."),
    (_annotators(*["2"] * 2, *["3"] * 8), "2"),  # 2 of 10 agree: 0.6
    (_annotators(*["yes"] * 3, *["no"] * 7), "Yes."),  # 3 agree: 0.9
    (_annotators(*["yes"] * 1, *["no"] * 9), "yes"),  # 1 agrees: 0.3
    (_annotators(*["dog"] * 10), "the dog"),  # articles
    (_annotators(*["dog"] * 10), "a dog"),
    (_annotators(*["don't"] * 5, *["no"] * 5), "dont"),  # contractions
    (_annotators(*["1000"] * 10), "1,000"),  # digit-comma-digit: punctuation removed
    (_annotators(*["black and white"] * 10), "black-and-white"),  # '-' -> space
    (_annotators(*["yes no"] * 10), "yes/no"),
    (_annotators(*["3.5"] * 10), "3.5."),  # decimals kept, final period removed
    (_annotators(*["0"] * 10), "none"),  # "none" is a number word
    (_annotators(*["10:30"] * 10), "10:30"),  # ':' is not punctuation here
    (_annotators(*["am"] * 10), "a.m."),
    (_annotators(*["cat"] * 10), "It is a cat"),
    (_annotators(*["2"] * 10), "\n2\t"),
    (_annotators(*["2"] * 10), ""),
    (_annotators(*["yes"] * 10), "yes..."),
    (_annotators(*["yes"] * 10), "yes" + "." * 40),  # only 32 periods go (count=re.UNICODE)
    (_annotators(*["2 dogs"] * 4, *["two dogs"] * 4, "dogs", "2"), "Two dogs!"),
    (_annotators("Yes", "yes", "YES", "yes.", "no", "No", "nope", "yes", "yes", "yeah"), "yes"),
    ([{"answer": "yes"}] * 10, "yes"),  # equal dicts are left out together: 0, as in lmms-eval
    ([{"answer": "yes"}] * 5 + [{"answer": "no"}] * 5, "no"),
]


def test_vqa_accuracy_agrees_with_lmms_eval(registry, lmms_task) -> None:
    task = lmms_task("vqav2/vqav2_val.yaml", {"question": "q", "question_id": 1, "answers": _annotators("a")})
    docs = [{"question": "q?", "question_id": i, "answers": a} for i, (a, _) in enumerate(VQA_CASES)]
    items = [Item(id=f"vqa/{i}", doc=d, reference=d["answers"][0]["answer"]) for i, d in enumerate(docs)]
    outputs = [o for _, o in VQA_CASES]
    _agree(registry, task, "vqa_v2", "vqa_accuracy", {"exact_match": "vqa_accuracy"}, items, docs, outputs)
    assert docs == [{"question": "q?", "question_id": i, "answers": a} for i, (a, _) in enumerate(VQA_CASES)]


def test_vqa_plain_string_answers_are_annotators(registry) -> None:
    """Plain strings (no annotator id): each is left out by position, so they score like the
    hub's dicts with distinct answer_ids."""
    ds = replace(registry.datasets["vqa_v2"], scorers=["vqa_accuracy"])
    cases = [(["yes"] * 10, "yes", 1.0), (["2"] * 2 + ["3"] * 8, "2", 0.6), (["yes"] * 3 + ["no"] * 7, "yes", 0.9)]
    items = [Item(id=str(i), doc={"answers": a}, reference=a[0]) for i, (a, _, _) in enumerate(cases)]
    dict_items = [Item(id=str(i), doc={"answers": _annotators(*a)}, reference=a[0])
                  for i, (a, _, _) in enumerate(cases)]
    outputs = [[o] for _, o, _ in cases]
    plain, dicts = score(ds, items, outputs), score(ds, dict_items, outputs)
    assert [s.scores["vqa_accuracy"] for s in plain.samples] == pytest.approx([e for *_, e in cases])
    assert [s.scores for s in plain.samples] == [s.scores for s in dicts.samples]
    assert plain.samples[2].extracted == "yes" and plain.samples[2].detail == {"matching_answers": 3}
    with pytest.raises(ValueError, match="doc\\['answers'\\]"):
        score(ds, [Item(id="x", doc={"answers": []}, reference="")], [["yes"]])


def test_vqa_normalisation_matches_evalai_processor() -> None:
    """The tables are the reference's data, and the normalisation its two steps."""
    from lmms_eval.tasks._task_utils.vqa_eval_metric import EvalAIAnswerProcessor as Proc

    assert VQA_CONTRACTIONS == Proc.CONTRACTIONS
    assert list(VQA_PUNCTUATION) == Proc.PUNCTUATIONS
    assert VQA_ARTICLES == set(Proc.ARTICLES)
    assert VQA_NUMBERS == {k: v for k, v in Proc.NUMBER_MAP.items() if k != v}  # setdefault adds k -> k entries
    proc = Proc()
    texts = ["Yes.", "1,000 (approx)", "left - right", "yes/no", "a.b.c", "3.14", "(2)", "He's", "Im", "dont!",
             "ten dogs", "Mr.Smith", "x" + "." * 40, "1,,2; ok", "  the  An A ", "{red}", "@home", "c'mon", "ow's'at"]
    for t in texts:
        assert vqa_normalise(t) == proc.process_digit_article(proc.process_punctuation(t.strip())), t


# --- ScienceQA (image questions) -------------------------------------------------------------
SQA_CHOICES = ["bird", "mammal", "fish", "reptile", "amphibian"]
SQA_CASES = [  # (number of choices, gold index, output)
    (3, 1, "B"),
    (3, 1, "b"),  # case-insensitive letter
    (3, 1, "B. mammal"),
    (3, 1, "B."),
    (3, 1, " B \n"),  # stripped
    (3, 1, "A"),
    (3, 1, "A. bird"),
    (3, 1, "(B)"),
    (3, 1, "B)"),
    (3, 1, "b. mammal"),  # the 'X.' form needs an upper-case letter
    (3, 1, "The answer is B."),
    (3, 1, "Answer: B"),
    (3, 1, "B mammal"),
    (3, 1, "BB"),
    (3, 1, "mammal"),
    (3, 1, ""),
    (3, 1, "C. B"),
    (5, 4, "E"),
    (5, 4, "E. amphibian"),
    (2, 0, "a"),
]


def test_letter_acc_agrees_with_lmms_eval(registry, lmms_task) -> None:
    task = lmms_task("scienceqa/scienceqa_img.yaml", {"question": "q", "hint": "", "choices": ["a", "b"], "answer": 0})
    docs = [{"question": "Which is a mammal?", "hint": "", "choices": SQA_CHOICES[:n], "answer": g}
            for n, g, _ in SQA_CASES]
    items = [Item(id=f"sqa/{i}", doc=d, reference=chr(ord("A") + d["answer"]), choices=d["choices"], gold=d["answer"])
             for i, d in enumerate(docs)]
    outputs = [o for *_, o in SQA_CASES]
    _agree(registry, task, "scienceqa", "letter_acc", {"exact_match": "acc"}, items, docs, outputs)


def test_letter_acc_reference_letter_and_extraction(registry) -> None:
    ds = replace(registry.datasets["scienceqa"], scorers=["letter_acc"])
    items = [Item(id="0", doc={}, reference="C"), Item(id="1", doc={}, reference="B", choices=SQA_CHOICES[:3], gold=1)]
    report = score(ds, items, [["C. fish"], ["A. bird"]])
    assert [(s.extracted, s.scores["acc"]) for s in report.samples] == [("C", 1.0), ("A", 0.0)]
    with pytest.raises(ValueError, match="outside"):
        score(ds, [Item(id="x", doc={}, reference="D", choices=SQA_CHOICES[:3], gold=3)], [["D"]])
