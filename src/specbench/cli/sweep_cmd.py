"""`specbench sweep`: an Optuna study over a model's engine knobs, into a tuned preset."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.table import Table

from specbench.cli.common import UsageError, blank_is_none, err, optional, out, seed_arg
from specbench.registry import Registry


def cmd_sweep(reg: Registry, args: argparse.Namespace) -> int:
    from specbench import sweep, tracking
    from specbench.pipeline import CellUnavailable

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
    except sweep.SweepStopped as exc:  # the accuracy guard cannot work: recorded on the parent run, no preset
        err.print(f"[red]sweep stopped[/red]: {' '.join(str(exc).split())}; no preset written", highlight=False,
                  soft_wrap=True)
        return 1
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


def add_commands(sub: argparse._SubParsersAction) -> None:
    wp = sub.add_parser("sweep", help="tune a model's engine preset with an Optuna study (writes --preset tuned)")
    wp.add_argument("--model", required=True)
    # Empty values mean "the default", so MLproject can pass every parameter through as given.
    wp.add_argument("--spec", default=None, type=blank_is_none,
                    help="sweeps/<name>.yaml or a path (default: cpu, or gpu with GPUs)")
    wp.add_argument("--n-trials", type=optional(int, minimum=1), default=None,
                    help="trials for this worker (default: the spec's)")
    wp.add_argument("--timeout", type=optional(float, above=0), default=None,
                    help="seconds for this worker (default: the spec's)")
    wp.add_argument("--storage", default=None, type=blank_is_none,
                    help="Optuna storage: RDB URL or journal:PATH (default sqlite:///./optuna.db)")
    wp.add_argument("--study", default=None, help="study name (default sweep-<model>-<spec>)")
    wp.add_argument("--seed", type=seed_arg, default=None, help="sampler seed (default: the spec's)")
    wp.add_argument("--no-preset", action="store_true", help="do not write conf/presets/tuned_<model>.yaml")
    wp.add_argument("--experiment", default=None)
    wp.add_argument("--format", choices=["table", "json"], default="table")
    wp.set_defaults(func=cmd_sweep)
