"""One worker on one study: the study, its parent run, the trials, and the summary.

- The study is created by exactly one worker (``create_study`` is atomic in every storage);
  that worker enqueues the reference (trial 0: the model's registry preset), the spec's
  configurations and the warm start, then marks the study ``initialized``.  A worker that
  loads the study waits for that mark, so it can never sample a trial before the reference
  is queued, nor judge a spec digest that is not recorded yet.
- One parent run per study, shared by every worker on every machine: the run the study records
  (when it is in this tracking store); else exactly one worker wins a claim (``create_study`` of
  a claim study is atomic: first writer wins) and opens it (under ``mlflow run``, its project
  run), records it on the study, and the others wait for that record and adopt it.
- A worker killed mid-trial stops its heartbeat; the next worker to start a trial (or to wait for
  the reference) fails it, Optuna's ``RetryHeartbeatStaleTrialCallback`` (``RetryFailedTrialCallback``
  before Optuna 4.9) queues it again, and its orphaned
  MLflow run is ended FAILED with the reason.
- Each trial is a child run of it (``sweep.objective``); the parent gets the trial counts, the
  best trial, the trials table, the figures and the tuned preset file.
- A study whose accuracy guard cannot work (the reference trial failed or is missing, a
  probe that is not the reference's) stops: ``SweepStopped`` leaves ``run`` with the reason,
  the parent run ends FAILED with it, and no tuned preset is written.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from specbench import pipeline, tracking
from specbench.pipeline import tuned_preset_name
from specbench.progress import progress
from specbench.registry import Registry, RegistryError
from specbench.registry.schema import to_plain
from specbench.registry.sweeps import SweepSpec
from specbench.sweep.objective import Objective
from specbench.sweep.plots import log_plots
from specbench.sweep.preset import hardware, provenance, write_tuned_preset
from specbench.sweep.probe import build_probe, probe_tasks
from specbench.sweep.search import (
    GRACE_FACTOR,
    ROLE_ATTR,
    TrialFailure,
    heartbeat_s,
    make_pruner,
    make_sampler,
    make_storage,
    redact,
    storage_url,
    throughput_corner,
)

PARENT_ATTR = "mlflow_parent_run_id"  # study user attr: the study's parent run
INITIALIZED_ATTR = "initialized"  # study user attr: the creator has enqueued the reference and the rest
WAIT_CREATOR_S = 60.0  # how long a joining worker waits for the creator's records
CLAIM_SUFFIX = "#parent-after:"  # claim study name: <study>#parent-after:<the recorded parent it replaces>
MAX_RETRY = 2  # how often a trial whose worker died is queued again


@dataclass
class SweepResult:
    study_name: str
    storage: str
    parent_run_id: str
    rows: list[dict[str, Any]]  # one per trial of the study
    best: dict[str, Any] | None  # the best feasible trial's row
    preset_name: str | None = None
    preset_path: str | None = None
    artifacts: list[str] = field(default_factory=list)


def best_trial(study: Any) -> Any:
    """The best feasible completed trial (Optuna honours the constraints), or None."""
    try:
        return study.best_trial
    except ValueError:
        return None


def trial_row(t: Any, spec: SweepSpec) -> dict[str, Any]:
    u = t.user_attrs
    row: dict[str, Any] = {"trial": t.number, "state": t.state.name, "role": u.get(ROLE_ATTR, "sampled"),
                           "params": dict(t.params)}
    for k in spec.space:
        row[k] = t.params.get(k, u.get("knobs", {}).get(k))
    row |= {"output_tokens_per_s": t.value, "peak_rss_mb": u.get("peak_rss_mb"),
            "probe_accuracy": u.get("probe_accuracy"), "accuracy_drift": u.get("accuracy_drift"),
            "feasible": all(v <= 0 for v in t.constraints.values()) if t.constraints else None,
            "duplicate_of": u.get("duplicate_of"), "error": u.get("error"),
            "mlflow_run_id": u.get("mlflow_run_id"), "worker": u.get("worker"),
            "retry_of": t.system_attrs.get("failed_trial")}
    return row


def wait_for(read: Callable[[], Any], timeout_s: float | None = None) -> Any:
    """``read()`` until it returns something truthy or the time is up (then its last value);
    default: ``WAIT_CREATOR_S``."""
    deadline = time.time() + (WAIT_CREATOR_S if timeout_s is None else timeout_s)
    value = read()
    while not value and time.time() < deadline:
        time.sleep(1)
        value = read()
    return value


class Sweep:
    """One worker on one study: opens the study and its parent run, and runs the objective."""

    def __init__(self, reg: Registry, model_key: str, spec: SweepSpec, *, spec_path: Path | None = None,
                 storage: str | None = None, study_name: str | None = None, seed: int | None = None,
                 on_trial: Callable[[dict[str, Any]], None] | None = None) -> None:
        from specbench.weights import gpu_count

        self.reg = reg
        self.model = reg.model(model_key)
        self.spec = spec
        self.spec_path = spec_path
        self.on_trial = on_trial
        gpus = gpu_count()
        if spec.hardware == "gpu" and gpus == 0:
            raise RegistryError(f"sweep spec '{spec.name}' is for GPUs and this machine has none; "
                                "use --spec cpu")
        # The reference cell, planned exactly as `evaluate` plans it (presets including `tuned`,
        # the model's engines, stale checkpoints); raises CellUnavailable with the reason.
        first = probe_tasks(reg, self.model, spec.probe)[0]
        plan = pipeline.plan_cell(reg, model_key, first.dataset.key, preset=spec.reference_preset,
                                  engine=spec.engine)
        probe = build_probe(reg, self.model, spec.probe)  # the items, before any download or engine
        weights = pipeline.materialize_weights(plan)  # once for every trial
        self.ref_name = plan.preset_name
        self.storage_url = storage_url(storage)
        self.storage = make_storage(storage, failed_trial_callback=self.on_stale_trial)
        self.study_name = study_name or f"sweep-{self.model.key}-{spec.name}"
        self.seed = seed
        self.objective = Objective(spec, self.model, plan.preset_name, plan.preset, plan.weights, weights.path,
                                   probe, self.study_name, f"{socket.gethostname()}:{os.getpid()}", gpus)

    # -- study ------------------------------------------------------------------------------
    def open_study(self) -> tuple[Any, bool]:
        """Create the study and initialize it, or load it once its creator has initialized it."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        seed = self.spec.sampler.seed if self.seed is None else self.seed
        try:
            study = optuna.create_study(storage=self.storage, study_name=self.study_name, direction="maximize",
                                        sampler=make_sampler(self.spec, seed), pruner=make_pruner(self.spec))
        except optuna.exceptions.DuplicatedStudyError:
            # Another worker (or an earlier run) made it: a different seed, so concurrent
            # workers do not draw the same random startup trials.
            study = optuna.load_study(study_name=self.study_name, storage=self.storage,
                                      sampler=make_sampler(self.spec, seed + 1 + os.getpid() % 10_000),
                                      pruner=make_pruner(self.spec))
            self.check_joined(study)
            return study, False
        study.enqueue_trial({}, user_attrs={ROLE_ATTR: "reference"})  # first: it is trial 0
        for k, v in {"model": self.model.key, "spec": self.spec.name, "spec_digest": self.spec.digest(),
                     "reference_preset": self.ref_name, "probe_digest": self.objective.probe.digest,
                     "knobs": sorted(self.spec.space)}.items():
            study.set_user_attr(k, v)
        for cfg in self.spec.enqueue:
            study.enqueue_trial(dict(cfg), user_attrs={ROLE_ATTR: "enqueued"})
        corner = throughput_corner(self.spec)
        if self.spec.sampler.warm_start and corner not in self.spec.enqueue:
            study.enqueue_trial(corner, user_attrs={ROLE_ATTR: "warm_start"})
        study.set_user_attr(INITIALIZED_ATTR, True)
        return study, True

    def check_joined(self, study: Any) -> None:
        """Wait for the creator to initialize the study (studies from before the mark count
        once their reference is queued), then refuse one made with another spec."""
        def initialized() -> bool:
            return bool(study.user_attrs.get(INITIALIZED_ATTR)) or any(
                t.user_attrs.get(ROLE_ATTR) == "reference" for t in study.get_trials(deepcopy=False))

        if not wait_for(initialized):
            raise RegistryError(f"study '{self.study_name}' in {redact(self.storage_url)} was created but never "
                                "initialized (its creator stopped before queuing the reference); "
                                "pass a new --study name")
        theirs = study.user_attrs.get("spec_digest")
        if theirs and theirs != self.spec.digest():
            raise RegistryError(f"study '{self.study_name}' in {redact(self.storage_url)} was made with another "
                                f"spec (digest {theirs}, this one {self.spec.digest()}); pass a new "
                                "--study name")

    def parent_to_resume(self, study: Any) -> tuple[str | None, bool]:
        """(the parent run to reopen, whether this worker must record its own on the study).

        The study's recorded parent when this tracking store has it; else a claim decides who
        opens one: ``create_study`` of ``<study>#parent-after:<recorded>`` succeeds for exactly
        one worker (every worker that saw the same record races for the same name), which opens
        it (None: a new run, or the project run under ``mlflow run``).  The others wait for the
        new record and adopt it; one that never comes (the winner died) is a loud warning and a
        parent of this worker's own."""
        import optuna

        recorded = study.user_attrs.get(PARENT_ATTR)
        if recorded and tracking.get_run(recorded) is not None:
            return recorded, False
        try:
            optuna.create_study(storage=self.storage, study_name=f"{self.study_name}{CLAIM_SUFFIX}{recorded or '-'}")
            return None, True
        except optuna.exceptions.DuplicatedStudyError:
            pass

        def new_record() -> str | None:
            run_id = study.user_attrs.get(PARENT_ATTR)
            return run_id if run_id and run_id != recorded and tracking.get_run(run_id) is not None else None

        run_id = wait_for(new_record)
        if run_id:
            return run_id, False
        print(f"warning: study '{self.study_name}': the worker that claimed the parent run never recorded it in "
              f"{WAIT_CREATOR_S:g} s; this worker's trials go under a parent run of its own", file=sys.stderr)
        return None, False

    def on_stale_trial(self, study: Any, trial: Any) -> None:
        """Optuna failed ``trial``: its worker stopped beating (killed, machine lost).  Queue it again
        with Optuna's own callback (same knobs and role; a reference stays the reference), and end
        its orphaned MLflow run FAILED with the reason, so nothing stays RUNNING forever."""
        import optuna
        from optuna.storages import RetryHeartbeatStaleTrialCallback

        with warnings.catch_warnings():  # "experimental" since Optuna 2.8, in name only
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)(study, trial)
        run_id = trial.user_attrs.get("mlflow_run_id")
        if not run_id:
            return
        retries = len(trial.system_attrs.get("retry_history", [])) + 1
        msg = (f"WorkerLost: worker {trial.user_attrs.get('worker', '?')} stopped its heartbeat for "
               f"{GRACE_FACTOR * heartbeat_s():g} s mid-trial; "
               + ("queued again" if retries <= MAX_RETRY else f"not retried (max {MAX_RETRY} retries)"))
        try:  # Optuna's heartbeat already judged its worker gone: take the run over (shared)
            if tracking.get_run(run_id) is None:
                return  # in another tracking store
            with tracking.open_run("sweep_trial", resume=run_id, parent=self.objective.parent_run_id or run_id,
                                   adopt_launcher=False, shared=True) as run:
                run.set_tags({"error": msg, "error_type": "WorkerLost", "trial_state": "FAIL"})
                run.status = tracking.FAILED
        except Exception as exc:  # noqa: BLE001 - the retry is queued; a run left RUNNING must not stop this worker
            print(f"warning: trial {trial.number}'s MLflow run {run_id} stays RUNNING: {tracking.error_line(exc)}",
                  file=sys.stderr)

    # -- run ------------------------------------------------------------------------------------
    def run(self, n_trials: int | None = None, timeout_s: float | None = None, experiment: str | None = None,
            write_preset: bool = True) -> SweepResult:
        study, _ = self.open_study()
        launcher = os.environ.get("MLFLOW_RUN_ID")
        resume, record = self.parent_to_resume(study)
        if resume and launcher:  # under `mlflow run` on a joining worker: point its project run at the parent
            tracking.set_tags_on(launcher, {"sweep_parent": resume})
        n = n_trials or self.spec.budget.n_trials
        timeout = timeout_s if timeout_s is not None else self.spec.budget.timeout_s
        spec = to_plain(self.spec)
        tags = {"model": self.model.key, "sweep_spec": self.spec.name, "study": self.study_name,
                "storage": redact(self.storage_url), "hardware": hardware()}
        # Prefixed: `mlflow run` already logged its entry point's own parameters (model, spec, ...).
        params = {"sweep.model": self.model.key, "sweep.study": self.study_name,
                  "sweep.reference_preset": self.ref_name,
                  **{k: v for k, v in tracking.flatten("spec", spec).items() if k != "spec.description"}}

        def callback(study: Any, frozen: Any) -> None:
            advance()
            if self.on_trial:
                self.on_trial(trial_row(frozen, self.spec))

        with tracking.open_run("sweep", name=f"sweep:{self.model.key}", tags=tags, params=params,
                               experiment=experiment, resume=resume, shared=True) as run:
            if record:
                study.set_user_attr(PARENT_ATTR, run.run_id)
            if "sweep.study" not in run.stored_params:
                run.log_dict(spec, "sweep_spec.json")
            self.objective.parent_run_id = run.run_id
            self.objective.check_reference(study)  # a study whose reference failed earlier: stop now
            with progress(f"sweep {self.model.key}: trials", n) as advance:
                study.optimize(self.objective, n_trials=n, timeout=timeout, catch=(TrialFailure,),
                               callbacks=[callback], gc_after_trial=True)
            return self.finish(run, study, write_preset)

    def finish(self, run: tracking.RunHandle, study: Any, write_preset: bool) -> SweepResult:
        """Parent-run summary: best trial, counts, plots, trials table; then the tuned preset."""
        from optuna.trial import TrialState

        trials = study.get_trials(deepcopy=False)
        rows = [trial_row(t, self.spec) for t in trials]
        best = best_trial(study)
        counts = {s.name.lower(): sum(t.state == s for t in trials)
                  for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
        metrics = {f"trials_{k}": float(v) for k, v in counts.items()} | {"trials_total": float(len(trials))}
        ref = next((t for t in trials if t.user_attrs.get(ROLE_ATTR) == "reference"
                    and t.state == TrialState.COMPLETE), None)
        if best is not None:
            metrics |= {"best_output_tokens_per_s": best.value, "best_trial": float(best.number),
                        "best_peak_rss_mb": best.user_attrs.get("peak_rss_mb"),
                        "best_probe_accuracy": best.user_attrs.get("probe_accuracy")}
            if ref is not None and ref.value:
                metrics["speedup_vs_reference"] = best.value / ref.value
        run.log_metrics(metrics)
        run.log_table([{k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in r.items()}
                       for r in rows], "trials.json")
        artifacts = log_plots(run, study, rows)
        result = SweepResult(self.study_name, self.storage_url, run.run_id, rows,
                             trial_row(best, self.spec) if best is not None else None, artifacts=artifacts)
        if best is None:
            run.set_tags({"best": "none: no feasible completed trial"})
            return result
        params = json.dumps(best.params, sort_keys=True) if best.params else "(the reference preset)"
        run.set_tags({"best_trial": str(best.number), "best_params": params})
        if write_preset:
            knobs = {k: v for k, v in best.user_attrs.get("knobs", best.params).items() if v is not None}
            prov = provenance(best, ref, study=self.study_name, storage=redact(self.storage_url),
                              spec=str(self.spec_path or self.spec.name), spec_digest=self.spec.digest(),
                              reference_preset=self.ref_name, engine=self.spec.engine,
                              probe=self.objective.probe.digest, mlflow_run_id=run.run_id)
            path = write_tuned_preset(self.reg, self.model.key, self.objective.preset_for(knobs), prov)
            run.log_artifact(str(path))
            result.preset_name, result.preset_path = tuned_preset_name(self.model.key), str(path)
        return result
