"""specbench's prompts are lm-evaluation-harness 0.4.13's, byte for byte.

Each test builds lm-eval's own task object (``ConfigurableTask`` from the task YAML shipped in
``lm_eval/tasks``) over files written here from specbench's shipped slices, converted to the
hub record shape the task expects, and compares what lm-eval would send to the model with
what specbench sends: generation contexts (``fewshot_context``) and multiple-choice requests
(``construct_requests``), without a chat template and with SmolLM2's, few-shot examples drawn
per document with the same seed and in document order.  lm-eval's chat template callable is
its own ``HFLM.apply_chat_template``; specbench's side goes through the engines' ``chat_text``.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from specbench import data
from specbench.data.adapters import get_adapter
from specbench.engines.base import chat_text
from specbench.registry import load_registry

lm_eval = pytest.importorskip("lm_eval", reason="lm_eval not installed (pip install lm_eval==0.4.13)")
from lm_eval.api.task import ConfigurableTask  # noqa: E402

TASKS = Path(lm_eval.__file__).parent / "tasks"
SLICES = data.SLICES_DIR
CODE_TASKS = ("mbpp", "humaneval")
SEED = 1234  # lm-eval's default --fewshot_random_seed, and every dataset's prompt.fewshot_seed


@pytest.fixture(scope="module")
def registry():
    return load_registry()


@pytest.fixture(scope="module")
def tokenizer(registry):
    """SmolLM2's tokenizer (the embedded default model; converted once into the cache)."""
    from transformers import AutoTokenizer

    from specbench.weights import ModelUnavailable, resolve

    try:
        path = resolve(registry.model("smollm2_135m")).path
    except ModelUnavailable as exc:  # pragma: no cover - the package ships the GGUF
        pytest.skip(f"no SmolLM2 weights here: {exc}")
    return AutoTokenizer.from_pretrained(path)


# ---- lm-eval's side ------------------------------------------------------------------------------

def _loader(yaml_path: Path) -> type[yaml.SafeLoader]:
    """A YAML loader resolving ``!function module.name`` from the task's directory, as lm-eval's;
    the code tasks' utils (which load the code_eval metric from the hub on import) give only
    mbpp's ``list_fewshot_samples``, taken from the source without running the module."""

    class Loader(yaml.SafeLoader):
        pass

    def function(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        module, name = loader.construct_scalar(node).rsplit(".", 1)  # type: ignore[arg-type]
        source = (yaml_path.parent / f"{module}.py").read_text()
        if yaml_path.parent.name in CODE_TASKS:
            if name != "list_fewshot_samples":
                return None  # metrics: not needed to build prompts
            tree = ast.parse(source)
            fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
            scope: dict[str, Any] = {}
            exec(compile(ast.Module([fn], []), str(yaml_path.parent / f"{module}.py"), "exec"), scope)
            return scope[name]
        import importlib.util

        spec = importlib.util.spec_from_file_location(f"_lm_eval_{yaml_path.parent.name}_{module}",
                                                      yaml_path.parent / f"{module}.py")
        mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        spec.loader.exec_module(mod)  # type: ignore[union-attr]
        return getattr(mod, name)

    Loader.add_constructor("!function", function)
    return Loader


def _task_config(rel: str) -> dict[str, Any]:
    path = TASKS / rel
    cfg = yaml.load(path.read_text(), Loader=_loader(path))  # noqa: S506 - our SafeLoader subclass
    if "include" in cfg:
        base = _task_config(str(Path(rel).parent / cfg.pop("include")))
        cfg = {**base, **cfg}
    return cfg


def _write(tmp: Path, name: str, rows: list[dict]) -> str:
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / f"{name}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def lm_task(rel: str, tmp: Path, splits: dict[str, list[dict]], **overrides: Any) -> ConfigurableTask:
    """lm-eval's task for ``rel`` (a YAML under lm_eval/tasks) over these records."""
    cfg = _task_config(rel)
    if Path(rel).parent.name in CODE_TASKS:  # metrics and filters: not needed to build prompts
        cfg.pop("metric_list", None)
        cfg.pop("filter_list", None)
    files = {split: _write(tmp, f"{Path(rel).stem}.{split}", rows) for split, rows in splits.items()}
    cfg.update(dataset_path="json", dataset_name=None,
               dataset_kwargs={"data_files": files, "cache_dir": str(tmp / "hf_cache")}, **overrides)
    task = ConfigurableTask(config=cfg)
    task.set_fewshot_seed(SEED)
    return task


def lm_chat(tokenizer: Any) -> Any:
    from lm_eval.models.huggingface import HFLM

    fake = SimpleNamespace(tokenizer=tokenizer, chat_template_args={})
    return lambda history, add_generation_prompt=True: HFLM.apply_chat_template(fake, history, add_generation_prompt)


def lm_contexts(task: ConfigurableTask, docs: list[dict], tokenizer: Any | None, multiturn: bool = True) -> list[Any]:
    """lm-eval's contexts of these documents in order, from a freshly seeded sampler."""
    task.set_fewshot_seed(SEED)
    chat = tokenizer is not None
    shots = task.config.num_fewshot or 0
    return [task.fewshot_context(doc=doc, num_fewshot=shots, apply_chat_template=chat,
                                 fewshot_as_multiturn=chat and multiturn,
                                 chat_template=lm_chat(tokenizer) if chat else None,
                                 gen_prefix=task.doc_to_prefix(doc)) for doc in docs]


def lm_requests(task: ConfigurableTask, docs: list[dict], tokenizer: Any | None) -> list[list[tuple[str, str]]]:
    """lm-eval's loglikelihood (context, continuation) pairs per document."""
    out = []
    for doc, ctx in zip(docs, lm_contexts(task, docs, tokenizer), strict=True):
        insts = task.construct_requests(doc=doc, ctx=ctx, metadata=("t", 0, 1),
                                        apply_chat_template=tokenizer is not None)
        out.append([tuple(i.arguments) for i in insts])
    return out


# ---- specbench's side ----------------------------------------------------------------------------

def ours(dataset, items, fewshot, tokenizer: Any | None) -> list[str | list]:
    prompts = data.build_prompts(dataset, items, fewshot, chat=tokenizer is not None)
    return [p if isinstance(p, str) else chat_text(tokenizer, p) for p in prompts]


def our_requests(dataset, items, fewshot, tokenizer: Any | None) -> list[list[tuple[str, str]]]:
    prompts = data.build_prompts(dataset, items, fewshot, chat=tokenizer is not None)
    return [[(c if isinstance(c, str) else chat_text(tokenizer, c), x)
             for c, x in data.choice_requests(dataset, it, p)] for it, p in zip(items, prompts, strict=True)]


def _rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (SLICES / name).read_text().splitlines() if line.strip()]


def _offline(dataset, n: int | None):
    return data.load_items(dataset, n, offline=True)


def _same(theirs: list, mine: list) -> None:
    assert len(theirs) == len(mine)
    for i, (a, b) in enumerate(zip(theirs, mine, strict=True)):
        assert a == b, f"document {i} differs:\nlm-eval:   {a!r}\nspecbench: {b!r}"


CHAT = [pytest.param(False, id="plain"), pytest.param(True, id="chat")]


@pytest.fixture
def tok(request, tokenizer):
    return tokenizer if request.param else None


# ---- the datasets --------------------------------------------------------------------------------

@pytest.mark.parametrize("tok", CHAT, indirect=True)
def test_gsm8k(registry, tmp_path, tok):
    """5-shot from the train split, drawn per document: 32 documents, 32 different draws."""
    d = registry.dataset("gsm8k")
    loaded = _offline(d, 32)
    task = lm_task("gsm8k/gsm8k.yaml", tmp_path, {"test": _rows("gsm8k.test.jsonl")[:32],
                                                  "train": _rows("gsm8k.train.jsonl")})
    _same(lm_contexts(task, list(task.test_docs()), tok), ours(d, loaded.items, loaded.fewshot, tok))
    draws = data.fewshot_draws(d, loaded.items, loaded.fewshot)
    assert len({tuple(ex.id for ex in dr) for dr in draws}) > 16  # not the first document's draw for all


def test_gsm8k_singleturn_is_lm_evals_without_fewshot_as_multiturn(registry, tmp_path, tokenizer):
    d = registry.dataset("gsm8k")
    d = dataclasses.replace(d, prompt=dataclasses.replace(d.prompt, chat_layout="singleturn"))
    loaded = _offline(d, 8)
    task = lm_task("gsm8k/gsm8k.yaml", tmp_path, {"test": _rows("gsm8k.test.jsonl")[:8],
                                                  "train": _rows("gsm8k.train.jsonl")})
    _same(lm_contexts(task, list(task.test_docs()), tokenizer, multiturn=False),
          ours(d, loaded.items, loaded.fewshot, tokenizer))


def _mmlu_hub(row: dict) -> dict:
    return {"question": row["question"], "subject": row["subject"], "choices": [row[c] for c in "ABCD"],
            "answer": "ABCD".index(row["answer"].strip())}


@pytest.mark.parametrize("tok", CHAT, indirect=True)
@pytest.mark.parametrize("subject", ["abstract_algebra", "high_school_biology", "world_religions"])
def test_mmlu(registry, tmp_path, tok, subject):
    """Per-subject description (a system message under a chat template), first 5 dev questions."""
    d = registry.dataset("mmlu")
    loaded = _offline(d, None)
    items = [it for it in loaded.items if it.doc["subject"] == subject]
    test = [_mmlu_hub(r) for r in _rows("mmlu.test.jsonl") if r["subject"] == subject]
    dev = [_mmlu_hub(r) for r in _rows("mmlu.dev.jsonl") if r["subject"] == subject]
    task = lm_task(f"mmlu/default/mmlu_{subject}.yaml", tmp_path, {"test": test, "dev": dev}, num_fewshot=5)
    _same(lm_requests(task, list(task.test_docs()), tok), our_requests(d, items, loaded.fewshot, tok))


def _arc_hub(i: int, row: dict) -> dict:
    labels = list("ABCDE"[: len(row["choices"])])
    q = row["query"].removeprefix("Question: ").removesuffix("\nAnswer:")
    return {"id": f"test/{i}", "question": q, "choices": {"text": row["choices"], "label": labels},
            "answerKey": labels[int(row["gold"])]}


@pytest.mark.parametrize("tok", CHAT, indirect=True)
def test_arc_challenge(registry, tmp_path, tok):
    d = registry.dataset("arc_challenge")
    loaded = _offline(d, 24)
    rows = [_arc_hub(i, r) for i, r in enumerate(_rows("arc_challenge.test.jsonl")[:24])]
    task = lm_task("arc/arc_challenge.yaml", tmp_path, {"test": rows, "train": rows, "validation": rows})
    _same(lm_requests(task, list(task.test_docs()), tok), our_requests(d, loaded.items, loaded.fewshot, tok))


HELLASWAG = [  # Rowan/hellaswag validation records (no slice ships: the dataset is online only)
    {"ind": 24, "activity_label": "Roof shingle removal", "ctx_a": "A man is sitting on a roof.", "ctx_b": "he",
     "ctx": "A man is sitting on a roof. he", "split": "val", "split_type": "indomain",
     "source_id": "activitynet~v_-JhWjGDPHMY",
     "endings": ["is using wrap to wrap a pair of skis.", "is ripping level tiles off.",
                 "is holding a rubik's cube.", "starts pulling up roofing on a roof."], "label": "3"},
    {"ind": 92, "activity_label": "Clean and jerk",
     "ctx_a": "A lady walks to a barbell. She bends down and grabs the pole.",
     "ctx_b": "the lady", "ctx": "A lady walks to a barbell. She bends down and grabs the pole. the lady",
     "split": "val", "split_type": "indomain", "source_id": "activitynet~v_-lJS58hyo1c",
     "endings": ["swings and lands in her arms.", "pulls the barbell forward.", "pulls a rope attached to the barbell.",
                 "stands and lifts the weight over her head."], "label": "3"},
    {"ind": 106, "activity_label": "Canoeing", "ctx_a": "Two women in a child are shown in a canoe while a man pulls "
     "the canoe while standing in the water, with other individuals visible in the background.",
     "ctx_b": "the child and a different man", "ctx": "", "split": "val", "split_type": "indomain",
     "source_id": "activitynet~v_-xQvJmC2jhk",
     "endings": ["are then shown paddling down a river in a boat while a woman talks.",
                 "are driving the canoe, they go down the river flowing side to side.",
                 "sit in a canoe while the man paddles.", "walking go down the rapids, while the man in his helicopter "
                 "almost falls and goes out of canoehood."], "label": "2"},
    {"ind": 4, "activity_label": "Home and Garden", "ctx_a": "[header] How to clean a roof [title] Remove debris.",
     "ctx_b": "[step] Use a leaf blower", "ctx": "", "split": "val", "split_type": "zeroshot",
     "source_id": "wikihow~1",
     "endings": ["[substeps] Or a broom.", "to dry it.", "and then wax it [title] Done.", "on the lawn."],
     "label": "0"},
]


@pytest.mark.parametrize("tok", CHAT, indirect=True)
def test_hellaswag(registry, tmp_path, tok):
    d = registry.dataset("hellaswag")
    norm = get_adapter(d).normalize
    items = [norm(r, i, "validation") for i, r in enumerate(HELLASWAG)]
    task = lm_task("hellaswag/hellaswag.yaml", tmp_path, {"train": HELLASWAG, "validation": HELLASWAG})
    _same(lm_requests(task, list(task.validation_docs()), tok), our_requests(d, items, [], tok))


def _winogrande_hub(row: dict) -> dict:
    """The llm-foundry record back in the hub's shape: any split of the two contexts into a shared
    prefix and the options gives the same contexts, and the rest is the continuation."""
    c0, c1 = row["context_options"]
    cut = os.path.commonprefix([c0, c1]).rfind(" ") + 1
    return {"sentence": c0[:cut] + "_ " + row["continuation"], "option1": c0[cut:], "option2": c1[cut:],
            "answer": str(int(row["gold"]) + 1)}


@pytest.mark.parametrize("tok", CHAT, indirect=True)
def test_winogrande(registry, tmp_path, tok):
    """Partial evaluation: one context per option, the rest of the sentence as continuation."""
    d = registry.dataset("winogrande")
    loaded = _offline(d, 24)
    rows = [_winogrande_hub(r) for r in _rows("winogrande.validation.jsonl")[:24]]
    task = lm_task("winogrande/default.yaml", tmp_path, {"train": rows, "validation": rows})
    _same(lm_requests(task, list(task.validation_docs()), tok), our_requests(d, loaded.items, loaded.fewshot, tok))


def _truthfulqa_hub(row: dict) -> dict:
    best = row["answer"].strip()
    wrong = [s.strip() for s in row["Incorrect Answers"].split(";") if s.strip() and s.strip() != best]
    return {"question": row["question"], "mc1_targets": {"choices": [best, *wrong], "labels": [1] + [0] * len(wrong)}}


@pytest.mark.parametrize("tok", CHAT, indirect=True)
def test_truthfulqa(registry, tmp_path, tok):
    """MC1: six fixed QA pairs in the question's text (lm-eval's doc_to_text), choices after it."""
    d = registry.dataset("truthfulqa")
    loaded = _offline(d, 16)
    rows = [_truthfulqa_hub(r) for r in _rows("truthfulqa.validation.jsonl")[:16]]
    task = lm_task("truthfulqa/truthfulqa_mc1.yaml", tmp_path, {"validation": rows})
    _same(lm_requests(task, list(task.validation_docs()), tok), our_requests(d, loaded.items, loaded.fewshot, tok))


def _math_tasks() -> dict[str, str]:
    """hendrycks_math subtask YAML per hub config (file names abbreviate some)."""
    out = {}
    for path in sorted((TASKS / "hendrycks_math").glob("hendrycks_math_*.yaml")):
        name = yaml.load(path.read_text(), Loader=_loader(path)).get("dataset_name")  # noqa: S506
        if name:
            out[name] = f"hendrycks_math/{path.name}"
    return out


@pytest.mark.parametrize("tok", CHAT, indirect=True)
def test_math(registry, tmp_path, tok):
    """lm-eval's hendrycks_math (the dataset YAML's lm_eval_task): zero-shot, one subtask per subject."""
    d = registry.dataset("math")
    assert d.lm_eval_task == "hendrycks_math"
    loaded = _offline(d, None)
    tasks = _math_tasks()
    rows = _rows("math.test.jsonl")
    compared = 0
    for subject in sorted({r["category"] for r in rows}):
        hub = [{"problem": r["context"], "level": "Level ?", "type": data.MATH_TYPES[subject],
                "solution": r["chain_of_thought"]} for r in rows if r["category"] == subject][:6]
        items = [it for it in loaded.items if it.doc["subject"] == subject][:6]
        task = lm_task(tasks[subject], tmp_path / subject, {"test": hub, "train": hub})
        _same(lm_contexts(task, list(task.test_docs()), tok), ours(d, items, loaded.fewshot, tok))
        compared += len(items)
    assert compared >= 30


@pytest.mark.parametrize("tok", CHAT, indirect=True)
def test_mbpp(registry, tmp_path, tok):
    """3-shot with lm-eval's fixed examples (tasks 2, 3, 4), no target delimiter."""
    d = registry.dataset("mbpp")
    loaded = _offline(d, 12)
    rows = _rows("mbpp.test.jsonl")[:12]
    task = lm_task("mbpp/mbpp.yaml", tmp_path, {"test": rows})
    _same(lm_contexts(task, list(task.test_docs()), tok), ours(d, loaded.items, loaded.fewshot, tok))


@pytest.mark.parametrize("layout", ["plain", "multiturn", "singleturn"])
def test_winogrande_few_shot(registry, tmp_path, tokenizer, layout):
    """3-shot partial evaluation: the few-shot prefix (gold context + continuation per example)
    before each option's context; lm-eval's sampler gets the document (the task has no test
    split), so it draws 4 and drops it (``prompt.fewshot_exclude_item``)."""
    d = registry.dataset("winogrande")
    chat_layout = "multiturn" if layout == "plain" else layout
    d = dataclasses.replace(d, prompt=dataclasses.replace(d.prompt, fewshot=3, chat_layout=chat_layout))
    rows = _rows("winogrande.validation.jsonl")
    norm = get_adapter(d).normalize
    items = [norm(r, i, "validation") for i, r in enumerate(rows[:12])]
    pool = [norm(r, i, "train") for i, r in enumerate(rows[100:140])]
    task = lm_task("winogrande/default.yaml", tmp_path, {"train": [_winogrande_hub(r) for r in rows[100:140]],
                                                         "validation": [_winogrande_hub(r) for r in rows[:12]]},
                   num_fewshot=3)
    tok = None if layout == "plain" else tokenizer
    docs = list(task.validation_docs())
    task.set_fewshot_seed(SEED)
    theirs = []
    for doc in docs:
        ctxs = task.fewshot_context(doc=doc, num_fewshot=3, apply_chat_template=tok is not None,
                                    fewshot_as_multiturn=layout == "multiturn",
                                    chat_template=lm_chat(tok) if tok is not None else None)
        insts = task.construct_requests(doc=doc, ctx=ctxs, metadata=("t", 0, 1), apply_chat_template=tok is not None)
        theirs.append([tuple(i.arguments) for i in insts])
    _same(theirs, our_requests(d, items, pool, tok))


@pytest.mark.parametrize("layout", ["plain", "multiturn", "singleturn"])
def test_gen_prefix(registry, tmp_path, tokenizer, layout):
    """A gen_prefix starts the answer: after each few-shot question, and as a final assistant
    message the chat template continues (lm-eval's build_qa_turn and continue_final_message)."""
    d = registry.dataset("gsm8k")
    prefix = "Let's think step by step."
    chat_layout = "multiturn" if layout == "plain" else layout
    d = dataclasses.replace(d, prompt=dataclasses.replace(d.prompt, gen_prefix=prefix, fewshot=2,
                                                          chat_layout=chat_layout))
    loaded = _offline(d, 6)
    task = lm_task("gsm8k/gsm8k.yaml", tmp_path, {"test": _rows("gsm8k.test.jsonl")[:6],
                                                  "train": _rows("gsm8k.train.jsonl")},
                   gen_prefix=prefix, num_fewshot=2)
    tok = None if layout == "plain" else tokenizer
    _same(lm_contexts(task, list(task.test_docs()), tok, multiturn=layout == "multiturn"),
          ours(d, loaded.items, loaded.fewshot, tok))


def test_per_document_draws_are_a_prefix_and_fixed_is_the_first_draw(registry):
    """``samples=N`` renders the first N of the full split's prompts; ``fewshot_draw: fixed``
    gives every item the first document's draw."""
    d = registry.dataset("gsm8k")
    full = _offline(d, 40)
    few = _offline(d, 10)
    assert data.build_prompts(d, few.items, few.fewshot) == data.build_prompts(d, full.items, full.fewshot)[:10]
    fixed = dataclasses.replace(d, prompt=dataclasses.replace(d.prompt, fewshot_draw="fixed"))
    draws = {tuple(ex.id for ex in dr) for dr in data.fewshot_draws(fixed, full.items, full.fewshot)}
    assert draws == {tuple(ex.id for ex in data.fewshot_draws(d, full.items[:1], full.fewshot)[0])}


# ---- the engines' side ---------------------------------------------------------------------------

def test_chat_text_is_lm_evals_apply_chat_template(tokenizer):
    """Generation prompt after a user turn; a final assistant turn (gen_prefix) is continued."""
    lm = lm_chat(tokenizer)
    user = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
    prefixed = [*user, {"role": "assistant", "content": "The answer is"}]
    assert chat_text(tokenizer, user) == lm(user) and chat_text(tokenizer, user).endswith("<|im_start|>assistant\n")
    assert chat_text(tokenizer, prefixed) == lm(prefixed, add_generation_prompt=False)
    assert chat_text(tokenizer, prefixed).endswith("The answer is")


def test_the_generation_cache_keys_messages(tmp_path):
    """Chat messages are the cache key (roles and contents); plain text keeps its earlier key."""
    from specbench.engines.base import Engine, Generation, GenParams, LoglikResult
    from specbench.engines.cache import CachingEngine, GenerationCache

    class Echo(Engine):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list = []

        def generate(self, prompts, params):
            self.seen += prompts
            return Generation(texts=[[json.dumps(p)] for p in prompts], prompt_tokens=0, output_tokens=0, wall_s=0)

        def loglikelihood(self, requests):
            self.seen += requests
            return [LoglikResult(-1.0, True) for _ in requests]

    inner = Echo()
    eng = CachingEngine(lambda: inner, GenerationCache(tmp_path / "c.sqlite"), {"model": "m"}, "echo")
    a = [{"role": "user", "content": "hi"}]
    b = [{"role": "system", "content": "x"}, {"role": "user", "content": "hi"}]
    prompts = ["hi", a, b]
    first = eng.generate(prompts, GenParams())
    again = eng.generate(prompts, GenParams())
    assert first.texts == again.texts and again.cached == 3 and inner.seen == prompts
    assert len({t[0] for t in first.texts}) == 3
    eng.loglikelihood([(a, "x"), ("hi", "x")])
    eng.loglikelihood([(a, "x"), ("hi", "x"), (b, "x")])
    assert inner.seen[3:] == [(a, "x"), ("hi", "x"), (b, "x")]


@pytest.mark.parametrize("tok", CHAT, indirect=True)
def test_humaneval(registry, tmp_path, tok):
    """Zero-shot: the function's signature and docstring, as they are."""
    d = registry.dataset("humaneval")
    loaded = _offline(d, 12)
    task = lm_task("humaneval/humaneval.yaml", tmp_path, {"test": _rows("humaneval.test.jsonl")[:12]})
    _same(lm_contexts(task, list(task.test_docs()), tok), ours(d, loaded.items, loaded.fewshot, tok))


@pytest.mark.parametrize("tok", CHAT, indirect=True)
def test_pubmedqa(registry, tmp_path, tok):
    """Abstract, question, then yes / no / maybe by log-likelihood."""
    d = registry.dataset("pubmedqa")
    loaded = _offline(d, 12)
    rows = _rows("pubmedqa.test.jsonl")[:12]
    task = lm_task("pubmedqa/pubmedqa.yaml", tmp_path, {"train": rows, "validation": rows, "test": rows})
    _same(lm_requests(task, list(task.test_docs()), tok), our_requests(d, loaded.items, loaded.fewshot, tok))
