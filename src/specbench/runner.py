"""One evaluation cell: model x dataset -> engine -> scores -> one MLflow run.

The data flows one way: registry facts and a preset give the plan (engine arguments,
sampling parameters, config hash); the data layer gives items and prompts; the engine
answers them in one batched call; the scorers grade them; tracking records it all.
The run is open while the engine works, so MLflow's system metrics cover generation.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import mlflow

from specbench import data, scoring, tracking
from specbench.config import to_plain as _plain
from specbench.config import DatasetConfig, ModelConfig, PresetConfig, Status, TaskType
from specbench.engines import Engine, GenParams, PeakRSS, make_engine, planned_params
from specbench.registry import Registry, RegistryError
from specbench.types import ChoiceScores, Item, ScoreReport
from specbench.weights import ModelUnavailable, ResolvedModel, gpu_count, resolve

GENERATIVE = {TaskType.generate, TaskType.code_exec, TaskType.open_qa}


class CellUnavailable(RuntimeError):
    """The cell cannot run here (planned dataset, unrunnable model); one line of reason."""


@dataclass
class CellPlan:
    """Everything a cell will do, decided before any engine starts."""

    model: ModelConfig
    dataset: DatasetConfig
    preset_name: str
    preset: PresetConfig
    engine: str
    resolved: ResolvedModel
    engine_params: dict[str, Any]
    gen: GenParams
    samples: int | None
    seed: int
    category: str | None
    role: str

    @property
    def loglik(self) -> bool:
        """Multiple-choice style datasets are scored by log-likelihood, never generated."""
        return self.dataset.task_type not in GENERATIVE and any(
            s.startswith("mc_") for s in self.dataset.scorers)

    @property
    def chat(self) -> bool:
        return self.model.instruct and not self.loglik

    def config(self) -> dict[str, Any]:
        """The resolved configuration; its hash identifies the experiment (paths excluded)."""
        engine = {k: v for k, v in self.engine_params.items() if k not in ("model", "tokenizer")}
        return {
            "model": _plain(self.model), "model_revision": self.resolved.revision,
            "dataset": _plain(self.dataset), "preset": {"name": self.preset_name, **_plain(self.preset)},
            "engine": {"kind": self.engine, **engine}, "sampling": self.gen.as_dict(),
            "samples": self.samples, "seed": self.seed, "chat": self.chat,
        }


@dataclass
class CellResult:
    run_id: str
    status: str  # FINISHED | FAILED
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    report: ScoreReport | None = None
    outputs: list[Any] = field(default_factory=list)


def plan_cell(reg: Registry, model_key: str, dataset_key: str, *, preset: str | None = None,
              engine: str = "vllm", samples: int | None = None, seed: int = 0,
              category: str | None = None) -> CellPlan:
    """Resolve names, weights and engine arguments; raise CellUnavailable with the reason."""
    model = reg.model(model_key)
    dataset = reg.dataset(dataset_key)
    preset_name = preset or model.preset
    preset_cfg = reg.preset(preset_name)
    if dataset.status != Status.ready:
        raise CellUnavailable(f"dataset {dataset.key} is planned: {dataset.planned_reason}")
    if engine != "openai":
        try:
            resolved = resolve(model)
        except ModelUnavailable as exc:
            raise CellUnavailable(str(exc)) from None
    else:
        resolved = ResolvedModel(path=model.hf_id or model.key, revision=model.revision, source="remote")
    prompt = dataset.prompt
    assert prompt is not None
    gen = GenParams(max_new_tokens=prompt.max_new_tokens, stop=tuple(prompt.stop), seed=seed)
    if category is None:
        cats = reg.categories_of(model.key)
        category = cats[0] if cats else model.category
    return CellPlan(
        model=model, dataset=dataset, preset_name=preset_name, preset=preset_cfg, engine=engine,
        resolved=resolved, engine_params=planned_params(engine, model, preset_cfg, resolved, seed),
        gen=gen, samples=samples, seed=seed, category=category, role=reg.role(model.key, category),
    )


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
    figures = {
        "generation_s": wall,
        "output_tokens": gen.output_tokens,
        "prompt_tokens": gen.prompt_tokens,
        "output_tokens_per_s": gen.output_tokens / wall if wall else None,
        "total_tokens_per_s": (gen.output_tokens + gen.prompt_tokens) / wall if wall else None,
        "requests_per_s": len(prompts) / wall if wall else None,
    }
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
             run_name: str | None = None, extra_tags: dict[str, str] | None = None) -> CellResult:
    """Evaluate one cell inside one MLflow run.  A failure ends the run FAILED with the
    error recorded and is returned, never raised, so a caller's other cells go on."""
    cfg = plan.config()
    tags = {
        "model": plan.model.key, "dataset": plan.dataset.key, "category": plan.category or "",
        "role": plan.role, "engine": plan.engine, "preset": plan.preset_name,
        "git_commit": tracking.git_commit(), "config_hash": tracking.config_hash(cfg),
        "model_source": plan.resolved.source, **(extra_tags or {}),
    }
    run = mlflow.start_run(run_name=run_name or f"{plan.model.key}@{plan.dataset.key}", tags=tags,
                           nested=parent_run_id is not None, parent_run_id=parent_run_id,
                           log_system_metrics=True)
    owns_engine = engine is None
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
        t0 = time.perf_counter()
        report = scoring.score(plan.dataset, loaded.items, outputs)
        scoring_s = time.perf_counter() - t0

        metrics = {**report.metrics, **figures, "scoring_s": scoring_s, "n_samples": len(loaded.items),
                   "peak_rss_mb": rss.peak_mb, **engine.memory()}
        if owns_engine:
            metrics["model_load_s"] = engine.load_s
        metrics = tracking.clean_metrics(metrics)
        mlflow.log_metrics(metrics)
        tracking.log_samples(_sample_rows(loaded.items, prompts, outputs, report))
        mlflow.set_tag("main_metric", plan.dataset.main_metric)
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


__all__ = ["CellPlan", "CellResult", "CellUnavailable", "RegistryError", "evaluate", "gpu_count",
           "plan_cell", "run_cell"]
