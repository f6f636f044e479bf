"""Engine sweeps: an Optuna study per model and spec, measured for real, into a tuned preset.

A sweep spec (``sweeps/<name>.yaml``, schema in ``specbench.registry.sweeps``) declares a
search space over the vLLM knobs a preset holds, a fixed probe set drawn from the model's
category datasets, the accuracy constraint, the sampler, the pruner and the budget.  Each
trial starts a real engine with one configuration, answers the probe chunk by chunk through
the one cell pipeline (reporting cumulative output tokens/s after each chunk, so Optuna's
pruner can stop a clearly slow trial early) and scores the answers.

- ``probe``: the probe's items, prompts and measurement (``pipeline`` prepare/answer/score);
- ``search``: Optuna's samplers, pruners, distributions and storages for a spec;
- ``objective``: one trial as a child run (failures, pruning, duplicates, drift);
- ``study``: one worker on one study (creation, the parent run, the summary);
- ``plots``: the parent run's figures; ``preset``: the tuned preset file and its provenance.

Only ``specbench.tracking`` talks to MLflow; this package goes through its runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from specbench.registry import Registry, RegistryError
from specbench.registry.sweeps import (
    KNOBS,
    PRUNERS,
    SAMPLERS,
    BudgetSpec,
    ConstraintSpec,
    ParamSpace,
    ProbeSpec,
    PrunerSpec,
    SamplerSpec,
    SweepSpec,
    load_sweep_spec,
    sweeps_dir,
)
from specbench.sweep.objective import Objective, effective_knobs, memory_hint
from specbench.sweep.plots import log_plots, pareto_front
from specbench.sweep.preset import hardware, tuned_preset_path, write_tuned_preset
from specbench.sweep.probe import Measurement, ProbeSet, build_probe, measure, probe_tasks
from specbench.sweep.search import (
    DEFAULT_STORAGE_FILE,
    ROLE_ATTR,
    SweepStopped,
    TrialFailure,
    distribution,
    make_pruner,
    make_sampler,
    make_storage,
    redact,
    storage_url,
    suggest_knob,
    throughput_corner,
)
from specbench.sweep.study import Sweep, SweepResult, best_trial, trial_row


def default_spec_name() -> str:
    """The spec for this machine: gpu with GPUs, else cpu."""
    from specbench.weights import gpu_count

    return "gpu" if gpu_count() > 0 else "cpu"


def load_spec(reg: Registry, spec: str | os.PathLike[str] | None = None) -> tuple[SweepSpec, Path]:
    """A spec by path or by name under sweeps/ (default: cpu or gpu, by what this machine has)."""
    return load_sweep_spec(reg, spec or default_spec_name())


def run_sweep(reg: Registry, model_key: str, spec: str | os.PathLike[str] | SweepSpec | None = None, *,
              n_trials: int | None = None, timeout_s: float | None = None, storage: str | None = None,
              study_name: str | None = None, seed: int | None = None, experiment: str | None = None,
              write_preset: bool = True, on_trial: Callable[[dict[str, Any]], None] | None = None) -> SweepResult:
    """Plan and run one worker of a sweep; the CLI's and MLproject's `sweep`."""
    if isinstance(spec, SweepSpec):
        spec_obj, path = spec, None
    else:
        spec_obj, path = load_spec(reg, spec)
    if n_trials is not None and n_trials < 1:
        raise RegistryError(f"n_trials must be >= 1, got {n_trials}")
    sweep = Sweep(reg, model_key, spec_obj, spec_path=path, storage=storage, study_name=study_name, seed=seed,
                  on_trial=on_trial)
    return sweep.run(n_trials=n_trials, timeout_s=timeout_s, experiment=experiment, write_preset=write_preset)


__all__ = [
    "DEFAULT_STORAGE_FILE", "KNOBS", "PRUNERS", "ROLE_ATTR", "SAMPLERS", "BudgetSpec", "ConstraintSpec",
    "Measurement", "Objective", "ParamSpace", "ProbeSet", "ProbeSpec", "PrunerSpec", "SamplerSpec", "Sweep",
    "SweepResult", "SweepSpec", "SweepStopped", "TrialFailure", "best_trial", "build_probe", "default_spec_name",
    "distribution",
    "effective_knobs", "hardware", "load_spec", "log_plots", "make_pruner", "make_sampler", "make_storage",
    "measure", "memory_hint", "pareto_front", "probe_tasks", "redact", "run_sweep", "storage_url", "suggest_knob",
    "sweeps_dir", "throughput_corner", "trial_row", "tuned_preset_path", "write_tuned_preset",
]
