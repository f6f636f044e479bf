"""aime, mathqa and minerva_math (issue #15): lm-evaluation-harness 0.4.13's prompts and scores, per sample.

Prompts: lm-eval's own task objects (the YAMLs in lm_eval/tasks, built by test_lmeval_prompts' helpers)
over hub-shaped records written from the shipped slices, compared with what specbench sends.  Scores:
lm-eval's own ``process_results`` on the same documents and outputs (crafted, and built from the real
slice items' answers), compared with specbench's scorers item by item.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from specbench import data, scoring
from specbench.data.adapters import get_adapter
from specbench.data.errors import DataUnavailable
from specbench.data.loading import plan_source
from specbench.registry import load_registry
from specbench.registry.schema import Status
from specbench.types import ChoiceScores, Item

pytest.importorskip("lm_eval", reason="lm_eval not installed (pip install 'lm_eval[math]==0.4.13')")
from tests.test_lmeval_prompts import (  # noqa: E402 - lm-eval's side, shared with the other datasets' prompt tests
    _same,
    lm_contexts,
    lm_requests,
    lm_task,
    our_requests,
    ours,
    tokenizer,  # noqa: F401 - fixture
)

KEYS = ("aime", "mathqa", "minerva_math")


def needs_lm_eval_math() -> None:
    """lm-eval's minerva utils import sympy, math_verify and antlr4 4.11 (its [math] extra) at import."""
    pytest.importorskip("math_verify", reason="lm_eval[math] not installed (pip install 'lm_eval[math]==0.4.13')")


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def _rows(name: str) -> list[dict]:
    return [json.loads(x) for x in (data.SLICES_DIR / name).read_text(encoding="utf-8").splitlines() if x.strip()]


def test_ready_with_adapter_slice_and_lm_eval_task(registry):
    from lm_eval.tasks import TaskManager

    known = set(TaskManager().all_tasks)
    for key in KEYS:
        d = registry.dataset(key)
        assert d.status == Status.ready, key
        assert (data.SLICES_DIR / d.offline_slice).is_file(), key
        assert d.lm_eval_task in known, key
        assert scoring.answer_capability(d) == ("loglikelihood" if key == "mathqa" else "generate")


# ---- aime ------------------------------------------------------------------------------------------

def test_aime_slice_is_2024_in_contest_order_with_hub_fields(registry):
    d = registry.dataset("aime")
    items = data.load_items(d, None, offline=True).items
    assert [it.id for it in items[:2]] == ["2024-I-1", "2024-I-2"] and items[15].id == "2024-II-1"
    assert len(items) == 30 and len({it.id for it in items}) == 30
    assert all(set(it.doc) == {"ID", "Year", "Problem Number", "Question", "Answer", "Part"} for it in items)
    assert all(isinstance(it.doc["Answer"], int) and 0 <= it.doc["Answer"] <= 999 for it in items)
    assert items[1].reference == "25"  # Qwen's "025": the hub's integer Answer, as str() in lm-eval


def test_aime_prompt_is_lm_evals(registry, tmp_path):
    d = registry.dataset("aime")
    loaded = data.load_items(d, 12, offline=True)
    task = lm_task("aime/aime.yaml", tmp_path, {"train": [it.doc for it in loaded.items]})
    _same(lm_contexts(task, list(task.test_docs()), None), ours(d, loaded.items, [], None))
    assert task.config.generation_kwargs["until"] == d.prompt.stop
    assert task.config.generation_kwargs["max_gen_toks"] == d.prompt.max_new_tokens


AIME_CRAFTED = ["\\boxed{204}", "$204$", "204", "The answer is 204.", "$x = 204$", "so $\\boxed{204}$ minutes",
                "\\boxed 204$ done", "\\fbox{204}", "$1$ then \\boxed{0204}", "$\\frac{408}{2}$", "\\boxed{204",
                "$204$ or $205$", "", "$ 204 $", "\\boxed{\\text{204}}", "204\n", "answer: \\boxed{204}."]


def test_aime_scores_are_lm_evals(registry):
    from lm_eval.tasks.aime import utils

    d = registry.dataset("aime")
    items = data.load_items(d, None, offline=True).items
    info = scoring.scorer_info("aime_exact")
    cases: list[tuple[Item, str]] = [(items[0], out) for out in AIME_CRAFTED]
    for it in items:  # real items: their answers written the ways models write them, right and wrong
        a = it.doc["Answer"]
        cases += [(it, f"So the answer is $\\boxed{{{a}}}$."), (it, f"${a}$"), (it, f"{a:03d}"), (it, f"${a + 1}$")]
    got = info([c[0] for c in cases], [c[1] for c in cases], dataset_key="aime")
    hits = 0
    for (it, out), (_, scores, _) in zip(cases, got, strict=True):
        assert scores["exact_match"] == utils.process_results(it.doc, [out])["exact_match"], (it.id, out)
        hits += scores["exact_match"]
    assert 0 < hits < len(cases)


# ---- mathqa ----------------------------------------------------------------------------------------

def _mathqa_hub(row: dict) -> dict:
    """A slice record under the hub's field names (what regisss/math_qa holds)."""
    names = {"problem": "Problem", "rationale": "Rationale", "type": "category"}
    return {names.get(k, k): v for k, v in row.items()}


def test_mathqa_choices_and_gold_are_lm_evals(registry):
    from lm_eval.tasks.mathqa import utils

    d = registry.dataset("mathqa")
    rows = _rows("mathqa.test.jsonl")
    items = data.load_items(d, None, offline=True).items
    norm = get_adapter(d).normalize
    for i, (row, it) in enumerate(zip(rows, items, strict=True)):
        hub = _mathqa_hub(row)
        assert it.choices == utils.doc_to_choice(hub) and len(it.choices) == 5
        assert it.gold == ["a", "b", "c", "d", "e"].index(hub["correct"])
        assert norm(hub, i, "test") == it  # the hub's record of the same problem gives the same item


@pytest.mark.parametrize("chat", [False, True], ids=["plain", "chat"])
def test_mathqa_requests_are_lm_evals(registry, tmp_path, request, chat):
    tok = request.getfixturevalue("tokenizer") if chat else None
    d = registry.dataset("mathqa")
    loaded = data.load_items(d, 16, offline=True)
    rows = [_mathqa_hub(r) for r in _rows("mathqa.test.jsonl")[:16]]
    task = lm_task("mathqa/mathqa.yaml", tmp_path, {"test": rows, "train": rows, "validation": rows})
    _same(lm_requests(task, list(task.test_docs()), tok), our_requests(d, loaded.items, [], tok))


def test_mathqa_scores_are_lm_evals(registry, tmp_path):
    d = registry.dataset("mathqa")
    loaded = data.load_items(d, None, offline=True)
    rows = [_mathqa_hub(r) for r in _rows("mathqa.test.jsonl")]
    task = lm_task("mathqa/mathqa.yaml", tmp_path, {"test": rows, "train": rows, "validation": rows})
    rng = np.random.default_rng(0)
    outs = [ChoiceScores(list(-np.array([len(c) for c in it.choices], float) * rng.uniform(0.2, 0.6, 5)))
            for it in loaded.items]
    report = scoring.score(d, loaded.items, outs)
    differ = 0
    for doc, cs, s in zip(task.test_docs(), outs, report.samples, strict=True):
        theirs = task.process_results(doc, [(ll, False) for ll in cs.logprobs])
        assert (s.scores["acc"], s.scores["acc_norm"]) == (theirs["acc"], theirs["acc_norm"])
        differ += s.scores["acc"] != s.scores["acc_norm"]
    assert differ > 0


# ---- minerva_math ----------------------------------------------------------------------------------

def _minerva_hub(it: Item) -> dict:
    return {"problem": it.doc["problem"], "level": "Level ?", "type": it.doc["type"], "solution": it.doc["solution"]}


@pytest.mark.parametrize("chat", [False, True], ids=["plain", "chat"])
def test_minerva_prompt_is_lm_evals_4_shot(registry, tmp_path, chat):
    """lm-eval's 4 fixed Minerva examples, then the problem; chat_layout none: chat models get it too."""
    needs_lm_eval_math()
    d = registry.dataset("minerva_math")
    items = [it for it in data.load_items(d, None, offline=True).items if it.doc["subject"] == "algebra"][:8]
    task = lm_task("minerva_math/minerva_math_algebra.yaml", tmp_path,
                   {"test": [_minerva_hub(it) for it in items], "train": [_minerva_hub(it) for it in items]})
    mine = data.build_prompts(d, items, [], chat=chat)
    _same(lm_contexts(task, list(task.test_docs()), None), mine)
    assert all(p.count("Final Answer: The final answer is") == 4 for p in mine)


MINERVA_CRAFTED = ["Final Answer: The final answer is ${}$. I hope it is correct.",
                   "Final Answer: The final answer is {}. I hope it is correct.",
                   "So it is $\\boxed{{{}}}$.",  # no Minerva phrase: exact_match 0, math_verify may accept
                   "Final Answer: The final answer is $x = {}$",
                   "Final Answer: The final answer is $2{}$. I hope it is correct.",
                   "The final answer is {}"]


def test_minerva_scores_are_lm_evals(registry, tmp_path):
    """lm-eval's minerva process_results on its process_docs documents (built by its task object from the
    hub-shaped records) against specbench's scorer on specbench's items; a spread of subjects."""
    needs_lm_eval_math()
    d = registry.dataset("minerva_math")
    loaded = data.load_items(d, None, offline=True).items
    items = [next(it for it in loaded if it.doc["subject"] == s) for s in
             ("algebra", "counting_and_probability", "geometry", "number_theory", "precalculus")]
    task = lm_task("minerva_math/minerva_math_algebra.yaml", tmp_path, {"test": [_minerva_hub(it) for it in items]})
    docs = list(task.test_docs())
    info = scoring.scorer_info("minerva_math")
    cases = [(it, doc, fmt.format(it.reference))
             for it, doc in zip(items, docs, strict=True) for fmt in MINERVA_CRAFTED]
    cases += [(items[0], docs[0], out) for out in  # the first item's answer is \frac{1023}{1024}
              ("Final Answer: The final answer is $\\dfrac{1023}{1024}$. I hope it is correct.",
               "Final Answer: The final answer is 0.9990234375. I hope it is correct.", "")]
    got = info([c[0] for c in cases], [c[2] for c in cases], dataset_key="minerva_math")
    totals = {"exact_match": 0.0, "math_verify": 0.0}
    for (it, doc, out), (_, scores, detail) in zip(cases, got, strict=True):
        theirs = task.process_results(doc, [out])
        assert scores == {k: float(v) for k, v in theirs.items()}, (it.id, out)
        assert detail["reference_normalized"] == doc["answer"]
        for k in totals:
            totals[k] += scores[k]
    assert all(0 < v < len(cases) for v in totals.values()), totals


# ---- bad input, hub loaders, slices ----------------------------------------------------------------

def test_bad_records_fail_in_one_line(registry):
    needs_lm_eval_math()
    aime, mathqa = get_adapter(registry.dataset("aime")), get_adapter(registry.dataset("mathqa"))
    with pytest.raises(ValueError, match=r"aime record 3: expected the hub's fields") as e1:
        aime.normalize({"problem": "p", "answer": "1", "url": "https://example.org/x"}, 3, "train")
    with pytest.raises(ValueError, match=r"mathqa record 0: correct='f' names no option") as e2:
        mathqa.normalize({"Problem": "p", "options": "a ) 1 , b ) 2 , c ) 3 , d ) 4 , e ) 5", "correct": "f"},
                         0, "test")
    no_solution = Item(id="x/0", doc={"problem": "p"}, reference="1")
    with pytest.raises(ValueError, match="item x/0 has no solution text") as e3:
        scoring.scorer_info("minerva_math")([no_solution], ["Final Answer: The final answer is 1."])
    assert all("\n" not in str(e.value) for e in (e1, e2, e3))


def test_hub_loaders_are_real_and_fail_in_one_line(registry, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for key in KEYS:
        d = registry.dataset(key)
        with pytest.raises(DataUnavailable) as err:
            data.load_items(d, 2, offline=False)
        assert f"{d.hub_path}" in str(err.value) and f"@{d.revision}:" in str(err.value) and "\n" not in str(err.value)
    assert registry.dataset("aime").revision != "main"  # a public commit; mathqa: none found, 'main' with a note
    # the partial slice is said out loud: asking for more than its 30 problems is not the split
    partial = plan_source(registry.dataset("aime")).partial(registry.dataset("aime"), 100)
    assert partial and "not the train split's 933" in partial


def test_slices_stay_small():
    """Their bytes against a rebuild (or, in a plain clone, the README's digests): tests/test_data.py,
    which builds every slice scripts/make_slices.py declares, these included."""
    assert Path(data.SLICES_DIR / "aime.train.jsonl").stat().st_size < 200_000
