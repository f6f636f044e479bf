"""lm-evaluation-harness's files, written from a cell and read back as predictions.

A cell of a dataset that mirrors an lm-eval task (``DatasetConfig.lm_eval_task``) also writes
what ``lm_eval --output_path ... --log_samples`` would: the results JSON (``results``,
``configs``, ``versions``, ``n-shot``, ``higher_is_better``, ``n-samples``, ``config``,
``git_hash``, ``date``, ``task_hashes``, ...) and the samples JSONL (one record per document
and filter: ``doc_id``, ``doc``, ``target``, ``arguments``, ``resps``, ``filtered_resps``,
``filter``, ``metrics``, the three hashes and each metric's value), with lm-eval 0.4.13's
field names and its file layout (``arguments`` as ``gen_args_N/arg_M``, responses as strings).
So existing lm-eval tooling reads our runs, and ``specbench score`` reads lm-eval's samples.

Metric and filter names come from where each scorer registers (``@scorer(lm_eval=...)``); a
metric without one (a specbench addition) is left out of these files.  What lm-eval cannot
know of us stays ours: ``doc`` is the item's normalized document, ``target`` its reference
(multiple choice: the gold index, as lm-eval's ``doc_to_target``), and a filter other than
``none`` shows the scorer's extraction.  A group task (mmlu, hendrycks_math) is written as one
task over the dataset's items in specbench's order.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from specbench import data, scoring
from specbench.types import ChoiceScores, Item, ScoreReport

if TYPE_CHECKING:
    from specbench.pipeline.plan import CellPlan
    from specbench.registry.schema import DatasetConfig

RESULTS_FILE = "lm_eval/results.json"


def samples_file(task: str) -> str:
    """The samples artifact of an lm-eval task (lm-eval adds a date: ``samples_<task>_<date>.jsonl``)."""
    return f"lm_eval/samples_{task}.jsonl"


_JSON = json.JSONEncoder(ensure_ascii=False).encode
_DOC_JSON = json.JSONEncoder(indent=2, default=str, ensure_ascii=False).encode  # lm-eval's doc_hash input


def _hash(text: str) -> str:
    """lm-eval's hash_string: sha256 hex of the UTF-8 text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _text(prompt: Any) -> str:
    """A prompt as text: plain prompts as they are, chat messages as JSON."""
    return prompt if isinstance(prompt, str) else _JSON(prompt)


def metric_names(dataset: DatasetConfig) -> dict[str, tuple[str, str]]:
    """specbench metric -> (lm-eval metric, filter) for the dataset's scorers, in their order."""
    task = dataset.lm_eval_task or ""
    names: dict[str, tuple[str, str]] = {}
    for s in dataset.scorers:
        info = scoring.scorer_info(s, dataset.key)
        for m in info.metrics:
            if (name := info.lm_eval_name(m, task)) is not None:
                names[m] = name
    return names


def gen_kwargs(plan: CellPlan) -> dict[str, Any]:
    """The plan's sampling in lm-eval's generation_kwargs names."""
    g = plan.gen
    return {"until": list(g.stop), "max_gen_toks": g.max_new_tokens, "do_sample": g.temperature > 0,
            "temperature": g.temperature, "top_p": g.top_p}


def sample_records(plan: CellPlan, items: list[Item], prompts: list[Any], outputs: list[Any],
                   report: ScoreReport) -> list[dict[str, Any]]:
    """lm-eval's logged samples, as its samples JSONL holds them: for each filter, one record per item."""
    dataset = plan.dataset
    names = {m: n for m, n in metric_names(dataset).items() if m in report.metrics}
    by_filter: dict[str, dict[str, str]] = defaultdict(dict)  # filter -> {specbench metric: lm-eval metric}
    scorer_of = {m: s for s in dataset.scorers for m in scoring.scorer_info(s, dataset.key).metrics}
    for m, (lm_metric, flt) in names.items():
        by_filter[flt][m] = lm_metric
    kwargs = None if plan.loglik else gen_kwargs(plan)
    base = []  # the per-item part every filter's record shares, computed once
    for item, prompt, output in zip(items, prompts, outputs, strict=True):
        text = _text(prompt)
        if isinstance(output, ChoiceScores):
            pairs = data.choice_requests(dataset, item, prompt)
            greedy = output.is_greedy or [False] * len(output.logprobs)
            arguments = {f"gen_args_{j}": {"arg_0": _text(ctx), "arg_1": cont} for j, (ctx, cont) in enumerate(pairs)}
            filtered = [[str(lp), str(g)] for lp, g in zip(output.logprobs, greedy, strict=True)]
            resps: list[Any] = [[pair] for pair in filtered]
            target = str(item.gold)
            text = _text(pairs[0][0]) if pairs else text
        else:
            texts = [output] if isinstance(output, str) else list(output)
            arguments = {"gen_args_0": {"arg_0": text, "arg_1": kwargs}}
            resps, filtered, target = [texts], [texts[0]], item.reference
        doc_hash = _hash(_DOC_JSON(item.doc))
        base.append((arguments, resps, filtered, target, doc_hash, _hash(text), _hash(target)))
    records = []
    for flt, metrics in by_filter.items():
        for i, (item, s) in enumerate(zip(items, report.samples, strict=True)):
            arguments, resps, filtered, target, doc_hash, prompt_hash, target_hash = base[i]
            if flt != "none":  # the scorer's extraction, as lm-eval's filter output
                scorer = scorer_of[next(iter(metrics))]
                filtered = [s.detail.get("extracted", {}).get(scorer, s.extracted)]
            records.append({
                "doc_id": i, "doc": item.doc, "target": target, "arguments": arguments, "resps": resps,
                "filtered_resps": filtered, "filter": flt, "metrics": list(metrics.values()),
                "doc_hash": doc_hash, "prompt_hash": prompt_hash, "target_hash": target_hash,
                **{lm: s.scores[m] for m, lm in metrics.items()}})
    return records


def results(plan: CellPlan, report: ScoreReport, records: list[dict[str, Any]], n_items: int, *,
            git_hash: str = "unknown", date: float | None = None) -> dict[str, Any]:
    """lm-eval's results JSON (simple_evaluate's dict plus the tracker's task_hashes and model names)."""
    dataset, task = plan.dataset, plan.dataset.lm_eval_task or plan.dataset.key
    names = {m: n for m, n in metric_names(dataset).items() if m in report.metrics}
    row: dict[str, Any] = {"name": task, "alias": task, "sample_len": n_items}
    for m, (lm_metric, flt) in names.items():
        stderr = report.metrics.get(f"{m}_stderr", math.nan)
        row[f"{lm_metric},{flt}"] = report.metrics[m]
        row[f"{lm_metric}_stderr,{flt}"] = "N/A" if stderr is None or math.isnan(stderr) else stderr
    prompt = dataset.prompt
    fewshot = prompt.fewshot if prompt else 0
    lm_metrics = list(dict.fromkeys(lm for lm, _ in names.values()))
    config: dict[str, Any] = {
        "task": task, "dataset_path": dataset.hub_path, "dataset_name": dataset.hub_config,
        "test_split": dataset.split, "output_type": "multiple_choice" if plan.loglik else "generate_until",
        "num_fewshot": fewshot, "repeats": plan.gen.n,
        "metric_list": [{"metric": m, "aggregation": "mean", "higher_is_better": True} for m in lm_metrics],
        "metadata": {"specbench_dataset": dataset.key, "revision": dataset.revision},
    }
    if prompt:
        config.update(target_delimiter=prompt.target_delimiter, fewshot_delimiter=prompt.fewshot_delimiter)
    if not plan.loglik:
        config["generation_kwargs"] = gen_kwargs(plan)
    model = plan.model.hf_id or plan.model.key
    task_hash = _hash("".join(r["doc_hash"] + r["prompt_hash"] + r["target_hash"] for r in records))
    return {
        "results": {task: row}, "group_subtasks": {task: []}, "configs": {task: config},
        "versions": {task: None}, "n-shot": {task: fewshot},
        "higher_is_better": {task: dict.fromkeys(lm_metrics, True)},
        "n-samples": {task: {"original": dataset.samples, "effective": n_items}},
        "config": {"model": f"specbench-{plan.engine}", "model_args": f"pretrained={model}",
                   "model_revision": plan.weights.revision, "batch_size": None, "limit": plan.samples,
                   "gen_kwargs": None if plan.loglik else gen_kwargs(plan), "random_seed": plan.seed,
                   "fewshot_seed": getattr(prompt, "fewshot_seed", None)},
        "git_hash": git_hash, "date": time.time() if date is None else date, "task_hashes": {task: task_hash},
        "model_source": plan.engine, "model_name": model, "model_name_sanitized": model.replace("/", "__"),
        "specbench": {"dataset": dataset.key, "config_hash": plan.config_hash(),
                      "metrics": {f"{lm},{flt}": m for m, (lm, flt) in names.items()}},
    }


def cell_files(plan: CellPlan, items: list[Item], prompts: list[Any], outputs: list[Any], report: ScoreReport,
               git_hash: str = "unknown") -> dict[str, str]:
    """Artifact path -> text of a cell's lm-eval files; none when the dataset mirrors no lm-eval task
    or no metric of it has an lm-eval name."""
    task = plan.dataset.lm_eval_task
    if not task or not metric_names(plan.dataset):
        return {}
    records = sample_records(plan, items, prompts, outputs, report)
    res = results(plan, report, records, len(items), git_hash=git_hash)
    return {RESULTS_FILE: json.dumps(res, indent=2, default=str, ensure_ascii=False),
            samples_file(task): jsonl(records)}


def jsonl(records: list[dict[str, Any]]) -> str:
    """The records as JSON lines, byte for byte ``json.dumps`` of each; the document, arguments and
    responses every filter's record of an item shares are serialized once (the bulk of the cost)."""
    encode = json.JSONEncoder(default=str, ensure_ascii=False).encode  # json.dumps' with these options
    cache: dict[int, str] = {}

    def dump(value: Any) -> str:
        if not isinstance(value, dict | list):
            return encode(value)
        if id(value) not in cache:  # the records keep every value alive: ids stay unique
            cache[id(value)] = encode(value)
        return cache[id(value)]

    return "".join("{" + ", ".join(f"{encode(k)}: {dump(v)}" for k, v in r.items()) + "}\n" for r in records)


# --- reading lm-eval samples back -----------------------------------------------------------
def is_samples(rows: list[Any]) -> bool:
    """Records of an lm-eval samples file: a ``doc_id`` and ``resps`` or ``filtered_resps``."""
    return bool(rows) and all(isinstance(r, dict) and "doc_id" in r and ("resps" in r or "filtered_resps" in r)
                              for r in rows[:5])


def _is_pair(x: Any) -> bool:
    """An lm-eval loglikelihood response: ``[logprob, is_greedy]`` (strings in its files)."""
    return isinstance(x, list | tuple) and len(x) == 2 and x[1] in (True, False, "True", "False") \
        and not isinstance(x[0], list | tuple | dict)


def _choice_logprobs(per_request: list[Any]) -> list[float] | None:
    """One log-likelihood per choice, or None when these are not loglikelihood responses."""
    if not per_request:
        return None
    firsts = [r[0] if isinstance(r, list) and r and _is_pair(r[0]) else r for r in per_request]
    if not all(_is_pair(p) for p in firsts):
        return None
    try:
        return [float(p[0]) for p in firsts]
    except (TypeError, ValueError):
        return None


def to_predictions(rows: list[dict[str, Any]], where: str = "") -> list[dict[str, Any]]:
    """lm-eval sample records -> specbench prediction records keyed by ``doc_id`` (the item's
    position in the split): ``{"doc_id", "outputs": [...]}`` from the raw responses (our scorers
    extract for themselves), or ``{"doc_id", "logprobs": [...]}`` for loglikelihood requests.
    A document logged once per filter is read once."""
    out: dict[int, dict[str, Any]] = {}
    for n, row in enumerate(rows, 1):
        try:
            doc_id = int(row["doc_id"])
        except (TypeError, ValueError):
            raise ValueError(f"{where}record {n}: doc_id {row.get('doc_id')!r} is not an integer") from None
        if doc_id in out:
            continue
        resps, filtered = row.get("resps"), row.get("filtered_resps")
        for source in (resps, filtered):
            if isinstance(source, list) and (lps := _choice_logprobs(source)) is not None:
                out[doc_id] = {"doc_id": doc_id, "logprobs": lps}
                break
        else:
            if isinstance(resps, list) and resps and isinstance(resps[0], list) and resps[0]:
                texts = resps[0]  # the first request's repeats
            elif isinstance(filtered, list) and filtered:
                texts = filtered[0] if isinstance(filtered[0], list) else [filtered[0]]
            else:
                raise ValueError(f"{where}record {n} (doc_id {doc_id}): no responses in resps or filtered_resps")
            out[doc_id] = {"doc_id": doc_id, "outputs": [str(t) for t in texts]}
    return list(out.values())
