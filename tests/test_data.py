"""The data layer on the real shipped slices: loading, prompts, MC requests, slice checksums."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import datasets
import pytest
from tests.conftest import HAVE_SHARED_DATA, SHARED_DATA, slices_against_their_readme

from specbench import data as D
from specbench.data import DataUnavailable, build_prompt, choice_requests, load_items
from specbench.data import adapters as adapters_pkg
from specbench.data import loading as data_loading
from specbench.registry import load_file
from specbench.registry.schema import DatasetConfig, PromptConfig, Status, TaskType
from specbench.types import Item

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf" / "datasets"

SEED_KEYS = {
    "humaneval", "mbpp", "bigcodebench", "codecontests", "apps", "repobench", "gsm8k", "math",
    "minerva_math", "aime", "mathqa", "hellaswag", "winogrande", "arc_challenge", "mmlu",
    "truthfulqa", "mt_bench", "ifeval", "bioasq", "pubmedqa", "mediqa", "genomics_ner",
    "protein_function", "chemprot", "genomics_benchmark", "protein_sequences",
    "biomedical_extended", "docvqa", "chartqa", "multimodal_sample", "scienceqa", "vqa_v2",
    "scientific_papers", "scierc", "pubmed_abstracts", "toxicity_detection", "safety_eval",
    "efficiency_bench", "mobile_benchmark", "data_science_tasks",
    "scierc_ner", "ncbi_disease", "bc5cdr",  # SciERC's NER half and two more NER corpora (issue #14)
}
MUST_BE_READY = {"gsm8k", "math", "humaneval", "mbpp", "mmlu", "arc_challenge", "pubmedqa",
                 "truthfulqa", "winogrande"}


def _all() -> dict[str, DatasetConfig]:
    return {p.stem: load_file(p, DatasetConfig) for p in sorted(CONF.glob("*.yaml"))}


ALL = _all()
OFFLINE_READY = sorted(k for k, d in ALL.items() if d.status == Status.ready and d.offline_slice)


def ds(key: str) -> DatasetConfig:
    return ALL[key]


def with_prompt(d: DatasetConfig, **changes) -> DatasetConfig:
    return dataclasses.replace(d, prompt=dataclasses.replace(d.prompt, **changes))


# -- the registry files --------------------------------------------------------------------
def test_every_seed_dataset_has_a_yaml():
    assert set(ALL) == SEED_KEYS


def test_ready_and_planned_are_consistent():
    ready = {k for k, d in ALL.items() if d.status == Status.ready}
    assert MUST_BE_READY <= ready
    for k, d in ALL.items():
        if d.status == Status.ready:
            assert (d.adapter or k) in D.ADAPTERS, k
            assert d.prompt is not None and (d.hub_path or d.offline_slice or d.local_env), k  # data from somewhere
        else:
            assert d.planned_reason.strip(), k
        if d.offline_slice:
            assert (D.SLICES_DIR / d.offline_slice).is_file(), d.offline_slice
    assert "enhanced_math_fixed" in " ".join(ALL["math"].tags + [ALL["math"].notes])
    assert "math_competition" in " ".join(ALL["math"].tags + [ALL["math"].notes])


# -- the adapter registry --------------------------------------------------------------------
def test_every_adapter_module_registers_itself():
    import pkgutil

    modules = sorted(m.name for m in pkgutil.iter_modules(adapters_pkg.__path__))
    assert D.adapter_names() == sorted(D.ADAPTERS) == modules  # one module per adapter, named alike
    assert D.ADAPTERS["mmlu"].group == "subject" and D.ADAPTERS["winogrande"].partial
    assert D.ADAPTERS["math"].hub_configs == tuple(D.MATH_TYPES)


def test_adapter_decorator_registers_and_refuses_a_second_claim(monkeypatch):
    monkeypatch.setattr(adapters_pkg, "ADAPTERS", dict(D.ADAPTERS))  # leave the real registry alone

    @D.adapter("toy", group="g", hub_configs=["a", "b"])
    def toy(rec, i, split):
        return Item(id=f"{split}/{i}", doc=dict(rec), reference="")

    got = adapters_pkg.ADAPTERS["toy"]
    assert got.normalize is toy and got.group == "g" and got.hub_configs == ("a", "b") and not got.partial
    assert "toy" in adapters_pkg.adapter_names()
    with pytest.raises(ValueError, match="registered twice"):
        D.adapter("gsm8k")(toy)
    d = dataclasses.replace(ds("gsm8k"), adapter="nope")
    with pytest.raises(DataUnavailable, match="no adapter 'nope'.*known adapters: .*arc_challenge"):
        D.get_adapter(d)


def test_the_data_layer_imports_nothing_heavy():
    import subprocess

    code = ("import sys, specbench.data; bad = [m for m in ('torch', 'mlflow', 'datasets', 'specbench.scoring', "
            "'specbench.engines', 'specbench.weights', 'specbench.tracking') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- loading ---------------------------------------------------------------------------------
@pytest.mark.parametrize("key", OFFLINE_READY)
def test_ready_dataset_loads_offline(key):
    d = ds(key)
    got = load_items(d, samples=5, offline=True)
    assert got.offline and got.key == key
    assert len(got.items) == 5 and got.hf_dataset.num_rows == 5
    assert got.available > 5
    assert got.source.endswith(d.offline_slice)
    assert got.digest and got.digest == got.hf_dataset._fingerprint
    ids = [it.id for it in got.items]
    assert len(set(ids)) == 5 and all(isinstance(i, str) and i for i in ids)
    for it in got.items:
        assert isinstance(it.doc, dict) and it.doc
        assert isinstance(it.reference, str)
        images = d.task_type == TaskType.multimodal  # image items are chat messages: the image parts first
        prompt = build_prompt(d, it, got.fewshot, chat=images)
        if images:
            assert it.images and prompt[-1]["content"][0]["type"] == "image"
            prompt = prompt[-1]["content"][-1]["text"]
        assert isinstance(prompt, str)
        if d.task_type in (TaskType.multiple_choice, TaskType.yes_no_maybe):
            assert it.choices and all(isinstance(c, str) and c for c in it.choices)
            assert it.gold is not None and 0 <= it.gold < len(it.choices)
            reqs = choice_requests(d, it, prompt)
            assert len(reqs) == len(it.choices)
            assert all(cont.startswith(d.prompt.target_delimiter) and cont.strip() for _, cont in reqs)
        elif d.task_type == TaskType.judged:  # a judge grades: only some questions carry a reference answer
            assert prompt.strip() and len(it.doc["turns"]) == 2
        else:
            assert prompt.strip() and it.reference.strip()
        if d.task_type == TaskType.code_exec:
            assert it.test and ("assert" in it.test or "check(" in it.test)
    if d.prompt.fewshot:
        assert got.fewshot, "a few-shot dataset must come with its few-shot pool"


def test_online_only_dataset_fails_offline_in_one_line():
    with pytest.raises(DataUnavailable) as exc:
        load_items(ds("hellaswag"), samples=5, offline=True)
    msg = str(exc.value)
    assert "\n" not in msg
    assert "hellaswag" in msg and "no offline slice" in msg and "Rowan/hellaswag" in msg


def test_planned_dataset_raises_one_line():
    for key in ("protein_function", "safety_eval", "multimodal_sample"):
        with pytest.raises(DataUnavailable) as exc:
            load_items(ds(key), samples=5, offline=True)
        msg = str(exc.value)
        assert "\n" not in msg and key in msg and "planned" in msg


def test_env_offline_falls_back_to_slice_with_a_note(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    got = load_items(ds("arc_challenge"), samples=3)  # offline=None: hub preferred
    assert got.offline and len(got.items) == 3
    assert any("HF_HUB_OFFLINE" in n for n in got.notes)
    with pytest.raises(DataUnavailable, match="offline=False"):
        load_items(ds("arc_challenge"), samples=3, offline=False)


def test_samples_is_a_deterministic_prefix():
    d = ds("gsm8k")
    a = load_items(d, samples=10, offline=True)
    b = load_items(d, samples=10, offline=True)
    full = load_items(d, offline=True)
    assert [i.id for i in a.items] == [i.id for i in b.items] == [i.id for i in full.items[:10]]
    assert [i.doc for i in a.items] == [i.doc for i in full.items[:10]]
    assert a.digest == b.digest != full.digest
    assert len(full.items) == full.available == 200
    # few-shot draws advance in document order: the first 10 prompts are the full split's first 10
    assert D.build_prompts(d, a.items, a.fewshot) == D.build_prompts(d, full.items, full.fewshot)[:10]
    more = load_items(d, samples=10_000, offline=True)
    assert len(more.items) == 200 and any("10000" in n for n in more.notes)
    with pytest.raises(ValueError):
        load_items(d, samples=0, offline=True)


# -- prompts -----------------------------------------------------------------------------------
def test_gsm8k_five_shot_prompt():
    d = ds("gsm8k")
    got = load_items(d, samples=20, offline=True)
    prompts = D.build_prompts(d, got.items, got.fewshot)
    for it, prompt in zip(got.items, prompts, strict=True):
        assert prompt.count("Question:") == 6  # 5 examples + the item
        assert prompt.count("####") == 5  # only the examples' answers
        assert prompt.endswith(f"Question: {it.doc['question']}\nAnswer:")
        assert it.doc["answer"] not in prompt
    assert D.build_prompts(d, got.items, got.fewshot) == prompts  # deterministic
    # lm-eval's sampler: one generator advanced per document, so the draws differ between items;
    # the first item's is what a fresh generator gives (build_prompt / select_fewshot alone)
    draws = D.fewshot_draws(d, got.items, got.fewshot)
    assert len({tuple(ex.id for ex in dr) for dr in draws}) > 10
    examples = D.select_fewshot(d, got.items[0], got.fewshot)
    assert examples == draws[0] and prompts[0] == build_prompt(d, got.items[0], got.fewshot)
    assert len(examples) == 5 and all(ex.id.startswith("train/") for ex in examples)
    fixed = with_prompt(d, fewshot_draw="fixed")
    assert D.build_prompts(fixed, got.items, got.fewshot)[5] == build_prompt(d, got.items[5], got.fewshot)


def test_chat_prompts_are_lm_eval_turns():
    """With a chat template: a system message for the description, a user/assistant pair per
    few-shot example, then the item's question; singleturn puts all but the system in one message."""
    d = ds("mmlu")
    got = load_items(d, samples=1, offline=True)
    (msgs,) = D.build_prompts(d, got.items, got.fewshot, chat=True)
    assert [m["role"] for m in msgs] == ["system"] + ["user", "assistant"] * 5 + ["user"]
    assert msgs[0]["content"] == MMLU_ABSTRACT_ALGEBRA_0.split("\n\n")[0] + "\n\n"
    assert [m["content"] for m in msgs[2:11:2]] == ["B", "B", "C", "A", "A"]
    assert msgs[-1]["content"] == MMLU_ABSTRACT_ALGEBRA_0.split("\n\n")[-1]
    # multiple choice under a chat template: the same messages, choices without the delimiter
    assert choice_requests(d, got.items[0], msgs) == [(msgs, c) for c in "ABCD"]
    single = with_prompt(d, chat_layout="singleturn")
    (one,) = D.build_prompts(single, got.items, got.fewshot, chat=True)
    assert one == [msgs[0], {"role": "user", "content": MMLU_ABSTRACT_ALGEBRA_0.split("\n\n", 1)[1]}]
    plain = with_prompt(d, chat_layout="none")
    assert D.build_prompts(plain, got.items, got.fewshot, chat=True) == [MMLU_ABSTRACT_ALGEBRA_0]
    assert json.loads(D.prompt_text(msgs)) == msgs and D.prompt_text("x") == "x"


@pytest.mark.parametrize("field,value", [("fewshot_draw", "shuffled"), ("chat_layout", "single")])
def test_prompt_options_are_checked(field, value):
    from specbench.registry import RegistryError, load_object

    with pytest.raises((RegistryError, ValueError), match=field):
        load_object({"template": "{{x}}", field: value}, PromptConfig, Path("prompt.yaml"))


def test_fewshot_never_includes_the_item_itself():
    # few-shot drawn from the evaluation split itself: the item must be excluded (lm-eval: k+1)
    base = ds("gsm8k")
    d = dataclasses.replace(base, prompt=dataclasses.replace(base.prompt, fewshot_split="test"))
    got = load_items(d, offline=True)
    pool = got.fewshot
    assert {i.id for i in pool} == {i.id for i in got.items}
    drawn_once = D.select_fewshot(d, pool[0], pool)
    victims = [ex for ex in pool if ex.id in {e.id for e in drawn_once}]
    for it in victims + got.items[:5]:
        chosen = D.select_fewshot(d, it, pool)
        assert len(chosen) == 5 and it.id not in {e.id for e in chosen}
        assert it.doc["answer"] not in build_prompt(d, it, pool)
    for it, chosen, prompt in zip(got.items, D.fewshot_draws(d, got.items, pool), D.build_prompts(d, got.items, pool),
                                  strict=True):
        assert len(chosen) == 5 and it.id not in {e.id for e in chosen}
        assert it.doc["answer"] not in prompt


MMLU_ABSTRACT_ALGEBRA_0 = (
    "The following are multiple choice questions (with answers) about abstract algebra.\n\n"
    "Find all c in Z_3 such that Z_3[x]/(x^2 + c) is a field.\n"
    "A. 0\nB. 1\nC. 2\nD. 3\nAnswer: B\n\n"
    "Statement 1 | If aH is an element of a factor group, then |aH| divides |a|. Statement 2 | "
    "If H and K are subgroups of G then HK is a subgroup of G.\n"
    "A. True, True\nB. False, False\nC. True, False\nD. False, True\nAnswer: B\n\n"
    "Statement 1 | Every element of a group generates a cyclic subgroup of the group. "
    "Statement 2 | The symmetric group S_10 has 10 elements.\n"
    "A. True, True\nB. False, False\nC. True, False\nD. False, True\nAnswer: C\n\n"
    "Statement 1| Every function from a finite set onto itself must be one to one. "
    "Statement 2 | Every subgroup of an abelian group is abelian.\n"
    "A. True, True\nB. False, False\nC. True, False\nD. False, True\nAnswer: A\n\n"
    "Find the characteristic of the ring 2Z.\n"
    "A. 0\nB. 3\nC. 12\nD. 30\nAnswer: A\n\n"
    "Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.\n"
    "A. 0\nB. 4\nC. 2\nD. 6\nAnswer:"
)


def test_mmlu_prompt_matches_lm_eval_exactly():
    d = ds("mmlu")
    got = load_items(d, samples=1, offline=True)
    it = got.items[0]
    assert it.id == "abstract_algebra/test/0"
    assert build_prompt(d, it, got.fewshot) == MMLU_ABSTRACT_ALGEBRA_0
    reqs = choice_requests(d, it, MMLU_ABSTRACT_ALGEBRA_0)
    assert reqs == [(MMLU_ABSTRACT_ALGEBRA_0, f" {c}") for c in "ABCD"]
    assert it.gold == 1 and it.reference == "B"
    zero = with_prompt(d, fewshot=0)
    assert build_prompt(zero, it, got.fewshot) == (
        MMLU_ABSTRACT_ALGEBRA_0.split("\n\n")[0] + "\n\n" + MMLU_ABSTRACT_ALGEBRA_0.split("\n\n")[-1])


def test_mmlu_fewshot_stays_within_the_subject():
    d = ds("mmlu")
    got = load_items(d, offline=True)
    it = next(i for i in got.items if i.doc["subject"] == "virology")
    examples = D.select_fewshot(d, it, got.fewshot)
    assert [e.doc["subject"] for e in examples] == ["virology"] * 5
    assert [e.id for e in examples] == [f"virology/dev/{i}" for i in range(5)]  # first_n


def test_mbpp_uses_lm_eval_fixed_examples():
    d = ds("mbpp")
    got = load_items(d, samples=2, offline=True)
    assert [e.id for e in got.fewshot] == ["2", "3", "4"]
    it = got.items[0]
    assert it.id == "11"
    prompt = build_prompt(d, it, got.fewshot)
    assert prompt.count("[BEGIN]\n") == 4 and prompt.count("[DONE]") == 3
    assert prompt.endswith(f"Your code should pass these tests:\n\n{it.doc['test_list'][0]}\n"
                           f"{it.doc['test_list'][1]}\n{it.doc['test_list'][2]}\n[BEGIN]\n")
    assert all(t in it.test for t in it.doc["test_list"])


def test_humaneval_item_carries_its_tests():
    d = ds("humaneval")
    got = load_items(d, offline=True)
    assert len(got.items) == 164
    it = got.items[0]
    assert it.id == "HumanEval/0" and it.entry_point == "has_close_elements"
    assert "def check(candidate)" in it.test
    assert build_prompt(d, it, got.fewshot) == it.doc["prompt"]


def test_winogrande_partial_evaluation():
    d = ds("winogrande")
    got = load_items(d, samples=2, offline=True)
    it = got.items[0]
    prompt = build_prompt(d, it, got.fewshot)
    assert prompt == ""  # zero-shot: the option contexts are the whole context
    reqs = choice_requests(d, it, prompt)
    assert reqs == [("Sarah was a much better surgeon than Maria so Sarah", " always got the easier cases."),
                    ("Sarah was a much better surgeon than Maria so Maria", " always got the easier cases.")]
    assert it.gold == 1
    # a few-shot example is its gold context + " " + continuation, then the item's contexts
    two = with_prompt(d, fewshot=1, fewshot_split="validation")
    pool = load_items(two, offline=True).fewshot
    ctx = build_prompt(two, it, pool)
    (ex,) = D.select_fewshot(two, it, pool)
    assert ex.id != it.id
    assert ctx == ex.choices[ex.gold] + " " + ex.doc["continuation"] + "\n\n"
    assert all(c.startswith(ctx) for c, _ in choice_requests(two, it, ctx))


def test_pubmedqa_prompt_format():
    d = ds("pubmedqa")
    it = load_items(d, samples=1, offline=True).items[0]
    prompt = build_prompt(d, it, [])
    assert prompt == ("Abstract: " + "\n".join(it.doc["CONTEXTS"]) + "\nQuestion: "
                      + it.doc["QUESTION"] + "\nAnswer:")
    assert [c for _, c in choice_requests(d, it, prompt)] == [" yes", " no", " maybe"]
    assert it.id == "12377809" and it.reference == "yes" and it.gold == 0


def test_pubmedqa_adapter_reads_the_script_free_copy_too():
    # qiaojin/PubMedQA pqa_labeled: lower-case fields, contexts nested under "context"
    rec = _slice_records("pubmedqa.test.jsonl")[0]
    qiaojin = {"pubid": int(rec["pubid"]), "question": rec["QUESTION"], "long_answer": rec["LONG_ANSWER"],
               "final_decision": rec["final_decision"],
               "context": {"contexts": rec["CONTEXTS"], "labels": rec["LABELS"], "meshes": rec["MESHES"]}}
    a, b = D.ADAPTERS["pubmedqa"].normalize(rec, 0, "test"), D.ADAPTERS["pubmedqa"].normalize(qiaojin, 0, "test")
    d = ds("pubmedqa")
    assert a.id == b.id and a.gold == b.gold and build_prompt(d, a, []) == build_prompt(d, b, [])


def test_missing_template_field_fails_clearly():
    d = with_prompt(ds("gsm8k"), template="Q: {{ questoin }}", fewshot=0)
    it = load_items(d, samples=1, offline=True).items[0]
    with pytest.raises(ValueError, match="questoin"):
        build_prompt(d, it, [])


# -- the hub path goes through the same adapters -----------------------------------------------
def _slice_records(name: str) -> list[dict]:
    return [json.loads(x) for x in (D.SLICES_DIR / name).read_text(encoding="utf-8").splitlines()]


def _fake_hub(monkeypatch, tables: dict):
    calls = []
    real_load_dataset = datasets.load_dataset

    def fake_load_dataset(path, name=None, split=None, revision=None, **kw):
        if path == "json":  # the offline slices
            return real_load_dataset(path, name, split=split, revision=revision, **kw)
        calls.append((path, name, split, revision))
        return datasets.Dataset.from_list(tables[(name, split)])

    monkeypatch.setattr(data_loading, "_hub_unreachable", lambda: None)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    return calls


def test_hub_and_slice_give_the_same_mmlu_prompts(monkeypatch):
    def hub_shape(r):
        return {"question": r["question"], "subject": r["subject"],
                "choices": [r[c] for c in "ABCD"], "answer": "ABCD".index(r["answer"])}

    test = [hub_shape(r) for r in _slice_records("mmlu.test.jsonl")]
    dev = [hub_shape(r) for r in _slice_records("mmlu.dev.jsonl")]
    d = ds("mmlu")
    offline = load_items(d, samples=12, offline=True)
    calls = _fake_hub(monkeypatch, {("all", "test"): test, ("all", "dev"): dev})
    online = load_items(d, samples=12)
    assert not online.offline and online.source == f"cais/mmlu/all@{d.revision}:test"
    assert calls == [("cais/mmlu", "all", "test", d.revision), ("cais/mmlu", "all", "dev", d.revision)]
    for a, b in zip(offline.items, online.items, strict=True):
        assert a.id == b.id and a.gold == b.gold
        assert build_prompt(d, a, offline.fewshot) == build_prompt(d, b, online.fewshot)


def test_hub_and_slice_agree_for_other_shapes(monkeypatch):
    arc_off = _slice_records("arc_challenge.test.jsonl")[:3]
    arc_hub = [{"id": f"q{i}", "question": r["query"].removeprefix("Question: "),
                "choices": {"text": r["choices"], "label": list("ABCD")}, "answerKey": "ABCD"[r["gold"]]}
               for i, r in enumerate(arc_off)]
    wino_hub = [{"sentence": "Sarah was a much better surgeon than Maria so _ always got the easier cases.",
                 "option1": "Sarah", "option2": "Maria", "answer": "2"}]
    math_off = _slice_records("math.test.jsonl")[:2]
    math_hub = [{"problem": r["context"], "solution": r["chain_of_thought"], "level": "Level 3",
                 "type": D.MATH_TYPES[r["category"]]} for r in math_off]
    tqa_off = _slice_records("truthfulqa.validation.jsonl")[:1]
    calls = _fake_hub(monkeypatch, {
        ("ARC-Challenge", "test"): arc_hub, ("winogrande_xl", "validation"): wino_hub,
        **{(c, "test"): (math_hub if c == "algebra" else []) for c in D.MATH_TYPES},
        ("multiple_choice", "validation"): [{"question": tqa_off[0]["question"], "mc1_targets": {
            "choices": ["right", "wrong"], "labels": [1, 0]}}],
        (None, "validation"): [{  # HellaSwag's first validation item, in the hub's shape
            "ind": 24, "activity_label": "Roof shingle removal", "ctx_a": "A man is sitting on a roof.",
            "ctx_b": "he", "ctx": "A man is sitting on a roof. he", "source_id": "activitynet~v_-JhWjGDPHMY",
            "split": "val", "split_type": "indomain", "label": "3",
            "endings": ["is using wrap to wrap a pair of skis.", "is ripping level tiles off.",
                        "is holding a rubik's cube.", "starts pulling up roofing on a roof."]}],
    })
    arc = ds("arc_challenge")
    on, off = load_items(arc, samples=3), load_items(arc, samples=3, offline=True)
    for a, b in zip(on.items, off.items, strict=True):
        pa, pb = build_prompt(arc, a, []), build_prompt(arc, b, [])
        assert pa == pb and choice_requests(arc, a, pa) == choice_requests(arc, b, pb)
    wino = ds("winogrande")
    a, b = load_items(wino, samples=1).items[0], load_items(wino, samples=1, offline=True).items[0]
    assert choice_requests(wino, a, "") == choice_requests(wino, b, "")
    m = load_items(ds("math"))
    assert [c[1] for c in calls if c[0] == "EleutherAI/hendrycks_math"] == list(D.MATH_TYPES)
    assert [i.reference for i in m.items] == [r["answer"] for r in math_off]
    t = load_items(ds("truthfulqa")).items[0]
    assert t.choices == ["right", "wrong"] and t.gold == 0
    hs = ds("hellaswag")
    h = load_items(hs).items[0]  # lm-eval's preprocess: label, context, capitalized ctx_b
    assert build_prompt(hs, h, []) == "Roof shingle removal: A man is sitting on a roof. He"
    assert choice_requests(hs, h, "x")[3] == ("x", " starts pulling up roofing on a roof.")
    assert h.gold == 3 and h.id == "validation/24"


# -- datasets whose data shipped before their scorers (ifeval, now ready; mt_bench) ---------------
@pytest.mark.parametrize("key", ["ifeval", "mt_bench"])
def test_shipped_planned_slices_normalize(key):
    d = ds(key)
    prompt = d.prompt or PromptConfig(template="{{ turns[0] }}")
    ready = dataclasses.replace(d, status=Status.ready, prompt=prompt)
    got = load_items(ready, offline=True)
    assert len(got.items) == d.samples
    assert build_prompt(ready, got.items[0], []).strip()


# -- the slices are what the script builds ----------------------------------------------------
def test_slices_match_a_rebuild(tmp_path, monkeypatch):
    """A rebuild from ../shared/data where it is; in a clone without it, the checksums, row counts and
    provenance the slices' README records (the same files either way)."""
    spec = importlib.util.spec_from_file_location("make_slices", REPO / "scripts" / "make_slices.py")
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "make_slices", mod)  # its dataclasses look themselves up
    spec.loader.exec_module(mod)
    shipped = {p.name for p in D.SLICES_DIR.iterdir() if p.is_file()}
    assert shipped == {s.file for s in mod.SPECS} | {"README.md"}
    assert slices_against_their_readme(mod) == []
    if HAVE_SHARED_DATA:
        digests = mod.build(SHARED_DATA, tmp_path)
        assert shipped == set(digests)
        for name, digest in digests.items():
            assert mod.sha256_file(D.SLICES_DIR / name) == digest, f"{name} differs from a rebuild"
    assert sum((D.SLICES_DIR / n).stat().st_size for n in shipped) < 3_600_000
