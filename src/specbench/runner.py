"""One evaluation cell: model x dataset -> engine -> scores -> one MLflow run.

The data flows one way: registry facts and a preset give the plan (engine arguments,
sampling parameters, config hash); the data layer gives items and prompts; the engine
answers them in one batched call; the scorers grade them; tracking records it all.
The run is open while the engine works, so MLflow's system metrics cover generation.
"""

from __future__ import annotations

import os
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import mlflow

from specbench import data, scoring, tracking
from specbench.engines import Engine, PeakRSS, make_engine
from specbench.plan import CellPlan, CellUnavailable, plan_cell
from specbench.registry import Registry
from specbench.types import ChoiceScores, Item, ScoreReport


@dataclass
class CellResult:
    run_id: str
    status: str  # FINISHED | FAILED
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    report: ScoreReport | None = None
    outputs: list[Any] = field(default_factory=list)


def _answer(plan: CellPlan, engine: Engine, items: list[Item], prompts: list[str]) -> tuple[list[Any], dict]:
    """Run the engine over every item in one call; return outputs and throughput figures."""
    t0 = time.perf_counter()
    if plan.loglik:
        requests, owners = [], []
        for i, (item, prompt) in enumerate(zip(items, prompts, strict=True)):
            pairs = data.choice_requests(plan.dataset, item, prompt)
            requests += pairs
            owners += [i] * len(pairs)
        results = engine.loglikelihood(requests)
        outputs = [ChoiceScores(logprobs=[], is_greedy=[]) for _ in items]
        for i, r in zip(owners, results, strict=True):
            outputs[i].logprobs.append(r.logprob)
            outputs[i].is_greedy.append(r.is_greedy)
        wall = time.perf_counter() - t0
        return outputs, {"generation_s": wall, "requests_per_s": len(requests) / wall if wall else None}
    prompt_cfg = plan.dataset.prompt
    gen = engine.generate(prompts, plan.gen, chat=plan.chat, system=prompt_cfg.system if prompt_cfg else None)
    wall = gen.wall_s or (time.perf_counter() - t0)
    generated = len(prompts) - gen.cached
    figures: dict[str, float | None] = {"generation_s": wall, "cached_prompts": gen.cached}
    if generated:  # throughput only from what the engine really generated
        figures.update({
            "output_tokens": gen.output_tokens,
            "prompt_tokens": gen.prompt_tokens,
            "output_tokens_per_s": gen.output_tokens / wall if wall else None,
            "total_tokens_per_s": (gen.output_tokens + gen.prompt_tokens) / wall if wall else None,
            "requests_per_s": generated / wall if wall else None,
        })
    if gen.latencies_s:
        figures["latency_mean_s"] = sum(gen.latencies_s) / len(gen.latencies_s)
    return gen.texts, figures


def _sample_rows(items: list[Item], prompts: list[str], outputs: list[Any], report: ScoreReport) -> list[dict]:
    rows = []
    for item, prompt, output, s in zip(items, prompts, outputs, report.samples, strict=True):
        if isinstance(output, ChoiceScores):
            text = item.choices[max(range(len(output.logprobs)), key=output.logprobs.__getitem__)] \
                if item.choices and output.logprobs else ""
            extra = {"logprobs": [round(x, 4) for x in output.logprobs]}
        else:
            text = output[0] if len(output) == 1 else output
            extra = {}
        rows.append({"id": item.id, "prompt": prompt, "output": text, "extracted": s.extracted,
                     "reference": item.reference, **{f"score.{k}": v for k, v in s.scores.items()}, **extra})
    return rows


def run_cell(plan: CellPlan, *, engine: Engine | None = None, parent_run_id: str | None = None,
             run_id: str | None = None, extra_tags: dict[str, str] | None = None) -> CellResult:
    """Evaluate one cell inside one MLflow run.  A failure ends the run FAILED with the
    error recorded and is returned, never raised, so a caller's other cells go on."""
    cfg = plan.config()
    tags = {
        "model": plan.model.key, "dataset": plan.dataset.key, "category": plan.category or "",
        "role": plan.role, "engine": plan.engine, "preset": plan.preset_name,
        "git_commit": tracking.git_commit(), "config_hash": tracking.config_hash(cfg),
        "model_source": plan.resolved.source, **plan.quantization_tags, **(extra_tags or {}),
    }
    # run_id: resume the run an interrupted invocation left behind (one child run per cell).
    run = mlflow.start_run(run_id=run_id, run_name=None if run_id else plan.name,
                           tags=tags, nested=parent_run_id is not None,
                           parent_run_id=None if run_id else parent_run_id, log_system_metrics=True)
    owns_engine = engine is None
    started_before = owns_engine is False and getattr(engine, "started", True)
    hits_before = getattr(engine, "hits", 0)
    try:
        params = {
            **tracking.flatten(plan.engine, plan.engine_params),
            **tracking.flatten("sampling", plan.gen.as_dict()),
            "model.key": plan.model.key, "model.hf_id": plan.model.hf_id, "model.revision": plan.resolved.revision,
            "model.parameters_b": plan.model.parameters_b, "model.quantization": plan.model.quantization.value,
            "model.dtype": plan.model.dtype.value, "model.license": plan.model.license,
            "dataset.key": plan.dataset.key, "dataset.hub_path": plan.dataset.hub_path,
            "dataset.split": plan.dataset.split, "dataset.revision": plan.dataset.revision,
            "dataset.task_type": plan.dataset.task_type.value,
            "prompt.fewshot": plan.dataset.prompt.fewshot if plan.dataset.prompt else 0,
            "prompt.chat_template": plan.chat,
            "preset": plan.preset_name, "seed": plan.seed, "samples": plan.samples or "all",
        }
        mlflow.log_params(params)
        mlflow.log_dict(cfg, "config.json")
        mlflow.log_dict(tracking.package_versions(), "environment.json")

        loaded = data.load_items(plan.dataset, plan.samples)
        tracking.log_dataset_input(loaded.hf_dataset, plan.dataset.key, loaded.source, loaded.digest)
        mlflow.set_tags({"dataset_digest": loaded.digest, "data_offline": str(loaded.offline)})
        prompts = [data.build_prompt(plan.dataset, item, loaded.fewshot) for item in loaded.items]

        with PeakRSS() as rss:
            if engine is None:
                engine = make_engine(plan.engine, plan.engine_params)
            outputs, figures = _answer(plan, engine, loaded.items, prompts)
        if engine.params.get("version"):  # known once the engine (or the cached one) has started
            mlflow.log_param(f"{plan.engine}.version", engine.params["version"])
        t0 = time.perf_counter()
        report = scoring.score(plan.dataset, loaded.items, outputs)
        scoring_s = time.perf_counter() - t0

        metrics = {**report.metrics, **figures, "scoring_s": scoring_s, "n_samples": len(loaded.items),
                   "peak_rss_mb": rss.peak_mb, **engine.memory()}
        if owns_engine or (not started_before and getattr(engine, "started", False)):
            metrics["model_load_s"] = engine.load_s  # this cell paid for the engine start
        if hasattr(engine, "hits"):
            metrics["cache_hits"] = engine.hits - hits_before
        metrics = tracking.clean_metrics(metrics)
        mlflow.log_metrics(metrics)
        tracking.log_samples(_sample_rows(loaded.items, prompts, outputs, report))
        mlflow.set_tag("main_metric", plan.dataset.main_metric)
        if run_id:  # a resumed run that failed before: its old error no longer applies
            client = mlflow.MlflowClient()
            for tag in ("error", "error_type"):
                if tag in run.data.tags:
                    client.delete_tag(run.info.run_id, tag)
        mlflow.end_run("FINISHED")
        return CellResult(run.info.run_id, "FINISHED", metrics, report=report, outputs=outputs)
    except BaseException as exc:  # record, then decide: KeyboardInterrupt still propagates
        msg = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:500]
        mlflow.set_tags({"error": msg[:250], "error_type": type(exc).__name__})
        mlflow.log_text(traceback.format_exc(), "error.txt")
        mlflow.end_run("FAILED" if isinstance(exc, Exception) else "KILLED")
        if not isinstance(exc, Exception):
            raise
        return CellResult(run.info.run_id, "FAILED", error=msg)
    finally:
        if owns_engine and engine is not None:
            engine.close()


def evaluate(reg: Registry, model: str, dataset: str, **kw: Any) -> CellResult:
    """Plan and run one cell; the CLI's and MLproject's `evaluate`."""
    tracking.setup()
    plan = plan_cell(reg, model, dataset, **kw)
    return run_cell(plan)


__all__ = ["CellPlan", "CellResult", "CellUnavailable", "evaluate", "plan_cell", "run_cell"]


# -- categories -----------------------------------------------------------------------------

KIND_TAG = tracking.KIND_TAG


@dataclass
class CategoryResult:
    parent_run_id: str
    rows: list[dict[str, Any]]  # one per cell: cell, status, main metric, tokens/s, memory, run id
    exit_code: int  # 0 when every runnable cell finished


def _existing_runs(digest: str) -> tuple[str | None, dict[str, Any]]:
    """The parent run of an earlier identical invocation and its children by config hash."""
    client = mlflow.MlflowClient()
    exp_id = mlflow.tracking.fluent._get_experiment_id()
    parents = client.search_runs([exp_id], f"tags.`{KIND_TAG}` = 'category' and tags.plan_digest = '{digest}'",
                                 order_by=["attributes.start_time DESC"], max_results=1)
    if not parents:
        return None, {}
    parent = parents[0].info.run_id
    children: dict[str, Any] = {}
    for run in client.search_runs([exp_id], f"tags.`mlflow.parentRunId` = '{parent}'", max_results=10000):
        h = run.data.tags.get("config_hash")
        # Keep the best run per config: FINISHED beats anything else.
        if h and (h not in children or run.info.status == "FINISHED"):
            children[h] = run
    return parent, children


def _row(cell: Any, status: str, run_id: str = "", metrics: dict[str, float] | None = None,
         main: str | None = None, note: str = "") -> dict[str, Any]:
    metrics = metrics or {}
    return {"cell": cell.name, "role": cell.role, "status": status,
            "main_metric": main or "", "value": metrics.get(main) if main else None,
            "output_tokens_per_s": metrics.get("output_tokens_per_s"), "peak_rss_mb": metrics.get("peak_rss_mb"),
            "run_id": run_id, "note": note}


def run_category(cplan: Any, *, use_cache: bool = True, on_cell: Any = None) -> CategoryResult:
    """Run every runnable cell of a category plan under one parent run.

    Each model's engine starts once (lazily: a fully cached model never loads) and serves
    all its datasets; it is closed before the next model.  A re-run of the same invocation
    resumes: FINISHED cells with the same config hash are kept, interrupted or failed ones
    are redone in their own run, so no cell ever has two child runs.
    """
    from specbench.cache import CachingEngine, GenerationCache, cache_scope

    digest = cplan.digest()
    parent_id, children = _existing_runs(digest)
    # Under `mlflow run` the project's own run (MLFLOW_RUN_ID) is this invocation's parent,
    # unless an earlier identical invocation is being resumed.  Taken out of the environment
    # either way, or MLflow would hand it to the first nested start_run of a cell.
    launcher = os.environ.pop("MLFLOW_RUN_ID", None)
    parent_id = parent_id or launcher
    tags = {KIND_TAG: "category", "category": cplan.category, "plan_digest": digest,
            "git_commit": tracking.git_commit()}
    fresh = parent_id is None or parent_id == launcher
    parent = mlflow.start_run(run_id=parent_id, run_name=None if parent_id else f"category:{cplan.category}",
                              tags=tags)
    mlflow.set_tags(tags | ({"mlflow.runName": f"category:{cplan.category}"} if fresh else {}))
    if fresh:
        mlflow.log_params({f"option.{k}": v for k, v in cplan.options.items()} | {"category": cplan.category})
    mlflow.log_dict({"cells": [{"cell": c.name, "role": c.role, "needs": c.needs, "skip_reason": c.reason}
                               for c in cplan.cells]}, "plan.json")
    cache = GenerationCache() if use_cache else None
    rows: list[dict[str, Any]] = []
    counts = {"finished": 0, "failed": 0, "skipped": 0, "resumed": 0}
    try:
        for cell in cplan.skipped:
            rows.append(_row(cell, "skipped", note=cell.reason or ""))
            counts["skipped"] += 1
        by_model: dict[str, list[Any]] = {}
        for cell in cplan.runnable:
            by_model.setdefault(cell.model, []).append(cell)
        for cells in by_model.values():
            first = cells[0].plan
            engine = CachingEngine(lambda p=first: make_engine(p.engine, p.engine_params), cache,
                                   cache_scope(first), first.engine)
            try:
                for cell in cells:
                    h = tracking.config_hash(cell.plan.config())
                    old = children.get(h)
                    main = cell.plan.dataset.main_metric
                    if old is not None and old.info.status == "FINISHED":
                        rows.append(_row(cell, "finished", old.info.run_id, old.data.metrics, main, "resumed"))
                        counts["resumed"] += 1
                        counts["finished"] += 1
                    else:
                        res = run_cell(cell.plan, engine=engine, parent_run_id=parent.info.run_id,
                                       run_id=old.info.run_id if old is not None else None)
                        status = "finished" if res.status == "FINISHED" else "failed"
                        counts[status] += 1
                        rows.append(_row(cell, status, res.run_id, res.metrics, main, res.error or ""))
                    if on_cell:
                        on_cell(rows[-1])
            finally:
                engine.close()  # memory back before the next model
        ok = counts["failed"] == 0
        mlflow.log_metrics({f"cells_{k}": float(v) for k, v in counts.items()}
                           | {"cells_total": float(len(cplan.cells))})
        tracking.log_samples(rows, artifact_file="cells.json")
        mlflow.set_tag("exit_code", "0" if ok else "1")
        mlflow.end_run("FINISHED" if ok else "FAILED")
        return CategoryResult(parent.info.run_id, rows, 0 if ok else 1)
    except BaseException:
        mlflow.end_run("KILLED")
        raise
    finally:
        if cache is not None:
            cache.close()
