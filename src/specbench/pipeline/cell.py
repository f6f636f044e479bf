"""One evaluation cell: a plan in, one MLflow run out.

The cell is prepared (weights materialized, items loaded, prompts rendered), answered in
one batched engine call and scored, through the one pipeline (``pipeline.task``); tracking
records it all in one run, which is open while the engine works so MLflow's system metrics
cover generation.  A failure ends the run FAILED with the error recorded and is returned,
never raised, so a caller's other cells go on.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from specbench import tracking
from specbench.engines import WEIGHT_KEYS, Engine, PeakRSS, make_engine, with_weights
from specbench.pipeline import lmeval_io
from specbench.pipeline import task as pipeline
from specbench.pipeline.judge import check_judgments, judge_answers, same_engine, start_judge
from specbench.pipeline.plan import CellPlan
from specbench.types import ScoreReport
from specbench.weights import ResolvedModel, cache_dir, materialize


@dataclass
class CellResult:
    run_id: str
    status: str  # FINISHED | FAILED
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    report: ScoreReport | None = None
    outputs: list[Any] = field(default_factory=list)


# What a cell measures of its engine (not of its answers): carried over to a cell whose answers
# all come from the generation cache, from the run that generated them.
PERF_METRICS = ("output_tokens", "prompt_tokens", "output_tokens_per_s", "total_tokens_per_s", "requests_per_s",
                "generation_s", "latency_mean_s", "peak_rss_mb", "kv_cache_tokens", "gpu_used_mb", "gpu_peak_mb",
                "images_per_s", "cost_usd", "gpu_process_mb")
log = logging.getLogger("specbench.cell")  # on screen under quiet_screen (specbench's own warnings)
SAMPLE_IMAGES = 4  # samples logged with their images (sample_images.json); samples.json names every image


def _image_rows(rows: list[dict[str, Any]], images: list[list[Any]]) -> list[dict[str, Any]]:
    """The first few samples that have an image, each with its (first) image beside its answer."""
    out = [{"image": imgs[0], **{k: v for k, v in row.items() if k in ("id", "output", "extracted", "reference")
                                 or k.startswith("score.")}}
           for row, imgs in zip(rows, images, strict=True) if imgs]
    return out[:SAMPLE_IMAGES]


def _encoder_tags(plan: CellPlan, prepared: pipeline.Prepared) -> dict[str, str]:
    """How an encoder answered (its own head, or a probe fitted on which split); nothing for generative models."""
    if not plan.task.probe:
        return {}
    if plan.task.head:
        return {"encoder.method": "head"}
    return {"encoder.method": "probe", "probe.train": prepared.train_source,
            "probe.train_items": str(len(prepared.train))}


def _figures_from(engine: Engine, origin: str, run: tracking.RunHandle) -> dict[str, float]:
    """The figures of the run that generated every answer of this cell, marked as such on the
    run: the same metric keys as a measured cell, and ``--no-cache`` measures them afresh."""
    figures = engine.figures_of(origin)
    if figures:
        run.set_tags({"figures_from": origin, "figures": "cached: measured by the run that generated these "
                      "outputs (figures_from); --no-cache measures this cell"})
    return figures


def _grade(plan: CellPlan, engine: Engine, grader: Engine | None, prepared: pipeline.Prepared,
           answered: pipeline.Answered) -> tuple[list[Any], dict[str, float]]:
    """A judged cell's answers graded: by an endpoint judge connected before the answers were made
    (``grader``), by the cell's own engine when the judge is that very model and engine (SmolLM2
    judging SmolLM2 here), else by the judge's engine, started now and closed after."""
    judge = plan.judge
    assert judge is not None
    own = grader is None and same_engine(judge, plan.model.key, plan.weights.revision, plan.engine,
                                         plan.engine_params)
    started = None if grader is not None or own else start_judge(judge)
    try:
        return judge_answers(judge, grader or started or engine, prepared.items, answered.outputs,
                             judge.model.instruct)
    finally:
        if started is not None:
            started.close()


def materialize_weights(plan: CellPlan) -> ResolvedModel:
    """The plan's weights on local disk (converted or downloaded once); a remote engine's as planned."""
    return plan.weights if plan.remote else materialize(plan.model, plan.weights)


def engine_params(plan: CellPlan, weights: ResolvedModel) -> dict[str, Any]:
    """The planned engine arguments pointed at the materialized weights."""
    return plan.engine_params if plan.remote else with_weights(plan.engine_params, weights.path)


def cache_scope(plan: CellPlan, weights: ResolvedModel) -> dict[str, Any]:
    """The generation cache's scope for this plan's engine (see ``engines.cache.cache_scope``)."""
    from specbench.engines.cache import cache_scope as scope
    from specbench.registry import to_plain

    return scope(plan.model.hf_id or plan.model.key, weights.revision, plan.engine, engine_params(plan, weights),
                 {"name": plan.preset_name, **to_plain(plan.preset)})


def start_engine(plan: CellPlan, **options: Any) -> Engine:
    """Materialize the plan's weights and start its engine (options: e.g. ``base_url``)."""
    return make_engine(plan.engine, engine_params(plan, materialize_weights(plan)), **options)


def cell_tags(plan: CellPlan) -> dict[str, str]:
    return {"model": plan.model.key, "dataset": plan.dataset.key, "category": plan.category or "",
            "role": plan.role, "engine": plan.engine, "preset": plan.preset_name,
            "config_hash": plan.config_hash(), "model_source": plan.weights.source, "data_source": plan.data.kind,
            **({"partial_split": plan.partial_split} if plan.partial_split else {}), **plan.quantization_tags,
            **(plan.judge.tags() if plan.judge else {})}


def portable_path(value: Any) -> Any:
    """A weights' location as a run may record it: under the cache as ``cache:<relative path>``, any
    other local path as its last part only (``local:<name>``); hub ids and URLs as they are.  A run's
    params never hold this machine's absolute paths, and the same cell planned elsewhere logs the same."""
    if not isinstance(value, str) or not os.path.isabs(value):
        return value
    path, cache = Path(value), cache_dir().resolve()
    try:
        return f"cache:{path.resolve().relative_to(cache)}"
    except ValueError:
        return f"local:{path.name}"


def cell_params(plan: CellPlan) -> dict[str, Any]:
    m, d = plan.model, plan.dataset
    engine = {k: portable_path(v) if k in WEIGHT_KEYS else v for k, v in plan.engine_params.items()}
    return {
        **tracking.flatten(plan.engine, engine), **tracking.flatten("sampling", plan.gen.as_dict()),
        "model.key": m.key, "model.hf_id": m.hf_id, "model.revision": plan.weights.revision,
        "model.parameters_b": m.parameters_b, "model.quantization": m.quantization.value,
        "model.dtype": m.dtype.value, "model.license": m.license,
        "dataset.key": d.key, "dataset.hub_path": d.hub_path, "dataset.split": d.split, "dataset.revision": d.revision,
        "dataset.task_type": d.task_type.value, "prompt.fewshot": d.prompt.fewshot if d.prompt else 0,
        "prompt.chat_template": plan.chat, "preset": plan.preset_name, "seed": plan.seed,
        "samples": plan.samples or "all",
    }


def run_cell(plan: CellPlan, *, engine: Engine | None = None, parent_run_id: str | None = None,
             run_id: str | None = None, extra_tags: dict[str, str] | None = None,
             engine_options: dict[str, Any] | None = None, experiment: str | None = None,
             extra_params: dict[str, Any] | None = None) -> CellResult:
    """Evaluate one cell inside one MLflow run (a child of ``parent_run_id``; ``run_id``
    reopens the run an interrupted invocation left behind, so a cell never has two runs).

    With ``engine`` the caller's engine answers (a category shares one per model); otherwise
    the cell materializes its weights, starts its own engine and closes it afterwards."""
    owns_engine = engine is None
    run: tracking.RunHandle | None = None
    grader: Engine | None = None  # an endpoint judge, reached before the answers are made
    try:
        with tracking.open_run("cell", name=plan.name, tags={**cell_tags(plan), **(extra_tags or {})},
                               params={**cell_params(plan), **(extra_params or {})}, parent=parent_run_id,
                               resume=run_id, experiment=experiment, system_metrics=True) as run:
            if run.resumed:  # a run that failed before: its old error no longer applies
                run.delete_tags(["error", "error_type"])
            run.log_dict(plan.config(), "config.json")
            run.log_dict(tracking.package_versions(), "environment.json")
            prepared = pipeline.prepare(plan.task, plan.samples, offline=plan.data.kind == "slice")
            loaded = prepared.loaded
            run.log_dataset(loaded.hf_dataset, plan.dataset.key, loaded.source, loaded.digest)
            run.set_tags({"dataset_digest": loaded.digest, "data_offline": str(loaded.offline),
                          **_encoder_tags(plan, prepared)})
            # unreachable, an endpoint judge fails the cell before any answer is made
            grader = start_judge(plan.judge) if plan.judge is not None and plan.judge.remote else None
            with PeakRSS() as rss:
                if engine is None:
                    engine = start_engine(plan, **(engine_options or {}))
                engine.attribute(run.run_id)  # a cache records this run as the outputs' origin
                engine.engine_metrics()  # drops what calls outside this cell left (a shared engine)
                before = engine.stats()
                answered = pipeline.answer_prepared(prepared, engine)
            after = engine.stats()
            if after.version:  # a tag, not a param: a cell resumed under another vLLM must not clash with it
                run.set_tags({f"{plan.engine}.version": after.version})
            served = engine.engine_metrics()  # the engine's own figures (vllm_*) over this cell's calls
            outputs, judged = answered.outputs, {}
            if plan.judge is not None:  # a judged dataset: the judge grades every turn
                outputs, judged = _grade(plan, engine, grader, prepared, answered)
            run.set_tags(pipeline.isolation_tags(plan.dataset))  # before scoring: a refused cell records it too
            t0 = time.perf_counter()
            report = pipeline.score(plan.task, prepared.items, outputs)
            metrics: dict[str, float | None] = {
                **report.metrics, **answered.figures, **judged, "scoring_s": time.perf_counter() - t0,
                "n_samples": len(prepared.items), "peak_rss_mb": rss.peak_mb, **engine.memory(), **served,
                "cache_hits": after.cache_hits - before.cache_hits}
            prices = plan.model.price_per_mtok  # an endpoint's list prices: what these tokens cost
            if prices and answered.figures.get("prompt_tokens") is not None:
                metrics["cost_usd"] = prices.cost_usd(answered.figures["prompt_tokens"] or 0, answered.output_tokens)
            if owns_engine or (not before.started and after.started):
                metrics["model_load_s"] = after.load_s  # this cell paid for the engine start
            hits = after.cache_hits - before.cache_hits
            if hits == 0:  # measured here: what a cell answered from these outputs will carry
                engine.remember_figures(run.run_id, {k: v for k, v in metrics.items()
                                                     if k in PERF_METRICS or k in served})
            elif after.served_by and after.served_by != run.run_id:
                metrics.update(_figures_from(engine, after.served_by, run))
            logged = run.log_metrics(metrics)
            rows = pipeline.sample_rows(prepared.items, prepared.prompts, outputs, report, prepared.failures)
            run.log_table(rows)
            run.log_sample_traces(rows, [s.detail for s in report.samples],  # MLflow's per-sample review
                                  tags={"model": plan.model.key, "dataset": plan.dataset.key})
            if prepared.images:  # a handful of samples with their images, for the UI
                run.log_image_table(_image_rows(rows, prepared.images))
            if plan.dataset.lm_eval_task:  # lm-eval's results and samples files, for lm-eval tooling
                for path, text in lmeval_io.cell_files(plan, prepared.items, prepared.prompts, answered.outputs,
                                                       report, tracking.git_commit()).items():
                    run.log_text(text, path)
            run.set_tags({"main_metric": plan.dataset.main_metric})
            if plan.judge is not None and (warning := check_judgments(plan.judge, report)):  # after the table
                run.set_tags({"judge.warning": warning})
                log.warning("%s: %s", plan.name, warning)
        return CellResult(run.run_id, tracking.FINISHED, logged, report=report, outputs=outputs)
    except Exception as exc:  # recorded on the run by open_run; the caller's other cells go on
        if run is None:  # the run itself could not be opened: nothing to record it on
            raise
        return CellResult(run.run_id, tracking.FAILED, error=tracking.error_line(exc))
    finally:
        if owns_engine and engine is not None:
            engine.close()
        if grader is not None:
            grader.close()
