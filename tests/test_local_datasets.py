"""Datasets read from a file the user supplies (BioASQ), and the seeds' sets without a public source.

BioASQ's data is registration-only, so no real question ships here: the tests write a small file
in BioASQ's Task B JSON layout into tmp_path, CLEARLY SYNTHETIC (questions about made-up proteins,
ids ``synthetic...``), point ``$SPECBENCH_BIOASQ`` at it and check loading, the prompts (against
lm-evaluation-harness's own pubmedqa task object, whose layout the entry uses), the yes/no measures
(against scikit-learn and a transcription of BioASQ's EvaluatorTask1b) and the one-line messages
when the variable is unset, names no file, or the file lacks fields.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import ROOT

from specbench import data
from specbench.data.errors import DataUnavailable
from specbench.pipeline.category_plan import plan_category
from specbench.pipeline.plan import CellUnavailable, plan_cell
from specbench.registry import load_registry
from specbench.registry.schema import ConfigError, Status
from specbench.scoring import score
from specbench.types import ChoiceScores

ENV = "SPECBENCH_BIOASQ"
REGISTER = "http://participants-area.bioasq.org"


def _q(n: int, qtype: str, answer, snippets: list[str], body: str) -> dict:
    """One question in BioASQ's Task B layout (the fields a training / golden file carries)."""
    qid = f"synthetic{n:015d}"
    return {"id": qid, "type": qtype, "body": body, "exact_answer": answer,
            "ideal_answer": [f"Synthetic ideal answer {n}."], "documents": [f"http://example.org/synthetic/{n}"],
            "concepts": [], "snippets": [{"text": t, "document": f"http://example.org/synthetic/{n}",
                                          "beginSection": "abstract", "endSection": "abstract",
                                          "offsetInBeginSection": 0, "offsetInEndSection": len(t)} for t in snippets]}


# Synthetic: made-up proteins and facts, written for these tests; mixed types as a real file has.
QUESTIONS = [
    _q(1, "yesno", "yes", ["Zorbin-1 phosphorylates the made-up substrate Quaxin.", "Zorbin-1 is a kinase."],
       "Is the synthetic protein Zorbin-1 a kinase?"),
    _q(2, "factoid", [["Quaxin"]], ["Zorbin-1 phosphorylates Quaxin."], "Which substrate does Zorbin-1 act on?"),
    _q(3, "yesno", "No", ["Plimin is found only in the synthetic cytoplasm."], "Is Plimin a nuclear protein?"),
    _q(4, "list", [["A"], ["B"]], ["A and B bind Plimin."], "List the binders of Plimin."),
    _q(5, "summary", None, ["Frobinase cleaves Quaxin."], "What is Frobinase?"),
    _q(6, "yesno", "yes", ["Frobinase cleaves Quaxin in vitro."], "Does Frobinase cleave Quaxin?"),
    _q(7, "yesno", "no", ["Quaxin is not glycosylated."], "Is Quaxin glycosylated?"),
]
YESNO = [q for q in QUESTIONS if q["type"] == "yesno"]


@pytest.fixture(scope="module")
def registry():
    return load_registry()


@pytest.fixture
def bioasq_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "synthetic_training.json"
    path.write_text(json.dumps({"questions": QUESTIONS}))
    monkeypatch.setenv(ENV, str(path))
    return path


def _write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str, name: str = "bad.json") -> Path:
    path = tmp_path / name
    path.write_text(content)
    monkeypatch.setenv(ENV, str(path))
    return path


# -- the registry entry ----------------------------------------------------------------------
def test_bioasq_is_ready_from_a_local_file(registry):
    d = registry.dataset("bioasq")
    assert d.status == Status.ready and d.local_env == ENV and REGISTER in d.local_source
    assert not d.hub_path and d.offline_slice is None  # never the hub, never a shipped copy
    assert d.scorers == ["bioasq_yesno"] and d.main_metric == "acc"


def test_local_env_must_be_a_variable_name_with_a_source(registry):
    d = registry.dataset("bioasq")
    for bad in ({"local_env": "not a name"}, {"local_source": ""}):
        with pytest.raises(ConfigError, match="environment variable name .* local_source") as exc:
            dataclasses.replace(d, **bad)
        assert exc.value.key == "local_env"


# -- loading and prompts ---------------------------------------------------------------------
def test_loads_the_yes_no_questions_of_the_file(registry, bioasq_file):
    d = registry.dataset("bioasq")
    got = data.load_items(d)
    assert [it.id for it in got.items] == [q["id"] for q in YESNO]  # factoid / list / summary left out
    assert [it.reference for it in got.items] == ["yes", "no", "yes", "no"]  # "No" read ignoring case
    assert [it.gold for it in got.items] == [0, 1, 0, 1] and got.items[0].choices == ["yes", "no"]
    assert got.items[0].doc["snippets"] == [s["text"] for s in YESNO[0]["snippets"]]
    assert got.available == 4 and got.offline and got.source == str(bioasq_file)
    assert got.hf_dataset.num_rows == 4 and got.digest == got.hf_dataset._fingerprint
    again = data.load_items(d, samples=2)
    assert len(again.items) == 2 and again.digest != got.digest  # the digest says which items
    assert data.load_items(d, samples=2).digest == again.digest
    more = data.load_items(d, samples=50)
    assert len(more.items) == 4 and any("holds 4" in n for n in more.notes)
    assert data.load_items(d, offline=False).items[0].id == YESNO[0]["id"]  # the hub flag has no say


def test_prompts_are_lm_evals_pubmedqa_layout(registry, bioasq_file, tmp_path):
    """lm-eval's own pubmedqa task object, over the same questions as PubMedQA records, with the
    choices yes and no: the same (context, continuation) requests, byte for byte."""
    pytest.importorskip("lm_eval")
    from tests.test_lmeval_prompts import lm_requests, lm_task, our_requests

    d = registry.dataset("bioasq")
    got = data.load_items(d)
    rows = [{"QUESTION": q["body"], "CONTEXTS": [s["text"] for s in q["snippets"]],
             "final_decision": q["exact_answer"].lower()} for q in YESNO]
    task = lm_task("pubmedqa/pubmedqa.yaml", tmp_path / "lm", {"train": rows, "validation": rows, "test": rows},
                   doc_to_choice=["yes", "no"])
    theirs, mine = lm_requests(task, list(task.test_docs()), None), our_requests(d, got.items, got.fewshot, None)
    assert theirs == mine and mine[0][0][0].startswith("Abstract: Zorbin-1 phosphorylates")
    assert [r[1] for r in mine[0]] == [" yes", " no"]


# -- scoring ---------------------------------------------------------------------------------
def _evaluator_task1b(gold: list[str], pred: list[str]) -> dict[str, float]:
    """BioASQ/Evaluation-Measures EvaluatorTask1b (Phase B), transcribed: per label, a right answer
    to a question of that label is a TP, a wrong one its "FP", a wrong answer to a question of the
    other label its "FN"; F1 = 2TP / (2TP + FP + FN), 0 when that is 0/0; macro F1 the mean."""
    def f1(label: str) -> float:
        tp = sum(g == label and p == g for g, p in zip(gold, pred, strict=True))
        fp = sum(g == label and p != g for g, p in zip(gold, pred, strict=True))
        fn = sum(g != label and p != g for g, p in zip(gold, pred, strict=True))
        return 0.0 if 2 * tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)

    acc = sum(g == p for g, p in zip(gold, pred, strict=True)) / len(gold)
    return {"acc": acc, "f1_yes": f1("yes"), "f1_no": f1("no"), "f1_macro": (f1("yes") + f1("no")) / 2}


@pytest.mark.parametrize("pred", [["yes", "yes", "yes", "no"], ["no", "no", "no", "no"], ["yes", "no", "yes", "no"],
                                  ["no", "yes", "no", "yes"]], ids=["mixed", "all-no", "right", "wrong"])
def test_yes_no_measures_are_bioasqs(registry, bioasq_file, pred):
    from sklearn.metrics import accuracy_score, f1_score

    d = registry.dataset("bioasq")
    items = data.load_items(d).items
    outputs = [ChoiceScores([-1.0, -2.0] if p == "yes" else [-2.0, -1.0]) for p in pred]
    report = score(d, items, outputs)
    gold = [it.reference for it in items]
    assert [s.extracted for s in report.samples] == pred  # the higher log-likelihood, per question
    assert [s.scores["acc"] for s in report.samples] == [float(g == p) for g, p in zip(gold, pred, strict=True)]
    ref = _evaluator_task1b(gold, pred)
    for metric in ("acc", "f1_yes", "f1_no", "f1_macro"):
        assert report.metrics[metric] == pytest.approx(ref[metric], abs=1e-12), metric
        assert f"{metric}_stderr" in report.metrics
    assert report.metrics["acc"] == pytest.approx(accuracy_score(gold, pred))
    assert report.metrics["f1_macro"] == pytest.approx(f1_score(gold, pred, labels=["yes", "no"], average="macro",
                                                                zero_division=0))


def test_a_label_never_asked_nor_answered_counts_zero_in_the_macro_mean(registry, tmp_path, monkeypatch):
    """All gold answers yes, one answered yes: F1 yes 0.5, F1 no 0 (0/0 in BioASQ's evaluator), macro 0.25."""
    _write(tmp_path, monkeypatch, json.dumps({"questions": [YESNO[0], YESNO[2], YESNO[0] | {"id": "synthetic9"}]}))
    d = registry.dataset("bioasq")
    items = data.load_items(d).items
    report = score(d, items, [ChoiceScores([-1.0, -2.0]), ChoiceScores([-2.0, -1.0]), ChoiceScores([-2.0, -1.0])])
    assert report.metrics["acc"] == pytest.approx(1 / 3)
    assert (report.metrics["f1_yes"], report.metrics["f1_no"], report.metrics["f1_macro"]) == (0.5, 0.0, 0.25)


# -- what the user's file or variable gets wrong: one line each ----------------------------------
def _one_line(exc: BaseException, *parts: str) -> str:
    msg = str(exc)
    assert "\n" not in msg, msg
    for part in parts:
        assert part in msg, (part, msg)
    return msg


def test_unset_variable_skips_the_cell_at_plan_time(registry, monkeypatch, tmp_path):
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(CellUnavailable) as exc:
        plan_cell(registry, "smollm2_135m", "bioasq", engine="transformers")
    _one_line(exc.value, "bioasq", ENV, "is not set", REGISTER)
    plan = plan_category(registry, "biomedical_specialists", models=["smollm2_135m"], datasets=["bioasq"],
                         engine="transformers")
    (cell,) = plan.cells
    assert cell.reason and ENV in cell.reason and REGISTER in cell.reason and not plan.runnable
    monkeypatch.setenv(ENV, str(tmp_path / "nowhere.json"))
    with pytest.raises(CellUnavailable) as exc:
        plan_cell(registry, "smollm2_135m", "bioasq", engine="transformers")
    _one_line(exc.value, f"{ENV}={tmp_path / 'nowhere.json'} is not a file", REGISTER)


def test_a_named_file_plans_a_local_cell(registry, bioasq_file):
    plan = plan_cell(registry, "smollm2_135m", "bioasq", engine="transformers")
    assert plan.data.kind == "local" and plan.loglik and plan.partial_split is None


def test_evaluate_exits_2_with_the_line_when_unset(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != ENV}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    r = subprocess.run([sys.executable, "-m", "specbench.cli", "evaluate", "--model", "smollm2_135m", "--dataset",
                        "bioasq", "--samples", "2", "--engine", "transformers"], capture_output=True, text=True,
                       cwd=ROOT, env=env, timeout=300)
    assert r.returncode == 2, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and ENV in lines[0] and REGISTER in lines[0], r.stderr


@pytest.mark.parametrize(("content", "expected"), [
    (json.dumps({"questions": [{k: v for k, v in YESNO[0].items() if k != "exact_answer"}]}),
     "record 0 of {path}: question synthetic000000000000001: no 'exact_answer'"),
    (json.dumps({"questions": [YESNO[0] | {"exact_answer": "maybe"}]}), "'maybe' of a yes/no question"),
    (json.dumps({"questions": [YESNO[0] | {"snippets": []}]}), "no 'snippets' with text"),
    (json.dumps({"questions": [{k: v for k, v in YESNO[0].items() if k != "body"}]}), "no 'body'"),
    (json.dumps({"questions": [QUESTIONS[1]]}),
     "holds 1 records and none of the kind it evaluates (BioASQ Task B yes/no questions)"),
    ('{"questions": [', "is not valid JSON"),
    (json.dumps({"questions": [], "other": []}), "exactly one list of records, found 2"),
    (json.dumps({"questions": ["x"]}), "record 0 is a str, not an object"),
], ids=["no-answer", "not-yes-no", "no-snippets", "no-body", "no-yes-no", "not-json", "two-lists", "not-records"])
def test_a_bad_file_is_one_line(registry, tmp_path, monkeypatch, content, expected):
    path = _write(tmp_path, monkeypatch, content)
    with pytest.raises(DataUnavailable) as exc:
        data.load_items(registry.dataset("bioasq"))
    _one_line(exc.value, "dataset 'bioasq'", expected.format(path=path))


def test_a_json_lines_file_reads_too(registry, tmp_path, monkeypatch):
    _write(tmp_path, monkeypatch, "".join(json.dumps(q) + "\n" for q in QUESTIONS), name="questions.jsonl")
    assert [it.id for it in data.load_items(registry.dataset("bioasq")).items] == [q["id"] for q in YESNO]


def _evaluate(tmp_path: Path, path: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, ENV: str(path), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    return subprocess.run([sys.executable, "-m", "specbench.cli", "evaluate", "--model", "smollm2_135m", "--dataset",
                           "bioasq", "--engine", "transformers", *extra], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=600)


def test_a_file_missing_fields_fails_its_cell_in_one_line(tmp_path):
    """The items load before the engine starts: the cell's run is FAILED with the line, no model is loaded."""
    path = tmp_path / "no_answers.json"
    path.write_text(json.dumps({"questions": [{k: v for k, v in YESNO[0].items() if k != "exact_answer"}]}))
    r = _evaluate(tmp_path, path)
    assert r.returncode == 1, r.stderr
    assert "FAILED" in r.stdout + r.stderr
    error = next(line for line in r.stderr.splitlines() if line.startswith("error:"))
    assert f"record 0 of {path}: question synthetic000000000000001: no 'exact_answer'" in error


@pytest.mark.slow
def test_evaluate_scores_the_users_file(tmp_path):
    """SmolLM2 on the synthetic file, end to end: a finished run with BioASQ's measures and the data source."""
    import mlflow

    path = tmp_path / "synthetic_training.json"
    path.write_text(json.dumps({"questions": QUESTIONS}))
    r = _evaluate(tmp_path, path, "--samples", "3")
    assert r.returncode == 0, r.stderr[-2000:]
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = [run for exp in client.search_experiments() for run in client.search_runs([exp.experiment_id])]
    mine = [run for run in runs if run.data.tags.get("specbench.dataset") == "bioasq"]
    assert len(mine) == 1, [r.data.tags for r in runs]
    run = mine[0]
    assert run.info.status == "FINISHED" and run.data.tags["specbench.data_source"] == "local"
    m = run.data.metrics
    assert m["n_samples"] == 3 and {"acc", "f1_macro", "f1_yes", "f1_no", "f1_macro_stderr"} <= set(m)
    assert 0.0 <= m["acc"] <= 1.0 and m["f1_macro"] == pytest.approx((m["f1_yes"] + m["f1_no"]) / 2)


# -- data_science_tasks: DS-1000's pandas / NumPy / scikit-learn problems ------------------------
# A problem in DS-1000's simplified layout (xlangai/DS-1000), SYNTHETIC: written here in the shape of its
# code_context (generate_test_case, exec_test, exec_context with [insert], test_execution, test_string).
DS_CONTEXT = '''import io
import tokenize
import copy

import pandas as pd

def generate_test_case(test_case_id):
    def define_test_input(test_case_id):
        if test_case_id == 1:
            return pd.DataFrame({"a": [1, 2, 3], "b": [4, 5, 6]})
        return pd.DataFrame({"a": [7, 8], "b": [9, 10]})

    test_input = define_test_input(test_case_id)
    return test_input, copy.deepcopy(test_input).sum(axis=1)

def exec_test(result, ans):
    try:
        pd.testing.assert_series_equal(result, ans)
        return 1
    except Exception:
        return 0

exec_context = r"""
import pandas as pd
df = test_input
[insert]
"""

def test_execution(solution: str):
    code = exec_context.replace("[insert]", solution)
    for i in range(2):
        test_input, expected_result = generate_test_case(i + 1)
        test_env = {"test_input": test_input}
        exec(code, test_env)
        assert exec_test(test_env["result"], expected_result)

def test_string(solution: str):
    tokens = [t.string for t in tokenize.tokenize(io.BytesIO(solution.encode("utf-8")).readline)]
    assert "for" not in tokens
'''
DS_RECORD = {"prompt": "Problem:\nSum each row of df.\nA:\n<code>\nimport pandas as pd\ndf = ...\n</code>\n"
                       "result = ... # put solution in this variable\nBEGIN SOLUTION\n<code>\n",
             "reference_code": "result = df.sum(axis=1)\n", "code_context": DS_CONTEXT,
             "metadata": {"problem_id": 7, "library_problem_id": 7, "library": "Pandas", "test_case_cnt": 2,
                          "perturbation_type": "Origin", "perturbation_origin_id": 7}}


def _official_program(code_context: str, answer: str) -> str:
    """DS-1000's test_ds1000.py test program, transcribed."""
    return (code_context + "\n" + f"code = {answer!r}\n" + "test_execution(code)\n"
            + ("test_string(code)\n" if "test_string(" in code_context else "\n"))


def test_data_science_tasks_is_ds1000_at_a_pinned_commit(registry):
    d = registry.dataset("data_science_tasks")
    assert d.status == Status.ready and d.hub_path == "xlangai/DS-1000" and len(d.revision) == 40
    assert d.scorers == ["ds1000"] and registry.dataset("ds1000") is d  # the alias
    assert "data_science_tasks" in registry.category("data_science").datasets.primary


def test_ds1000_adapter_keeps_the_seeds_libraries():
    from specbench.data.adapters import ADAPTERS

    a = ADAPTERS["ds1000"]
    item = a.normalize(DS_RECORD, 0, "test")
    assert item.id == "7" and item.test == DS_CONTEXT and item.reference == DS_RECORD["reference_code"]
    assert item.doc["library"] == "Pandas" and item.doc["prompt"].endswith("<code>\n")
    libs = {lib: a.split_filter({"metadata": {"library": lib}}, "test") for lib in
            ("Pandas", "Numpy", "Sklearn", "Matplotlib", "Scipy", "Pytorch", "Tensorflow")}
    assert [lib for lib, kept in libs.items() if kept] == ["Pandas", "Numpy", "Sklearn"]


def test_data_science_tasks_without_the_hub_is_one_line(registry, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CellUnavailable) as exc:
        plan_cell(registry, "smollm2_135m", "data_science_tasks", engine="transformers")
    _one_line(exc.value, "xlangai/DS-1000@4416080ac5cb80bdf7576aefb8f9a0b4d5426a44:test", "no offline slice")


def test_ds1000_programs_are_ds1000s_and_run_in_the_sandbox(registry):
    from specbench.data.adapters import ADAPTERS
    from specbench.scoring.ds1000 import ds1000_program, postprocess

    d = registry.dataset("data_science_tasks")
    item = ADAPTERS["ds1000"].normalize(DS_RECORD, 0, "test")
    answers = {
        "plain": ("result = df.sum(axis=1)\n</code>\nEND SOLUTION", 1.0),
        "fenced": ("```python\nresult = df.sum(axis=1)\n```\nThis sums each row.", 1.0),
        "prose-first": ("Here it is:\n```python\nresult = df.sum(axis=1)\n```", 0.0),  # DS-1000 keeps the prose
        "wrong": ("result = df.sum(axis=0)\n", 0.0),
        "loop": ("result = pd.Series([sum(r) for r in df.values])\n", 0.0),  # right values; test_string refuses
        "broken": ("result = df.sum(axis=\n", 0.0),
    }
    # DS-1000's postprocess on each (its test_ds1000.py: </code>, ```python, ```, END SOLUTION, <code>)
    expected = {"plain": "result = df.sum(axis=1)\n", "fenced": "\nresult = df.sum(axis=1)\n",
                "prose-first": "Here it is:\n\nresult = df.sum(axis=1)\n", "wrong": "result = df.sum(axis=0)\n",
                "loop": "result = pd.Series([sum(r) for r in df.values])\n", "broken": "result = df.sum(axis=\n"}
    for name, (text, _) in answers.items():
        assert postprocess(text) == expected[name], name
        assert ds1000_program(item, text) == _official_program(DS_CONTEXT, expected[name])
    report = score(d, [item] * len(answers), [[text] for text, _ in answers.values()])
    got = {name: s.scores["pass_at_1"] for name, s in zip(answers, report.samples, strict=True)}
    assert got == {name: want for name, (_, want) in answers.items()}
    assert report.samples[0].extracted == "result = df.sum(axis=1)\n"
    assert report.metrics["pass_at_1"] == pytest.approx(2 / 6)
    two = score(d, [item], [[answers["plain"][0], answers["wrong"][0]]])  # n = 2: pass@1 = 1/2
    assert two.samples[0].scores["pass_at_1"] == 0.5 and two.samples[0].detail["c"] == 1


# -- the seeds' other sets: planned, each saying why and what a user would supply ------------------
SEED_LOCAL = ["efficiency_bench", "mobile_benchmark", "biomedical_extended", "genomics_benchmark", "protein_function",
              "protein_sequences"]


@pytest.mark.parametrize("key", SEED_LOCAL)
def test_seed_sets_without_a_source_say_why_and_what_to_supply(registry, key):
    d = registry.dataset(key)
    assert d.status == Status.planned and d.hub_path == ""
    reason = " ".join(d.planned_reason.split())
    assert "seed" in reason and "user" in reason.lower(), reason  # where the name comes from; what to supply
    with pytest.raises(CellUnavailable, match=f"dataset {key} is planned: "):
        plan_cell(registry, "smollm2_135m", key, engine="transformers")
