"""`specbench` command line: a thin shell over registry, runner and scoring.

Every user error ends as one line on stderr and exit code 2; nothing here holds logic
that another module should own.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from specbench.registry.schema import to_plain as _plain
from specbench.registry import Registry, RegistryError, load_registry

# Piped output (logs, CI, `mlflow run`) gets a wide console rather than rich's 80 columns.
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)

USAGE_ERROR = 2


class UsageError(Exception):
    """Bad input from the command line; printed as one line, exit 2."""


# -- helpers ------------------------------------------------------------------------------

def _emit(rows: list[dict[str, Any]], columns: list[str], fmt: str, title: str) -> None:
    if fmt == "json":
        print(json.dumps(rows, indent=2, default=str))
        return
    table = Table(title=title, show_lines=False)
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*("" if r.get(c) is None else str(r.get(c)) for c in columns))
    out.print(table)


_SIZE = re.compile(r"^\s*(<=|>=|<|>)?\s*([0-9.]+)\s*(?:-\s*([0-9.]+))?\s*[bB]?\s*$")


def size_filter(expr: str):
    """'7', '<=8', '>30', '3-8' (billions of parameters) -> predicate."""
    m = _SIZE.match(expr)
    if not m:
        raise UsageError(f"--size '{expr}': expected a number of billions like 7, <=8, >30 or 3-8")
    op, a, b = m.group(1), float(m.group(2)), m.group(3)
    if b is not None:
        lo, hi = a, float(b)
        return lambda p: lo <= p <= hi
    return {
        None: lambda p: abs(p - a) < 0.5 or (a < 1 and abs(p - a) < 0.1),
        "<": lambda p: p < a, "<=": lambda p: p <= a, ">": lambda p: p > a, ">=": lambda p: p >= a,
    }[op]


# -- list / show / mapping / validate ----------------------------------------------------

def cmd_list(reg: Registry, args: argparse.Namespace) -> int:
    what = args.what
    if what == "models":
        models = list(reg.models.values())
        if args.category:
            cat = reg.category(args.category)
            keep = set(cat.models) | set(cat.baselines) if args.baselines else set(cat.models)
            models = [m for m in models if m.key in keep or m.category == cat.key]
        if args.size:
            pred = size_filter(args.size)
            models = [m for m in models if m.parameters_b is not None and pred(m.parameters_b)]
        if args.license:
            models = [m for m in models if args.license.lower() in m.license.lower()]
        rows = [{
            "key": m.key, "name": m.display_name, "hf_id": m.hf_id or "(api only)",
            "params_b": m.parameters_b, "size_gb": m.size_gb, "license": m.license,
            "category": m.category, "tp": m.tensor_parallel_size, "gated": m.gated,
            "quantization": m.quantization.value, "priority": m.priority.value,
        } for m in models]
        if args.format == "json":
            rows = [_plain(m) for m in models]
        _emit(rows, ["key", "name", "hf_id", "params_b", "license", "category", "tp", "gated",
                     "quantization"], args.format, f"{len(rows)} models")
    elif what == "datasets":
        dsets = list(reg.datasets.values())
        if args.category:
            cat = reg.category(args.category)
            keep = set(cat.datasets.primary) | set(cat.datasets.secondary)
            dsets = [d for d in dsets if d.key in keep]
        if args.license:
            dsets = [d for d in dsets if args.license.lower() in d.license.lower()]
        rows = [{
            "key": d.key, "hub_path": d.hub_path, "task_type": d.task_type.value,
            "samples": d.samples, "status": d.status.value, "main_metric": d.main_metric,
            "license": d.license, "offline": "yes" if d.offline_slice else "",
        } for d in dsets]
        if args.format == "json":
            rows = [_plain(d) for d in dsets]
        _emit(rows, ["key", "hub_path", "task_type", "samples", "status", "main_metric", "license",
                     "offline"], args.format, f"{len(rows)} datasets")
    else:
        cats = list(reg.categories.values())
        rows = [{
            "key": c.key, "name": c.display_name, "group": c.group, "models": len(c.models),
            "baselines": ", ".join(c.baselines), "primary": ", ".join(c.datasets.primary),
            "aliases": ", ".join(c.aliases),
        } for c in cats]
        if args.format == "json":
            rows = [_plain(c) for c in cats]
        _emit(rows, ["key", "name", "group", "models", "baselines", "primary", "aliases"], args.format,
              f"{len(rows)} categories")
    return 0


def cmd_show(reg: Registry, args: argparse.Namespace) -> int:
    obj = {"model": reg.model, "dataset": reg.dataset, "category": reg.category}[args.what](args.name)
    data = _plain(obj)
    if args.what == "model":
        data["can_generate"] = obj.can_generate
        data["member_of"] = reg.categories_of(obj.key)
        if obj.recipe is not None:  # a derived model: is its checkpoint there yet?
            from specbench.weights import derived_dir, derived_manifest

            made = derived_manifest(obj)
            data["checkpoint"] = (f"{derived_dir(obj)} (awq:{made['digest']})" if made else
                                  f"none yet: run `specbench quantize --model {obj.parent}`")
    if args.format == "json":
        print(json.dumps(data, indent=2, default=str))
        return 0
    table = Table(title=f"{args.what} {obj.key}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for k, v in data.items():
        table.add_row(k, json.dumps(v) if isinstance(v, (dict, list)) else str(v))
    out.print(table)
    return 0


def mapping_rows(reg: Registry) -> list[dict[str, Any]]:
    rows = []
    for c in reg.categories.values():
        for tier in ("primary", "secondary"):
            for dk in getattr(c.datasets, tier):
                d = reg.datasets[dk]
                rows.append({
                    "category": c.key, "dataset": dk, "tier": tier, "samples": d.samples,
                    "status": d.status.value, "models": ", ".join(c.models),
                    "baselines": ", ".join(c.baselines),
                })
    return rows


def cmd_mapping(reg: Registry, args: argparse.Namespace) -> int:
    if args.format == "json":
        print(json.dumps(mapping_rows(reg), indent=2))
        return 0
    from rich.tree import Tree

    tree = Tree("[bold]category -> models -> datasets[/bold]")
    for c in reg.categories.values():
        ready = [d for d in c.datasets.primary + c.datasets.secondary if reg.datasets[d].status.value == "ready"]
        node = tree.add(f"[bold]{c.key}[/bold] ({c.display_name}; {len(c.models)} models, "
                        f"{len(ready)} ready datasets)")
        node.add("models: " + ", ".join(c.models))
        if c.baselines:
            node.add("baselines: " + ", ".join(c.baselines))
        for tier in ("primary", "secondary"):
            names = getattr(c.datasets, tier)
            if not names:
                continue
            t = node.add(tier)
            total = 0
            for dk in names:
                d = reg.datasets[dk]
                mark = "[green]ready[/green]" if d.status.value == "ready" else "[yellow]planned[/yellow]"
                t.add(f"{dk}: {d.samples:,} samples, {mark}")
                total += d.samples
            t.label = f"{tier} ({total:,} samples)"
    out.print(tree)
    return 0


def cmd_validate(reg: Registry, args: argparse.Namespace) -> int:
    from specbench.registry import check_scorers
    from specbench.scoring import METRICS

    check_scorers(reg, METRICS)
    out.print(f"[green]ok[/green]: {len(reg.models)} models, {len(reg.datasets)} datasets, "
              f"{len(reg.categories)} categories, {len(reg.presets)} presets in {reg.root}")
    return 0


# -- parser ---------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="specbench", description=__doc__.splitlines()[0])
    p.add_argument("--conf", help="conf/ directory (default: ./conf, or $SPECBENCH_CONF)")
    sub = p.add_subparsers(dest="cmd", required=True)

    lp = sub.add_parser("list", help="list models, datasets or categories")
    lp.add_argument("what", choices=["models", "datasets", "categories"])
    lp.add_argument("--category", help="only members of this category")
    lp.add_argument("--baselines", action="store_true", help="with --category: include its baselines")
    lp.add_argument("--size", help="parameters in billions: 7, <=8, >30, 3-8")
    lp.add_argument("--license", help="substring of the licence, e.g. apache")
    lp.add_argument("--format", choices=["table", "json"], default="table")
    lp.set_defaults(func=cmd_list)

    sp = sub.add_parser("show", help="show one model, dataset or category")
    sp.add_argument("what", choices=["model", "dataset", "category"])
    sp.add_argument("name")
    sp.add_argument("--format", choices=["table", "json"], default="table")
    sp.set_defaults(func=cmd_show)

    mp = sub.add_parser("mapping", help="category -> models -> datasets, with sample counts")
    mp.add_argument("--format", choices=["table", "json"], default="table")
    mp.set_defaults(func=cmd_mapping)

    vp = sub.add_parser("validate", help="validate every file under conf/")
    vp.set_defaults(func=cmd_validate)

    _add_eval_commands(sub)
    _add_quantize_command(sub)
    _add_sweep_command(sub)
    _add_compare_commands(sub)
    return p


def _samples(text: str) -> int | None:
    """--samples N (N >= 1), or 0/all for every item."""
    if text in ("0", "all", ""):
        return None
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got '{text}'")
    return n


def cmd_evaluate(reg: Registry, args: argparse.Namespace) -> int:
    from specbench import runner, tracking

    try:
        plan = runner.plan_cell(reg, args.model, args.dataset, preset=args.preset, engine=args.engine,
                                samples=args.samples, seed=args.seed)
    except runner.CellUnavailable as exc:
        raise UsageError(f"cannot evaluate {args.model}@{args.dataset}: {exc}") from None
    uri = tracking.setup(args.experiment)
    result = runner.run_cell(plan)
    _print_metrics(f"{plan.model.key}@{plan.dataset.key}", result.metrics, plan.dataset.main_metric)
    out.print(f"run {result.run_id} {result.status} in {uri}")
    if result.status != "FINISHED":
        err.print(f"[red]error[/red]: {result.error}", highlight=False)
        return 1
    return 0


def _print_metrics(title: str, metrics: dict[str, float], main: str | None = None) -> None:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k in sorted(metrics, key=lambda k: (k != main, k.endswith("_stderr"), k)):
        table.add_row(f"[bold]{k}[/bold]" if k == main else k, f"{metrics[k]:.4g}")
    out.print(table)


def cmd_score(reg: Registry, args: argparse.Namespace) -> int:
    from specbench import rescore

    try:
        report, n = rescore.rescore(reg, args.dataset, args.predictions, log=args.log,
                                    experiment=args.experiment)
    except rescore.PredictionsError as exc:
        raise UsageError(str(exc)) from None
    if args.format == "json":
        print(json.dumps(report.metrics, indent=2))
    else:
        _print_metrics(f"{args.dataset}: {n} predictions", report.metrics, reg.dataset(args.dataset).main_metric)
    return 0


def _blank_is_none(text: str) -> str | None:
    """An empty value (what `mlflow run` passes for an unset parameter) means the default."""
    return text.strip() or None


def _csv(text: str) -> list[str] | None:
    names = [t.strip() for t in text.split(",") if t.strip()]
    return names or None


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got '{text}'")


def cmd_run_category(reg: Registry, args: argparse.Namespace) -> int:
    from specbench import plan as planning
    from specbench import runner, tracking

    cplan = planning.plan_category(reg, args.name, preset=args.preset, engine=args.engine, samples=args.samples,
                                   seed=args.seed, models=args.models, datasets=args.datasets,
                                   baselines=args.baselines, secondary=args.secondary,
                                   resolve_weights=not args.dry_run)
    _print_plan(cplan)
    if args.dry_run:
        return 0
    uri = tracking.setup(args.experiment)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err) as progress:
        task = progress.add_task(f"{cplan.category}: cells", total=len(cplan.runnable))
        result = runner.run_category(cplan, use_cache=not args.no_cache,
                                     on_cell=lambda row: progress.update(
                                         task, advance=1, description=f"{row['cell']}: {row['status']}"))
    _emit(result.rows, ["cell", "role", "status", "main_metric", "value", "output_tokens_per_s", "peak_rss_mb",
                        "run_id", "note"], "table", f"category {cplan.category} (parent run {result.parent_run_id})")
    out.print(f"open the runs: {tracking.ui_command()}  (store {uri})")
    return result.exit_code


def _print_plan(cplan) -> None:
    rows = [{"cell": c.name, "role": c.role, "engine": c.engine, "gpus": c.needs["gpus"],
             "tp": c.needs["tensor_parallel"], "weights_gb": c.needs["weights_gb"],
             "mem/gpu_gb": c.needs["memory_per_gpu_gb"], "status": "runnable" if c.reason is None else "skip"}
            for c in cplan.cells]
    _emit(rows, ["cell", "role", "engine", "gpus", "tp", "weights_gb", "mem/gpu_gb", "status"], "table",
          f"plan {cplan.category}: {len(cplan.runnable)} runnable, {len(cplan.skipped)} skipped "
          f"(digest {cplan.digest()})")
    reasons: dict[str, list[str]] = {}
    for c in cplan.skipped:  # one line per reason, unwrapped, whatever the terminal width
        reasons.setdefault(c.reason or "", []).append(c.name)
    for reason, cells in reasons.items():
        print(f"skip {', '.join(cells)}: {reason}")


def _add_eval_commands(sub: argparse._SubParsersAction) -> None:
    rp = sub.add_parser("run", help="run a whole category: its models and baselines x its datasets")
    rsub = rp.add_subparsers(dest="what", required=True)
    cp = rsub.add_parser("category", help="one parent MLflow run, one child run per cell")
    cp.add_argument("name")
    cp.add_argument("--preset", type=_blank_is_none, default=None, help="engine preset (default: each model's)")
    cp.add_argument("--samples", type=_samples, default=None, help="first N items of each dataset")
    cp.add_argument("--engine", choices=["vllm", "transformers", "openai"], default="vllm")
    cp.add_argument("--seed", type=int, default=0)
    cp.add_argument("--models", type=_csv, default=None, help="comma-separated subset of the category's models")
    cp.add_argument("--datasets", type=_csv, default=None, help="comma-separated subset of its datasets")
    cp.add_argument("--baselines", type=_bool, default=True, help="include generalist baselines (default true)")
    cp.add_argument("--secondary", type=_bool, default=False, help="include secondary datasets")
    cp.add_argument("--dry-run", type=_bool, nargs="?", const=True, default=False,
                    help="print the plan and what each cell needs; load nothing")
    cp.add_argument("--no-cache", action="store_true", help="do not reuse cached generations")
    cp.add_argument("--experiment", default=None)
    cp.set_defaults(func=cmd_run_category)

    ep = sub.add_parser("evaluate", help="evaluate one model on one dataset as one MLflow run")
    ep.add_argument("--model", required=True)
    ep.add_argument("--dataset", required=True)
    ep.add_argument("--samples", type=_samples, default=None, help="first N items (default: all)")
    ep.add_argument("--preset", type=_blank_is_none, default=None, help="engine preset (default: the model's)")
    ep.add_argument("--engine", choices=["vllm", "transformers", "openai"], default="vllm")
    ep.add_argument("--seed", type=int, default=0)
    ep.add_argument("--experiment", default=None, help="MLflow experiment (default: specbench)")
    ep.set_defaults(func=cmd_evaluate)

    sp = sub.add_parser("score", help="re-score saved outputs without a model")
    sp.add_argument("--dataset", required=True)
    sp.add_argument("--predictions", required=True, help="JSONL of {id, output} or a run's samples.json")
    sp.add_argument("--log", action="store_true", help="record the scores as an MLflow run")
    sp.add_argument("--experiment", default=None)
    sp.add_argument("--format", choices=["table", "json"], default="table")
    sp.set_defaults(func=cmd_score)


# -- sweep ------------------------------------------------------------------------------------

def cmd_sweep(reg: Registry, args: argparse.Namespace) -> int:
    from specbench import sweep, tracking
    from specbench.plan import CellUnavailable

    def show(row: dict[str, Any]) -> None:
        value = row["output_tokens_per_s"]
        knobs = ", ".join(f"{k}={row[k]}" for k in row if k in sweep.KNOBS and row[k] is not None)
        err.print(f"trial {row['trial']} {row['state']}: {knobs or row['role']}"
                  + (f" -> {value:.1f} tok/s" if value is not None else "")
                  + (f" ({row['error'][:160]})" if row.get("error") else ""), highlight=False, soft_wrap=True)

    try:
        result = sweep.run_sweep(reg, args.model, args.spec, n_trials=args.n_trials, timeout_s=args.timeout,
                                 storage=args.storage, study_name=args.study, seed=args.seed,
                                 experiment=args.experiment, write_preset=not args.no_preset, on_trial=show)
    except CellUnavailable as exc:
        raise UsageError(f"cannot sweep {args.model}: {exc}") from None
    if args.format == "json":
        print(json.dumps({"study": result.study_name, "parent_run_id": result.parent_run_id, "best": result.best,
                          "preset": result.preset_path, "trials": result.rows}, indent=2, default=str))
    else:
        short = {"max_num_seqs": "seqs", "max_num_batched_tokens": "batched_tok", "enable_prefix_caching": "prefix",
                 "enforce_eager": "eager", "gpu_memory_utilization": "gpu_mem", "kv_cache_space_gb": "kv_gb",
                 "output_tokens_per_s": "tok/s", "peak_rss_mb": "peak_MB", "probe_accuracy": "acc",
                 "accuracy_drift": "drift", "duplicate_of": "dup_of"}
        cols = ["trial", "state", "role", *[k for k in sweep.KNOBS if any(r.get(k) is not None for r in result.rows)],
                "output_tokens_per_s", "peak_rss_mb", "probe_accuracy", "accuracy_drift", "feasible", "duplicate_of"]
        rows = [{short.get(k, k): (f"{v:.4g}" if isinstance(v, float) else v) for k, v in r.items()}
                for r in result.rows]
        table = Table(title=f"study {result.study_name} (parent run {result.parent_run_id}; "
                            f"{tracking.ui_command()})")
        for c in cols:
            table.add_column(short.get(c, c))
        for r in rows:
            table.add_row(*("" if r.get(short.get(c, c)) is None else str(r.get(short.get(c, c))) for c in cols))
        out.print(table)
    if result.best is None:
        err.print("[red]no feasible completed trial[/red]: no preset written", highlight=False)
        return 1
    if result.preset_path:
        (err if args.format == "json" else out).print(
            f"best trial {result.best['trial']}: {result.best['output_tokens_per_s']:.1f} tok/s; wrote preset "
            f"{result.preset_name} to {result.preset_path} (use it with --preset tuned)", highlight=False,
            soft_wrap=True)
    return 0


def _optional(kind: type):
    """An argparse type where '' means "not given"."""
    def parse(text: str):
        if not text.strip():
            return None
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got '{text}'") from None
    return parse


def _add_sweep_command(sub: argparse._SubParsersAction) -> None:
    wp = sub.add_parser("sweep", help="tune a model's engine preset with an Optuna study (writes --preset tuned)")
    wp.add_argument("--model", required=True)
    # Empty values mean "the default", so MLproject can pass every parameter through as given.
    wp.add_argument("--spec", default=None, type=_blank_is_none,
                    help="sweeps/<name>.yaml or a path (default: cpu, or gpu with GPUs)")
    wp.add_argument("--n-trials", type=_optional(int), default=None,
                    help="trials for this worker (default: the spec's)")
    wp.add_argument("--timeout", type=_optional(float), default=None,
                    help="seconds for this worker (default: the spec's)")
    wp.add_argument("--storage", default=None, type=_blank_is_none,
                    help="Optuna storage: RDB URL or journal:PATH (default sqlite:///./optuna.db)")
    wp.add_argument("--study", default=None, help="study name (default sweep-<model>-<spec>)")
    wp.add_argument("--seed", type=int, default=None, help="sampler seed (default: the spec's)")
    wp.add_argument("--no-preset", action="store_true", help="do not write conf/presets/tuned_<model>.yaml")
    wp.add_argument("--experiment", default=None)
    wp.add_argument("--format", choices=["table", "json"], default="table")
    wp.set_defaults(func=cmd_sweep)


# -- quantize ---------------------------------------------------------------------------------

def cmd_quantize(reg: Registry, args: argparse.Namespace) -> int:
    from specbench import quantize, tracking

    try:
        res = quantize.quantize(reg, args.model, recipe=args.recipe, force=args.force,
                                experiment=args.experiment)
    except quantize.QuantizeError as exc:
        raise UsageError(f"cannot quantize {args.model}: {exc}") from None
    m = res.manifest
    row = {"model": res.key, "parent": res.parent, "recipe": res.recipe,
           "status": "reused" if res.reused else "quantized", "quantize_s": m["quantize_s"],
           "size_before_mb": round(m["size_before_mb"], 1), "size_after_mb": round(m["size_after_mb"], 1),
           "size_ratio": round(m["size_ratio"], 3), "calibration": f"{m['calibration']['blocks']} blocks, "
           f"digest {m['calibration']['digest']}", "checkpoint": str(res.path), "run_id": res.run_id}
    if args.format == "json":
        print(json.dumps(row, indent=2, default=str))
    else:
        table = Table(title=f"quantize {res.parent} -> {res.key}", show_header=False)
        table.add_column("field", style="bold")
        table.add_column("value")
        for k, v in row.items():
            table.add_row(k, str(v))
        out.print(table)
    for note in res.notes:
        err.print(note, highlight=False)
    if res.wrote_entry:
        out.print(f"wrote the derived model's registry entry {res.wrote_entry}", highlight=False)
    if args.format != "json":
        out.print(f"evaluate it: specbench evaluate --model {res.key} --dataset gsm8k  ({tracking.ui_command()})",
                  highlight=False)
    return 0


def _add_quantize_command(sub: argparse._SubParsersAction) -> None:
    qp = sub.add_parser("quantize", help="AWQ-quantize a model into its derived registry model (one MLflow run)")
    qp.add_argument("--model", required=True, help="the full-precision parent, or the derived model itself")
    qp.add_argument("--recipe", default=None, type=_blank_is_none,
                    help="conf/quantization/<recipe>.yaml (default or empty: the derived model's, else awq_w4_g128)")
    qp.add_argument("--force", type=_bool, nargs="?", const=True, default=False,
                    help="quantize again even if an up-to-date checkpoint exists")
    qp.add_argument("--experiment", default=None)
    qp.add_argument("--format", choices=["table", "json"], default="table")
    qp.set_defaults(func=cmd_quantize)


def _tags(text: str) -> dict[str, str]:
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(f"expected key=value pairs separated by commas, got '{part}'")
        out[key.strip()] = value.strip()
    return out


def cmd_compare(reg: Registry, args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from specbench import compare, render, tracking

    sel = compare.Selection(experiment=args.experiment, category=reg.category(args.category).key if args.category
                            else None, parent_run=args.parent_run, tags=args.tags)
    try:
        comp = compare.build(reg, sel, framework=args.framework)
    except compare.CompareError as exc:
        raise UsageError(str(exc)) from None
    if not comp.categories and comp.framework is None:
        raise UsageError(f"no cell runs match {sel.describe() or 'the default experiment'}")
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(args.output) if args.output else Path(tmp) / "compare"
        if args.output or args.log:  # figures only where they are kept
            compare.write(comp, out_dir)
        run_id = compare.log_run(comp, out_dir, args.experiment) if args.log else None
        if args.format == "json":
            print(json.dumps({"run_id": run_id, "output": str(out_dir) if args.output else None,
                              "categories": {v.category: {"matrix": v.matrix.to_dict("records"),
                                                          "deltas": v.deltas.to_dict("records"),
                                                          "efficiency": v.efficiency.to_dict("records"),
                                                          "quantization": v.quantization.to_dict("records")}
                                             for v in comp.categories},
                              "framework": None if comp.framework is None else comp.framework.to_dict("records")},
                             indent=2, default=str))
            return 0
    for v in comp.categories:
        _emit(render.matrix_display(v.matrix).to_dict("records"), ["model", "role", *dict.fromkeys(v.matrix.dataset)],
              "table", f"{v.category}: main metric, % [95% CI]")
        for base, grp in v.deltas.groupby("baseline", sort=False):
            _emit(render.delta_display(grp).to_dict("records"), ["model", *dict.fromkeys(grp.dataset)],
                  "table", f"{v.category}: specialist - {base}, points")
        if len(v.quantization):
            d = render.quantization_display(v.quantization)
            _emit(d.to_dict("records"), list(d.columns), "table", f"{v.category}: quantized - parent, points")
    if comp.framework is not None:
        d = render.framework_display(comp.framework)
        _emit(d.to_dict("records"), list(d.columns), "table", "specialization framework")
    if args.output:
        out.print(f"tables and figures in {args.output}")
    if run_id:
        out.print(f"compare run {run_id} ({tracking.tracking_uri()})")
    return 0


def cmd_report(reg: Registry, args: argparse.Namespace) -> int:
    from pathlib import Path

    from specbench import compare, report

    try:
        out_dir, run_id = report.run(reg, args.report, Path(args.output) if args.output else None, log=args.log)
    except compare.CompareError as exc:
        raise UsageError(str(exc)) from None
    out.print(f"report tables in {out_dir}" + (f"; report run {run_id}" if run_id else ""))
    return 0


def _add_compare_commands(sub: argparse._SubParsersAction) -> None:
    cp = sub.add_parser("compare", help="specialist-vs-generalist matrices from MLflow runs, logged as a compare run")
    cp.add_argument("--category", type=_blank_is_none, default=None, help="compare this category's runs")
    cp.add_argument("--parent-run", type=_blank_is_none, default=None, help="only the cells of this category run")
    cp.add_argument("--experiment", type=_blank_is_none, default=None, help="MLflow experiment (default: specbench)")
    cp.add_argument("--tags", type=_tags, default={}, help="only runs with these tags: key=value,key2=value2")
    cp.add_argument("--framework", type=_bool, nargs="?", const=True, default=False,
                    help="add the cross-category matrix of conf/framework.yaml")
    cp.add_argument("--output", type=_blank_is_none, default=None,
                    help="also keep the tables and figures in this folder")
    cp.add_argument("--log", type=_bool, default=True, help="log them on a compare run (default true)")
    cp.add_argument("--format", choices=["table", "json"], default="table")
    cp.set_defaults(func=cmd_compare)

    rp = sub.add_parser("report", help="regenerate a paper's tables from experiments/<name>.yaml")
    rp.add_argument("report", help="a report name in experiments/ or a path to its YAML file")
    rp.add_argument("--output", type=_blank_is_none, default=None,
                    help="folder for the tables (default: reports/<name>)")
    rp.add_argument("--log", type=_bool, default=True, help="also log them on a report run (default true)")
    rp.set_defaults(func=cmd_report)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        reg = load_registry(args.conf)
        return int(args.func(reg, args) or 0)
    except (RegistryError, UsageError) as exc:
        err.print(f"[red]error[/red]: {exc}", highlight=False, soft_wrap=True)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
