"""`specbench evaluate | score | run category`: cells and categories through ``specbench.pipeline``."""

from __future__ import annotations

import argparse
import json

from rich.markup import escape

from specbench.cli.common import (
    UsageError,
    add_endpoint_args,
    blank_is_none,
    boolean,
    csv_list,
    emit,
    endpoint_options,
    err,
    out,
    print_metrics,
    samples_arg,
    seed_arg,
)
from specbench.redact import redact_url
from specbench.registry import Registry


def cmd_evaluate(reg: Registry, args: argparse.Namespace) -> int:
    """One model on one or more datasets, a run per cell: every cell is planned before anything
    runs, then all are answered by ONE engine, started on first use (``--datasets a,b,c``).  The
    model is a registry key, or an ad-hoc checkpoint (``hf:ORG/NAME`` or a folder, ``registry.adhoc``)."""
    from specbench import pipeline, tracking
    from specbench.engines.cache import CachingEngine
    from specbench.registry.adhoc import model_for

    if not args.dataset:
        raise UsageError("give --dataset NAME (or --datasets a,b,c)")
    model, adhoc = model_for(reg, args.model)
    pull_tuned(reg, args.preset, [model.key])
    if args.engine is None:  # the model's preferred engine (an encoder's, BioGPT's transformers), else vLLM
        args.engine = model.engines[0] if model.engines else "vllm"
    plans: list[pipeline.CellPlan] = []
    for name in args.dataset:
        try:  # the weights are located once, for the first cell, and shared by the others
            plans.append(pipeline.plan_cell(reg, model, name, preset=args.preset, engine=args.engine,
                                            samples=args.samples, seed=args.seed, slice_policy=args.slice_policy,
                                            weights=plans[0].weights if plans else None, judge=args.judge,
                                            judge_engine=args.judge_engine))
        except pipeline.CellUnavailable as exc:
            raise UsageError(f"cannot evaluate {args.model}@{name}: {exc}") from None
    plans = _configured(plans, args)  # the endpoint's options; multiple choice by generation where declared
    warn_partial([p.partial_split for p in plans if p.partial_split])
    warn_embedded_judge(plans)
    if adhoc is not None:
        err.print(f"ad hoc model {adhoc.source}: " + ", ".join(f"{k}={v}" for k, v in adhoc.facts.items()
                                                                if k not in ("source", "path")), highlight=False)
    engine_options: dict = {}  # how the engine starts (e.g. an endpoint's address)
    first = plans[0]
    engine = CachingEngine(lambda: pipeline.start_engine(first, **engine_options), None, {}, first.engine)
    uri, failed = tracking.tracking_uri(), 0
    try:
        for plan in plans:
            result = pipeline.run_cell(plan, engine=engine, experiment=args.experiment,
                                       extra_tags=adhoc.tags if adhoc else None,
                                       extra_params=adhoc.params if adhoc else None)
            print_metrics(f"{plan.model.key}@{plan.dataset.key}", result.metrics, plan.dataset.main_metric)
            out.print(f"run {result.run_id} {result.status} in {redact_url(uri)}")
            if result.status != "FINISHED":
                err.print(f"[red]error[/red]: {escape(result.error or '')}", highlight=False)
                failed += 1
    finally:
        engine.close()
    if len(plans) > 1:
        out.print(f"{len(plans) - failed}/{len(plans)} cells finished, all on one engine")
    return 1 if failed else 0


def add_judge_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("judged datasets (mt_bench; docs/judges.md)")
    g.add_argument("--judge", type=blank_is_none, default=None, metavar="MODEL",
                   help="registry model that grades judged datasets (default: each dataset's judge)")
    g.add_argument("--judge-engine", type=blank_is_none, default=None, metavar="ENGINE",
                   help="the judge's engine, e.g. openai for an endpoint entry (default: its first listed)")
    g.add_argument("--judge-base-url", type=blank_is_none, default=None,
                   help="an endpoint judge's address, e.g. http://host:8000/v1 (default: $OPENAI_BASE_URL)")
    g.add_argument("--judge-api-key-env", type=blank_is_none, default=None,
                   help="environment variable holding the endpoint judge's API key (never logged)")


def _configured(plans: list, args: argparse.Namespace) -> list:
    """The plans with the command line's endpoint options (``pipeline.endpoint``)."""
    from specbench.pipeline import CellUnavailable
    from specbench.pipeline.endpoint import configure

    opts = endpoint_options(args)
    try:
        return [configure(p, opts) for p in plans]
    except CellUnavailable as exc:
        raise UsageError(f"cannot evaluate {args.model}: {exc}") from None


def cmd_score(reg: Registry, args: argparse.Namespace) -> int:
    from specbench.pipeline import PredictionsError, rescore

    try:
        report, n = rescore(reg, args.dataset, args.predictions, log=args.log, experiment=args.experiment)
    except PredictionsError as exc:
        raise UsageError(str(exc)) from None
    if args.format == "json":
        print(json.dumps(report.metrics, indent=2))
    else:
        print_metrics(f"{args.dataset}: {n} predictions", report.metrics, reg.dataset(args.dataset).main_metric)
    return 0


def cmd_run_category(reg: Registry, args: argparse.Namespace) -> int:
    from specbench import pipeline, tracking
    from specbench.pipeline.endpoint import configure_category
    from specbench.pipeline.executors import ExecutorError, executor_names, make_executor

    if args.executor not in executor_names():  # checked before planning: a dry run refuses it too
        raise UsageError(f"--executor {args.executor}: valid: {', '.join(executor_names())}")

    def plan() -> pipeline.CategoryPlan:
        return pipeline.plan_category(reg, args.name, preset=args.preset, engine=args.engine, samples=args.samples,
                                      seed=args.seed, models=args.models, datasets=args.datasets,
                                      baselines=args.baselines, secondary=args.secondary,
                                      slice_policy=args.slice_policy, judge=args.judge,
                                      judge_engine=args.judge_engine)

    cplan = plan()
    if pull_tuned(reg, args.preset, [c.model for c in cplan.cells]):  # the team server had presets conf/ lacks
        cplan = plan()
    cplan = configure_category(cplan, endpoint_options(args))
    _print_plan(cplan)
    warn_partial(cplan.partial_splits())
    if args.dry_run:
        return 0
    executor = make_executor(args.executor, **({"address": args.ray_address} if args.executor == "ray" else {}))
    try:
        executor.start()  # an unreachable cluster: one line, exit 2, before any run is opened
    except ExecutorError as exc:
        raise UsageError(str(exc)) from None
    uri = tracking.setup(args.experiment)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err) as progress:
        task = progress.add_task(f"{cplan.category}: cells", total=len(cplan.runnable))
        result = pipeline.run_category(cplan, use_cache=not args.no_cache, experiment=args.experiment,
                                       executor=executor, on_cell=lambda row: progress.update(
                                           task, advance=1, description=f"{row['cell']}: {row['status']}"))
    emit(result.rows, ["cell", "role", "status", "main_metric", "value", "output_tokens_per_s", "peak_rss_mb",
                       "run_id", "note"], "table", f"category {cplan.category} (parent run {result.parent_run_id})")
    out.print(f"open the runs: {redact_url(tracking.ui_command())}  (store {redact_url(uri)})")
    return result.exit_code


def pull_tuned(reg: Registry, preset: str | None, model_keys: list[str]) -> bool:
    """``--preset tuned`` for models whose conf/ has no tuned preset: the newest one a sweep published
    on the tracking server (docs/sweeps.md, *Shared tuned presets*), for this command only."""
    from specbench.pipeline.plan import TUNED

    if preset != TUNED:
        return False
    from specbench.sweep.preset import pull_tuned_presets

    found = pull_tuned_presets(reg, model_keys)
    for key, origin in found.items():
        err.print(f"tuned preset of {escape(key)}: fetched from {escape(origin)}", highlight=False)
    return bool(found)


def warn_partial(notes: list[str]) -> None:
    """Loudly, before anything runs: cells that read only an offline slice of their split."""
    for note in notes:
        err.print(f"[bold yellow]warning[/bold yellow]: {note} (--slice-policy fail refuses such cells)",
                  highlight=False, soft_wrap=True)


def _print_plan(cplan) -> None:
    rows = [{"cell": c.name, "role": c.role, "engine": c.engine, "gpus": c.needs["gpus"],
             "tp": c.needs["tensor_parallel"], "pp": c.needs["pipeline_parallel"], "backend": c.needs["backend"],
             "gpus_req": c.needs["gpus_requested"], "weights_gb": c.needs["weights_gb"],
             "mem/gpu_gb": c.needs["memory_per_gpu_gb"], "status": "runnable" if c.reason is None else "skip"}
            for c in cplan.cells]
    emit(rows, ["cell", "role", "engine", "gpus", "tp", "pp", "backend", "gpus_req", "weights_gb", "mem/gpu_gb",
                "status"], "table",
          f"plan {cplan.category}: {len(cplan.runnable)} runnable, {len(cplan.skipped)} skipped "
          f"(digest {cplan.digest()})")
    reasons: dict[str, list[str]] = {}
    for c in cplan.skipped:  # one line per reason, unwrapped, whatever the terminal width
        reasons.setdefault(c.reason or "", []).append(c.name)
    for reason, cells in reasons.items():
        print(f"skip {', '.join(cells)}: {reason}")
    warn_embedded_judge([c.plan for c in cplan.runnable])


def warn_embedded_judge(plans: list) -> None:
    """Say loudly which judged cells a stand-in judge grades (plumbing, not a judged score)."""
    stand_ins: dict[str, list[str]] = {}
    for plan in plans:
        if plan is not None and plan.judge is not None and plan.judge.embedded:
            stand_ins.setdefault(plan.judge.tags()["judge.note"], []).append(plan.name)
    for note, cells in stand_ins.items():
        err.print(f"[yellow]warning[/yellow]: {', '.join(cells)} {escape(note)} (--judge names another judge)",
                  highlight=False)


def add_commands(sub: argparse._SubParsersAction) -> None:
    from specbench.engines import engine_names

    rp = sub.add_parser("run", help="run a whole category: its models and baselines x its datasets")
    rsub = rp.add_subparsers(dest="what", required=True)
    cp = rsub.add_parser("category", help="one parent MLflow run, one child run per cell")
    cp.add_argument("name")
    cp.add_argument("--preset", type=blank_is_none, default=None, help="engine preset (default: each model's)")
    cp.add_argument("--samples", type=samples_arg, default=None, help="first N items of each dataset")
    cp.add_argument("--engine", choices=engine_names(), default="vllm")
    cp.add_argument("--seed", type=seed_arg, default=0)
    cp.add_argument("--models", type=csv_list, default=None, help="comma-separated subset of the category's models")
    cp.add_argument("--datasets", type=csv_list, default=None, help="comma-separated subset of its datasets")
    cp.add_argument("--baselines", type=boolean, default=True, help="include generalist baselines (default true)")
    cp.add_argument("--secondary", type=boolean, default=False, help="include secondary datasets")
    cp.add_argument("--dry-run", type=boolean, nargs="?", const=True, default=False,
                    help="print the plan and what each cell needs; load nothing")
    cp.add_argument("--no-cache", action="store_true", help="do not reuse cached generations")
    cp.add_argument("--slice-policy", choices=["warn", "fail"], default="warn",
                    help="a cell that would read only an offline slice of its split (no hub): warn loudly "
                         "(default) or refuse it")
    cp.add_argument("--experiment", default=None)
    cp.add_argument("--executor", default="local",
                    help="where cells run: local (one model after another here) or ray (one actor per model on a "
                         "Ray cluster; docs/ray.md)")
    cp.add_argument("--ray-address", type=blank_is_none, default=None,
                    help="the Ray cluster with --executor ray, e.g. auto or ray://head:10001 (default: $RAY_ADDRESS, "
                         "else a local cluster started for this command)")
    add_judge_arguments(cp)
    add_endpoint_args(cp)
    cp.set_defaults(func=cmd_run_category)

    ep = sub.add_parser("evaluate", help="evaluate one model on one or more datasets, one MLflow run per dataset")
    ep.add_argument("--model", required=True,
                    help="a registry key, or a model with no entry: hf:ORG/NAME[@REVISION] or a checkpoint folder")
    ep.add_argument("--dataset", "--datasets", dest="dataset", type=csv_list, required=True,
                    help="a dataset, or several comma-separated (one engine start serves them all)")
    ep.add_argument("--samples", type=samples_arg, default=None, help="first N items (default: all)")
    ep.add_argument("--preset", type=blank_is_none, default=None, help="engine preset (default: the model's)")
    ep.add_argument("--engine", choices=engine_names(), default=None,
                    help="default: the first engine the model's registry entry lists, else vllm")
    ep.add_argument("--seed", type=seed_arg, default=0)
    ep.add_argument("--slice-policy", choices=["warn", "fail"], default="warn",
                    help="a cell that would read only an offline slice of its split (no hub): warn loudly "
                         "(default) or refuse it")
    ep.add_argument("--experiment", default=None, help="MLflow experiment (default: specbench)")
    add_judge_arguments(ep)
    add_endpoint_args(ep)
    ep.set_defaults(func=cmd_evaluate)

    sp = sub.add_parser("score", help="re-score saved outputs without a model")
    sp.add_argument("--dataset", required=True)
    sp.add_argument("--predictions", required=True, help="JSONL of {id, output} or a run's samples.json")
    sp.add_argument("--log", action="store_true", help="record the scores as an MLflow run")
    sp.add_argument("--experiment", default=None)
    sp.add_argument("--format", choices=["table", "json"], default="table")
    sp.set_defaults(func=cmd_score)
