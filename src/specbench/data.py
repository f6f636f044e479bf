"""The data layer: load a dataset's items (hub or offline slice), build prompts, MC requests.

One adapter per dataset (registered by name; a dataset's ``adapter`` or else its ``key``)
turns a record into an :class:`~specbench.types.Item`.  The hub path and the offline path go
through the same adapter; an adapter accepts both the hub's record shape and the shape of
the source files the offline slices are cut from (``scripts/make_slices.py``), and gives the
prompt templates the hub's field names, so the templates are lm-evaluation-harness's own.

Prompts follow lm-evaluation-harness's plain-text layout::

    description + (template(ex) + target_delimiter + target(ex) + fewshot_delimiter) * k
                + template(item)

Multiple-choice items are scored by log-likelihood: :func:`choice_requests` gives the
(context, continuation) pairs, continuation = target_delimiter + choice, or for "partial
evaluation" datasets (winogrande) one context per option and one fixed continuation.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from specbench.registry.schema import DatasetConfig, Status
from specbench.mathequiv import boxed_answer
from specbench.types import Item
from specbench.hub import datasets_offline, hub_unreachable

if TYPE_CHECKING:  # pragma: no cover
    import datasets

log = logging.getLogger(__name__)

SLICES_DIR = Path(__file__).resolve().parent / "slices"


class DataUnavailable(RuntimeError):
    """A dataset cannot be loaded here; the message is one line: what, why, what would work."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


@dataclass
class LoadedDataset:
    """What :func:`load_items` returns."""

    key: str
    items: list[Item]
    fewshot: list[Item]  # the few-shot split's items (empty when the prompt is zero-shot)
    hf_dataset: datasets.Dataset  # the evaluated records, for mlflow.data.from_huggingface
    digest: str  # fingerprint of hf_dataset (content hash of the slice when offline)
    source: str  # "hub_path[/config]@revision:split" or the slice's path
    offline: bool
    available: int = 0  # items in the loaded split before ``samples`` was applied
    notes: list[str] = field(default_factory=list)  # fallbacks and truncations, one line each


# -- adapters ------------------------------------------------------------------------------
Normalizer = Callable[[Mapping[str, Any], int, str], Item]


@dataclass(frozen=True)
class Adapter:
    """How one dataset's records become Items (prompting options live in the dataset's YAML)."""

    name: str
    normalize: Normalizer  # (record, index, split) -> Item; index counts within ``group``
    group: str | None = None  # record field that item ids are numbered within
    partial: bool = False  # choices are contexts, the continuation is fixed (winogrande)
    hub_configs: tuple[str, ...] = ()  # concatenated when the YAML's hub_config is null


ADAPTERS: dict[str, Adapter] = {}


def register_adapter(adapter: Adapter) -> Adapter:
    ADAPTERS[adapter.name] = adapter
    return adapter


def get_adapter(dataset: DatasetConfig) -> Adapter:
    name = dataset.adapter or dataset.key
    if name not in ADAPTERS:
        raise DataUnavailable(
            f"dataset '{dataset.key}' has no adapter '{name}' in specbench.data; "
            f"known adapters: {', '.join(sorted(ADAPTERS))}")
    return ADAPTERS[name]


# -- loading -------------------------------------------------------------------------------
_hub_unreachable = hub_unreachable  # module-level, so tests can stand in for the network


def _slice_path(name: str | None) -> Path | None:
    return SLICES_DIR / name if name else None


def split_slice_name(dataset: DatasetConfig, split: str) -> str | None:
    """The shipped slice of another split: ``<stem>.<split>.jsonl`` -> ``<stem>.<other split>.jsonl``."""
    name = dataset.offline_slice
    suffix = f".{dataset.split}.jsonl"
    if not name or not name.endswith(suffix):
        return None
    return name[: -len(suffix)] + f".{split}.jsonl"


def _hub_source(dataset: DatasetConfig, split: str) -> str:
    cfg = f"/{dataset.hub_config}" if dataset.hub_config else ""
    return f"{dataset.hub_path}{cfg}@{dataset.revision}:{split}"


def _load_hub(dataset: DatasetConfig, adapter: Adapter, split: str) -> datasets.Dataset:
    import datasets

    configs: list[str | None] = (
        [dataset.hub_config] if dataset.hub_config or not adapter.hub_configs else list(adapter.hub_configs))
    parts = [datasets.load_dataset(dataset.hub_path, cfg, split=split, revision=dataset.revision)
             for cfg in configs]
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)


def _load_slice(path: Path) -> datasets.Dataset:
    import datasets

    return datasets.load_dataset("json", data_files=str(path), split="train")


def _normalize_all(records: Any, adapter: Adapter, split: str) -> list[Item]:
    items: list[Item] = []
    counters: dict[Any, int] = {}
    for i, rec in enumerate(records):
        if adapter.group:
            g = rec.get(adapter.group)
            i = counters[g] = counters.get(g, -1) + 1
        items.append(adapter.normalize(rec, i, split))
    return items


def load_items(dataset: DatasetConfig, samples: int | None = None,
               offline: bool | None = None) -> LoadedDataset:
    """Load a dataset's evaluation items (and its few-shot pool) through its adapter.

    ``offline``: None tries the hub and falls back to the shipped slice when the hub is
    unreachable or HF_HUB_OFFLINE / HF_DATASETS_OFFLINE is set; True reads only the slice;
    False only the hub.  ``samples=N`` keeps the first N items (lm-eval's ``--limit``);
    more than there are keeps all of them, with a note.
    """
    key = dataset.key
    if dataset.status == Status.planned:
        raise DataUnavailable(
            f"dataset '{key}' is planned, not runnable: {dataset.planned_reason or 'no reason given'} "
            f"(status: planned in conf/datasets/{key}.yaml)")
    if samples is not None and samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    adapter = get_adapter(dataset)
    prompt = dataset.prompt
    k = prompt.fewshot if prompt else 0
    notes: list[str] = []
    slice_path = _slice_path(dataset.offline_slice)

    use_offline = bool(offline)
    hub_error: str | None = None
    if not use_offline:
        hub_error = datasets_offline() or _hub_unreachable()
        if hub_error and offline is False:
            raise DataUnavailable(
                f"dataset '{key}': offline=False but the hub cannot be used ({hub_error}); "
                f"it needs hub access to {_hub_source(dataset, dataset.split)}, or offline=True"
                + (f" to read the slice {dataset.offline_slice}" if dataset.offline_slice else ""))
        use_offline = hub_error is not None

    ds = fs_ds = None
    if not use_offline:
        try:
            ds = _load_hub(dataset, adapter, dataset.split)
            if k:
                fs_ds = _load_hub(dataset, adapter, prompt.fewshot_split)
        except Exception as exc:  # noqa: BLE001 - reported in one line, or the slice is used
            hub_error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
            if offline is False:
                raise DataUnavailable(
                    f"dataset '{key}': loading {_hub_source(dataset, dataset.split)} from the hub "
                    f"failed ({hub_error}); check hub access, or use offline=True"
                    + (f" (slice {dataset.offline_slice})" if dataset.offline_slice else "")) from exc
            use_offline = True
        else:
            source = _hub_source(dataset, dataset.split)

    if use_offline:
        why = hub_error or "offline=True"
        if slice_path is None or not slice_path.is_file():
            missing = (f"its slice {slice_path.name} is missing from {SLICES_DIR}" if slice_path
                       else "it ships no offline slice")
            raise DataUnavailable(
                f"dataset '{key}' is not available offline ({why}): {missing}; it needs hub access "
                f"to {_hub_source(dataset, dataset.split)}")
        if hub_error and offline is None:
            notes.append(f"hub not used ({hub_error}); loaded the offline slice {slice_path.name}")
        ds = _load_slice(slice_path)
        source = str(slice_path)
        if k:
            fs_name = split_slice_name(dataset, prompt.fewshot_split)
            fs_path = _slice_path(fs_name)
            if fs_path is None or not fs_path.is_file():
                raise DataUnavailable(
                    f"dataset '{key}': {k}-shot prompts need the '{prompt.fewshot_split}' split, which "
                    f"has no offline slice ({fs_name or 'none named'}); use prompt.fewshot: 0 offline "
                    f"or hub access")
            fs_ds = _load_slice(fs_path)

    available = len(ds)
    n = available if samples is None else min(samples, available)
    if samples is not None and samples > available:
        notes.append(f"samples={samples} requested but only {available} items are available "
                     f"({'offline slice' if use_offline else dataset.split + ' split'}); using all {available}")
    if use_offline:
        h = hashlib.sha256(slice_path.read_bytes())
        h.update(f"|first {n}".encode())
        digest = h.hexdigest()[:16]
        ds = ds.select(range(n), new_fingerprint=digest)
    else:
        if n < available:
            ds = ds.select(range(n))
        digest = ds._fingerprint

    items = _normalize_all(ds, adapter, dataset.split)
    fewshot: list[Item] = []
    if fs_ds is not None:
        fewshot = _normalize_all(fs_ds, adapter, prompt.fewshot_split)
        if prompt.fewshot_ids:
            by_id = {it.id: it for it in fewshot}
            missing_ids = [i for i in prompt.fewshot_ids if i not in by_id]
            if missing_ids:
                raise DataUnavailable(
                    f"dataset '{key}': the fixed few-shot examples {missing_ids} are not in the "
                    f"'{prompt.fewshot_split}' split")
            fewshot = [by_id[i] for i in prompt.fewshot_ids]
    for note in notes:
        log.warning("%s: %s", key, note)
    return LoadedDataset(key=key, items=items, fewshot=fewshot, hf_dataset=ds, digest=digest,
                         source=source, offline=use_offline, available=available, notes=notes)


# -- prompts -------------------------------------------------------------------------------
def _regex_replace(s: str, pattern: str, repl: str, count: int = 0) -> str:
    return re.sub(pattern, repl, s, count=count)


_ENV = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)
_ENV.filters["regex_replace"] = _regex_replace  # as lm-eval's template environment


@lru_cache(maxsize=512)
def _compile(source: str):
    return _ENV.from_string(source)


def render(template: str, doc: Mapping[str, Any], what: str = "template") -> str:
    """Render one Jinja2 template over an item's doc; a missing field fails in one line."""
    try:
        return _compile(template).render(**doc)
    except TemplateError as exc:
        raise ValueError(f"prompt {what} failed: {exc} (fields available: {', '.join(sorted(doc))})") from None


def select_fewshot(dataset: DatasetConfig, item: Item, fewshot_items: list[Item]) -> list[Item]:
    """The item's few-shot examples: deterministic, never the item itself.

    Sampler "random" is lm-eval's default: ``random.Random(fewshot_seed).sample(pool, k)``
    (k+1 and drop the item when the pool holds it).  A fresh generator per call gives every
    item the same examples -- lm-eval's first document's draw; lm-eval advances one generator
    across documents instead, so its later documents differ.  "first_n" takes the first k.
    """
    prompt = dataset.prompt
    k = prompt.fewshot if prompt else 0
    if k == 0:
        return []
    pool = list(fewshot_items)
    group = prompt.fewshot_group
    if group:
        pool = [ex for ex in pool if ex.doc.get(group) == item.doc.get(group)]
    has_self = any(ex.id == item.id for ex in pool)
    sampler = prompt.fewshot_sampler
    if sampler == "first_n":
        chosen = [ex for ex in pool if ex.id != item.id][:k]
    elif sampler == "random":
        want = k + 1 if has_self else k
        drawn = random.Random(prompt.fewshot_seed).sample(pool, min(want, len(pool)))
        chosen = [ex for ex in drawn if ex.id != item.id][:k]
    else:
        raise ValueError(f"dataset '{dataset.key}': unknown few-shot sampler '{sampler}' "
                         f"(valid: random, first_n)")
    if len(chosen) < k:
        where = f" with {group}={item.doc.get(group)!r}" if group else ""
        raise ValueError(f"dataset '{dataset.key}': {k}-shot prompt but only {len(chosen)} few-shot "
                         f"examples{where} besides the item itself")
    return chosen


def build_prompt(dataset: DatasetConfig, item: Item, fewshot_items: list[Item]) -> str:
    """The plain-text prompt for one item (lm-eval's layout; see the module docstring).

    For partial-evaluation datasets (winogrande) this is only the description and few-shot
    prefix: the item's own text is one context per option, added by :func:`choice_requests`.
    The chat ``system`` prompt is not included; the engine applies it.
    """
    prompt = dataset.prompt
    if prompt is None:
        raise ValueError(f"dataset '{dataset.key}' has no prompt section")
    adapter = get_adapter(dataset)
    description = prompt.description if prompt else None
    parts = [render(description, item.doc, "description")] if description else []
    for ex in select_fewshot(dataset, item, fewshot_items):
        parts.append(render(prompt.template, ex.doc) + prompt.target_delimiter
                     + render(prompt.target, ex.doc, "target") + prompt.fewshot_delimiter)
    if not adapter.partial:
        parts.append(render(prompt.template, item.doc))
    return "".join(parts)


def choice_requests(dataset: DatasetConfig, item: Item, prompt: str) -> list[tuple[str, str]]:
    """(context, continuation) pairs whose log-likelihoods decide a multiple-choice item.

    Usually ``(prompt, target_delimiter + choice)`` per choice (choice rendered through
    ``choice_template`` when set, with ``choice`` and ``choice_index`` in scope).  Partial
    evaluation (winogrande): ``(prompt + option_context, target_delimiter + target)``.
    """
    if not item.choices:
        raise ValueError(f"dataset '{dataset.key}': item {item.id} has no choices")
    p = dataset.prompt
    if p is None:
        raise ValueError(f"dataset '{dataset.key}' has no prompt section")

    def text(i: int, choice: str) -> str:
        if p.choice_template is None:
            return choice
        return render(p.choice_template, {**item.doc, "choice": choice, "choice_index": i}, "choice_template")

    if get_adapter(dataset).partial:
        cont = p.target_delimiter + render(p.target, item.doc, "target")
        return [(prompt + text(i, c), cont) for i, c in enumerate(item.choices)]
    return [(prompt, p.target_delimiter + text(i, c)) for i, c in enumerate(item.choices)]


# -- the adapters --------------------------------------------------------------------------
def _gsm8k(rec: Mapping[str, Any], i: int, split: str) -> Item:
    answer = rec["answer"]
    return Item(id=f"{split}/{i}", doc={"question": rec["question"], "answer": answer},
                reference=answer.split("####")[-1].strip())


def _humaneval(rec: Mapping[str, Any], i: int, split: str) -> Item:
    doc = {k: rec[k] for k in ("task_id", "prompt", "canonical_solution", "test", "entry_point")}
    return Item(id=rec["task_id"], doc=doc, reference=rec["canonical_solution"],
                test=rec["test"], entry_point=rec["entry_point"])


def _mbpp(rec: Mapping[str, Any], i: int, split: str) -> Item:
    # full config: text, code, test_list, test_setup_code; sanitized: prompt, test_imports
    text = rec["text"] if "text" in rec else rec["prompt"]
    setup = rec.get("test_setup_code") or "\n".join(rec.get("test_imports") or [])
    tests = list(rec["test_list"])
    doc = {"task_id": rec["task_id"], "text": text, "code": rec["code"], "test_list": tests,
           "test_setup_code": setup, "challenge_test_list": list(rec.get("challenge_test_list") or [])}
    test = "\n".join(([setup.strip()] if setup.strip() else []) + tests)
    return Item(id=str(rec["task_id"]), doc=doc, reference=rec["code"], test=test)


_LETTERS = "ABCDEFGHIJ"


def _mmlu(rec: Mapping[str, Any], i: int, split: str) -> Item:
    if "choices" in rec:  # cais/mmlu
        choices, answer = list(rec["choices"]), int(rec["answer"])
    else:  # hendrycks/test CSV columns
        choices, answer = [rec[c] for c in "ABCD"], "ABCD".index(rec["answer"].strip())
    subject = rec["subject"]
    doc = {"question": rec["question"], "subject": subject, "choices": choices, "answer": answer}
    return Item(id=f"{subject}/{split}/{i}", doc=doc, reference=_LETTERS[answer],
                choices=list(_LETTERS[: len(choices)]), gold=answer)


MATH_TYPES = {  # hendrycks_math config -> the "type" field of its records
    "algebra": "Algebra", "counting_and_probability": "Counting & Probability",
    "geometry": "Geometry", "intermediate_algebra": "Intermediate Algebra",
    "number_theory": "Number Theory", "prealgebra": "Prealgebra", "precalculus": "Precalculus",
}
_MATH_CONFIG = {v: k for k, v in MATH_TYPES.items()}


def _math(rec: Mapping[str, Any], i: int, split: str) -> Item:
    if "problem" in rec:  # EleutherAI/hendrycks_math
        problem, solution, mtype = rec["problem"], rec["solution"], rec["type"]
        subject, level = _MATH_CONFIG.get(mtype, mtype), rec.get("level")
        answer = boxed_answer(solution)  # the reference answer, extracted as lm-eval does
    else:  # llm-foundry conversion: context, answer, chain_of_thought, category
        problem, solution, subject = rec["context"], rec["chain_of_thought"], rec["category"]
        mtype, level, answer = MATH_TYPES.get(subject, subject), None, rec["answer"]
    if answer is None:
        raise ValueError(f"math record {i}: no \\boxed answer in the solution")
    doc = {"problem": problem, "solution": solution, "answer": answer, "type": mtype,
           "subject": subject, "level": level}
    return Item(id=f"{subject}/{split}/{i}", doc=doc, reference=answer)


def _arc(rec: Mapping[str, Any], i: int, split: str) -> Item:
    if "question" in rec:  # allenai/ai2_arc
        texts, labels = list(rec["choices"]["text"]), list(rec["choices"]["label"])
        question, answer_key, item_id = rec["question"], rec["answerKey"], rec["id"]
    else:  # llm-foundry: query "Question: ...", choices, gold
        texts = list(rec["choices"])
        labels = list(_LETTERS[: len(texts)])  # the conversion dropped the labels
        question = rec["query"].removeprefix("Question: ").removesuffix("\nAnswer:")
        answer_key, item_id = labels[int(rec["gold"])], f"{split}/{i}"
    gold = labels.index(answer_key)
    doc = {"id": item_id, "question": question, "choices": {"text": texts, "label": labels},
           "answerKey": answer_key}
    return Item(id=item_id, doc=doc, reference=texts[gold], choices=texts, gold=gold)


def _winogrande(rec: Mapping[str, Any], i: int, split: str) -> Item:
    if "sentence" in rec:  # allenai/winogrande; lm-eval's preprocess_winogrande
        sentence = rec["sentence"]
        blank = sentence.index("_")
        contexts = [sentence[:blank] + opt for opt in (rec["option1"], rec["option2"])]
        continuation = sentence[blank + 1 :].strip()
        gold = {"1": 0, "2": 1}.get(str(rec["answer"]))
        doc: dict[str, Any] = {k: rec[k] for k in ("sentence", "option1", "option2", "answer")}
    else:  # llm-foundry: context_options, continuation, gold (already split the same way)
        contexts, continuation, gold = list(rec["context_options"]), rec["continuation"], int(rec["gold"])
        doc = {}
    if gold is None:
        raise ValueError(f"winogrande record {i} has no answer (the test split is unlabelled)")
    doc.update(contexts=contexts, continuation=continuation, gold=gold)
    return Item(id=f"{split}/{i}", doc=doc, reference=contexts[gold], choices=contexts, gold=gold)


def _truthfulqa(rec: Mapping[str, Any], i: int, split: str) -> Item:
    if "mc1_targets" in rec:  # truthfulqa/truthful_qa multiple_choice
        choices, labels = list(rec["mc1_targets"]["choices"]), list(rec["mc1_targets"]["labels"])
    else:  # TruthfulQA.csv: best answer + the incorrect answers (mc1 style)
        wrong = [s.strip() for s in rec["Incorrect Answers"].split(";") if s.strip()]
        choices = [rec["answer"].strip()] + [w for w in wrong if w != rec["answer"].strip()]
        labels = [1] + [0] * (len(choices) - 1)
    gold = labels.index(1)
    doc = {"question": rec["question"], "mc1_targets": {"choices": choices, "labels": labels}}
    return Item(id=f"{split}/{i}", doc=doc, reference=choices[gold], choices=choices, gold=gold)


PUBMEDQA_CHOICES = ["yes", "no", "maybe"]


def _pubmedqa(rec: Mapping[str, Any], i: int, split: str) -> Item:
    if "QUESTION" in rec:  # bigbio source schema == ori_pqal.json record (+ pubid)
        doc = {k: rec.get(k) for k in ("QUESTION", "CONTEXTS", "LABELS", "MESHES", "YEAR",
                                        "final_decision", "LONG_ANSWER")}
    else:  # qiaojin/PubMedQA pqa_labeled
        ctx = rec["context"]
        doc = {"QUESTION": rec["question"], "CONTEXTS": list(ctx["contexts"]),
               "LABELS": list(ctx.get("labels") or []), "MESHES": list(ctx.get("meshes") or []),
               "YEAR": None, "final_decision": rec["final_decision"], "LONG_ANSWER": rec.get("long_answer")}
    pubid = rec.get("pubid")
    doc["pubid"] = None if pubid is None else str(pubid)
    decision = doc["final_decision"]
    return Item(id=doc["pubid"] or f"{split}/{i}", doc=doc, reference=decision,
                choices=list(PUBMEDQA_CHOICES), gold=PUBMEDQA_CHOICES.index(decision))


def _hellaswag_clean(text: str) -> str:  # lm-eval hellaswag/utils.py preprocess
    text = text.strip().replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


def _hellaswag(rec: Mapping[str, Any], i: int, split: str) -> Item:
    ctx = rec["ctx_a"] + " " + rec["ctx_b"].capitalize()
    query = _hellaswag_clean(rec["activity_label"] + ": " + ctx)
    choices = [_hellaswag_clean(e) for e in rec["endings"]]
    if str(rec.get("label", "")).strip() == "":
        raise ValueError(f"hellaswag record {i} has no label (the test split is unlabelled)")
    gold = int(rec["label"])
    doc = {"query": query, "choices": choices, "gold": gold, "activity_label": rec["activity_label"],
           "ind": rec.get("ind")}
    return Item(id=f"{split}/{rec.get('ind', i)}", doc=doc, reference=choices[gold], choices=choices, gold=gold)


def _ifeval(rec: Mapping[str, Any], i: int, split: str) -> Item:
    doc = {"key": rec["key"], "prompt": rec["prompt"],
           "instruction_id_list": list(rec["instruction_id_list"]), "kwargs": list(rec["kwargs"])}
    return Item(id=str(rec["key"]), doc=doc, reference="")


def _mt_bench(rec: Mapping[str, Any], i: int, split: str) -> Item:
    reference = rec.get("reference") or [""]
    doc = {"question_id": rec["question_id"], "category": rec["category"], "turns": list(rec["turns"]),
           "reference": list(rec.get("reference") or [])}
    return Item(id=str(rec["question_id"]), doc=doc, reference=reference[0])


for _adapter in (
    Adapter("gsm8k", _gsm8k),
    Adapter("humaneval", _humaneval),
    Adapter("mbpp", _mbpp),
    Adapter("mmlu", _mmlu, group="subject"),
    Adapter("math", _math, hub_configs=tuple(MATH_TYPES)),
    Adapter("arc_challenge", _arc),
    Adapter("winogrande", _winogrande, partial=True),
    Adapter("truthfulqa", _truthfulqa),
    Adapter("pubmedqa", _pubmedqa),
    Adapter("hellaswag", _hellaswag),
    Adapter("ifeval", _ifeval),
    Adapter("mt_bench", _mt_bench),
):
    register_adapter(_adapter)
