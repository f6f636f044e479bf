"""One trial: a configuration measured for real, as a child run of the study's parent run.

A trial turns the sampler's knob values into a preset, plans the engine arguments exactly as
an evaluation would (``engines.planned_params`` on the reference cell's weights), starts the
engine, answers the probe and scores it.  Then:

- an engine that cannot start (out of memory, impossible KV cache) or dies mid-probe is a
  FAIL trial with its error recorded (on the trial and its run, which ends FAILED); the
  study goes on -- unless it is the reference: without it no trial's accuracy can be judged,
  so the study stops (:class:`SweepStopped`, the reason on the trial's and the parent's runs)
  rather than optimize throughput unguarded; so does a trial that finds the reference failed
  or missing, or whose probe items are not the reference's (ids and order, recorded on it);
- a trial the pruner stops ends its run KILLED, with no error: being slow is not a failure;
- a configuration already completed in the study is not measured again (``duplicate_of``);
- every other trial's accuracy is compared with the reference's (trial 0): drift is
  reported and bounded by the constraint Optuna's sampler and ``best_trial`` honour.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, replace
from typing import Any

from specbench import tracking
from specbench.engines import WEIGHT_KEYS, planned_params, with_weights
from specbench.registry.schema import ModelConfig, PresetConfig
from specbench.registry.sweeps import SweepSpec
from specbench.sweep.probe import Measurement, ProbeSet, measure
from specbench.sweep.search import ROLE_ATTR, SweepStopped, TrialFailure, suggest_knob
from specbench.weights import ResolvedModel

# A reference trial's attrs that are its own (a duplicate copies the rest of its twin's).
OWN_ATTRS = (ROLE_ATTR, "worker", "mlflow_run_id", "sample_scores", "output_digests", "sample_ids")


def effective_knobs(spec: SweepSpec, preset: PresetConfig, params: dict[str, Any]) -> dict[str, Any]:
    """Each knob's value as the engine gets it: an unset batch size is the model's, an unset
    CPU KV space is the engine layer's default; None where vLLM picks (its own default)."""
    out = {}
    for k in spec.space:
        if k == "kv_cache_space_gb" and "kv_cache_memory_bytes" in params:
            out[k] = params["kv_cache_memory_bytes"] / 2**30
        elif k == "max_num_seqs" and "batch_size" in params:  # transformers
            out[k] = params["batch_size"]
        else:
            out[k] = params.get(k, getattr(preset, k))
    return out


def memory_hint(preset: PresetConfig, gpus: int) -> str:
    """vLLM puts an engine's root cause in its log, not in the exception: say the likely one."""
    import psutil

    avail = psutil.virtual_memory().available / 2**30
    if not gpus and preset.kv_cache_space_gb and preset.kv_cache_space_gb > avail:
        return f" (kv_cache_space_gb {preset.kv_cache_space_gb:g} > {avail:.1f} GiB of available memory)"
    return ""


@dataclass
class Objective:
    """What every trial of one worker shares; called by ``study.optimize`` once per trial."""

    spec: SweepSpec
    model: ModelConfig
    ref_name: str  # the reference preset's name
    ref_preset: PresetConfig
    located: ResolvedModel  # the reference plan's weights (planned_params reads their source)
    weights_path: str  # the same weights, materialized
    probe: ProbeSet
    study_name: str
    worker: str  # host:pid
    gpus: int
    parent_run_id: str | None = None  # set once the study's parent run is open

    def preset_for(self, knobs: dict[str, Any]) -> PresetConfig:
        return replace(self.ref_preset, description="", provenance={}, **knobs)

    def engine_params(self, preset: PresetConfig) -> dict[str, Any]:
        params = planned_params(self.spec.engine, self.model, preset, self.located, seed=0)
        return with_weights(params, self.weights_path)

    def __call__(self, trial: Any) -> float:
        import optuna

        role = trial.user_attrs.get(ROLE_ATTR, "sampled")
        knobs = {} if role == "reference" else {
            name: suggest_knob(trial, name, p) for name, p in self.spec.space.items()}
        trial.set_user_attr("worker", self.worker)
        preset = self.preset_for(knobs)
        params = self.engine_params(preset)
        # What the engine really gets for each knob (the reference's unset batch size included).
        trial.set_user_attr("knobs", effective_knobs(self.spec, preset, params))
        tags = {"model": self.model.key, "study": self.study_name, "trial": str(trial.number), "trial_role": role,
                "worker": self.worker, "preset": self.ref_name if role == "reference" else "(trial)"}
        run_params = {**{f"knob.{k}": v for k, v in knobs.items()},
                      **tracking.flatten(self.spec.engine, {k: v for k, v in params.items() if k not in WEIGHT_KEYS})}
        with tracking.open_run("sweep_trial", name=f"trial-{trial.number}", tags=tags, params=run_params,
                               parent=self.parent_run_id) as run:
            trial.set_user_attr("mlflow_run_id", run.run_id)
            state = "FAIL"
            try:
                value = self.trial(run, trial, role, knobs, preset, params)
                state = "COMPLETE"
                return value
            except optuna.TrialPruned:
                state = "PRUNED"
                run.status = tracking.KILLED  # stopped for being slow: not an error
                raise
            except SweepStopped as exc:
                trial.set_user_attr("error", str(exc))
                raise  # not caught by study.optimize: the study stops, its parent run FAILs
            finally:
                run.set_tags({"trial_state": state})

    def trial(self, run: tracking.RunHandle, trial: Any, role: str, knobs: dict[str, Any], preset: PresetConfig,
              params: dict[str, Any]) -> float:
        """Measure (or reuse a twin's measurement), record it on the trial and the run."""
        import optuna

        twin = self.completed_twin(trial, knobs) if knobs else None
        if twin is not None:
            return self.reuse(run, trial, twin)
        if role != "reference":
            self.check_reference(trial.study)  # already failed: stop before starting an engine

        def report(step: int, tps: float) -> None:
            run.log_metrics({"probe_tokens_per_s": tps}, step=step)
            trial.report(tps, step)
            if role != "reference" and trial.should_prune():
                raise optuna.TrialPruned(f"{tps:.1f} tokens/s after chunk {step}")

        try:
            m = measure(self.spec.engine, params, self.probe, report)
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            msg = f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:400] + memory_hint(preset, self.gpus)
            trial.set_user_attr("error", msg)
            run.record_error(exc)  # error tags and error.txt with the traceback
            run.set_tags({"error": msg[:250]})  # with the likely root cause
            run.status = tracking.FAILED
            if role == "reference":
                raise SweepStopped(f"the reference trial {trial.number} (preset {self.ref_name}) failed, so no "
                                   f"trial's accuracy can be judged: {msg}") from exc
            raise TrialFailure(msg) from exc
        attrs = {"tokens_per_s": m.tokens_per_s, "peak_rss_mb": m.peak_rss_mb, "probe_accuracy": m.accuracy,
                 "load_s": m.load_s, "generation_s": m.generation_s, "output_tokens": m.output_tokens,
                 "per_dataset": m.per_dataset, **m.memory}
        if role == "reference":  # what every later trial is compared with, item by item
            attrs.update(sample_scores=m.sample_scores, output_digests=m.output_digests, sample_ids=m.sample_ids)
        for k, v in attrs.items():
            trial.set_user_attr(k, v)
        metrics = {"output_tokens_per_s": m.tokens_per_s, "peak_rss_mb": m.peak_rss_mb,
                   "probe_accuracy": m.accuracy, "model_load_s": m.load_s, "generation_s": m.generation_s,
                   "output_tokens": m.output_tokens, **{f"{k}.main_metric": v for k, v in m.per_dataset.items()},
                   **m.memory}
        metrics.update(self.drift(run, trial, role, m))
        run.log_metrics(metrics)
        return m.tokens_per_s

    def drift(self, run: tracking.RunHandle, trial: Any, role: str, m: Measurement) -> dict[str, float]:
        """Accuracy drift against the reference (trial 0) and the constraint that bounds it."""
        tol = self.spec.constraints.accuracy_tolerance
        if role == "reference":
            trial.set_constraint("accuracy_drop", -tol)
            return {"accuracy_drift": 0.0, "flipped_samples": 0.0, "changed_outputs": 0.0}
        ref = self.reference(trial.study, trial)
        self.check_alignment(trial, ref, m)
        drift = m.accuracy - ref["probe_accuracy"]
        flipped = sum(a != b for a, b in zip(m.sample_scores, ref["sample_scores"], strict=True))
        changed = sum(a != b for a, b in zip(m.output_digests, ref["output_digests"], strict=True))
        trial.set_constraint("accuracy_drop", -drift - tol)
        trial.set_user_attr("accuracy_drift", drift)
        trial.set_user_attr("flipped_samples", flipped)
        trial.set_user_attr("changed_outputs", changed)
        trial.set_user_attr("feasible", -drift <= tol)
        return {"accuracy_drift": drift, "flipped_samples": float(flipped), "changed_outputs": float(changed),
                "feasible": float(-drift <= tol)}

    def reference(self, study: Any, trial: Any = None) -> dict[str, Any]:
        """Trial 0's measurement; waits while another worker is still measuring it (up to
        ``wait_reference_s``), failing stale trials meanwhile (Optuna's heartbeat: a reference whose
        worker was killed is failed and queued again).  A queued reference retry is this worker's to
        run: ``trial`` is queued again behind it and fails now.  Raises SweepStopped when there is
        no reference to compare with."""
        import optuna
        from optuna.storages import fail_stale_trials
        from optuna.trial import TrialState

        deadline = time.time() + self.spec.constraints.wait_reference_s
        while True:
            t = self.check_reference(study)
            if t is not None:
                return t.user_attrs
            with warnings.catch_warnings():  # "experimental" since Optuna 2.9, in name only
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                fail_stale_trials(study)
            last = self.reference_attempts(study)[-1]
            if trial is not None and last.state == TrialState.WAITING and last.number > 0:
                study.enqueue_trial(dict(trial.params), user_attrs={ROLE_ATTR: trial.user_attrs.get(ROLE_ATTR,
                                                                                                   "sampled")})
                raise TrialFailure(f"the reference's worker died; its retry (trial {last.number}) is queued "
                                   f"before this configuration, which is queued again")
            if time.time() > deadline:
                raise SweepStopped(f"the reference trial of study '{self.study_name}' is still not measured after "
                                   f"{self.spec.constraints.wait_reference_s:g} s (constraints.wait_reference_s); "
                                   "no trial's accuracy can be judged")
            time.sleep(2)

    @staticmethod
    def reference_attempts(study: Any) -> list[Any]:
        """The reference trial and its retries (a worker killed while measuring it), oldest first."""
        return sorted((t for t in study.get_trials(deepcopy=False) if t.user_attrs.get(ROLE_ATTR) == "reference"),
                      key=lambda t: t.number)

    def check_reference(self, study: Any) -> Any:
        """The completed reference trial, None while it (or its retry, after its worker died) is
        queued or running; SweepStopped when the latest attempt failed (or was pruned or killed)
        with no retry left, or the study has none."""
        from optuna.trial import TrialState

        refs = self.reference_attempts(study)
        if not refs:
            raise SweepStopped(f"study '{self.study_name}' has no reference trial: no trial's accuracy can be judged")
        done = next((t for t in refs if t.state == TrialState.COMPLETE), None)
        if done is not None:
            return done
        t = refs[-1]
        if t.state.is_finished():
            why = t.user_attrs.get("error") or f"it ended {t.state.name}"
            raise SweepStopped(f"the reference trial {t.number} of study '{self.study_name}' failed ({why}); no "
                               "trial's accuracy can be judged: fix the cause and start a new study (--study)")
        return None

    @staticmethod
    def check_alignment(trial: Any, ref: dict[str, Any], m: Measurement) -> None:
        """The trial answered the reference's items, in the reference's order (ids recorded on
        the reference trial; one measured before they were recorded: the same number of them),
        so item-by-item drift compares like with like; SweepStopped otherwise."""
        theirs = ref.get("sample_ids")
        if theirs is None:
            if len(ref["sample_scores"]) == len(m.sample_scores) == len(ref["output_digests"]):
                return
            raise SweepStopped(f"trial {trial.number} answered {len(m.sample_scores)} probe items, the reference "
                               f"{len(ref['sample_scores'])}: the probe is not the reference's")
        if list(theirs) != m.sample_ids:
            at = next((i for i, (a, b) in enumerate(zip(theirs, m.sample_ids, strict=False)) if a != b),
                      min(len(theirs), len(m.sample_ids)))
            mine = m.sample_ids[at] if at < len(m.sample_ids) else "(none)"
            raise SweepStopped(f"trial {trial.number}'s probe items are not the reference's (item {at}: {mine}, the "
                               f"reference's {theirs[at] if at < len(theirs) else '(none)'}; {len(m.sample_ids)} vs "
                               f"{len(theirs)} items): the data changed under the study; start a new study (--study)")

    @staticmethod
    def completed_twin(trial: Any, knobs: dict[str, Any]) -> Any:
        from optuna.trial import TrialState

        for t in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if t.params == knobs and t.number != trial.number:
                return t
        return None

    @staticmethod
    def reuse(run: tracking.RunHandle, trial: Any, twin: Any) -> float:
        """A configuration already measured in this study: take its figures, start nothing."""
        trial.set_user_attr("duplicate_of", twin.number)
        for k, v in twin.user_attrs.items():
            if k not in OWN_ATTRS:
                trial.set_user_attr(k, v)
        for key, value in twin.constraints.items():
            trial.set_constraint(key, value)
        run.set_tags({"duplicate_of": str(twin.number)})
        run.log_metrics({
            "output_tokens_per_s": twin.value, "peak_rss_mb": twin.user_attrs.get("peak_rss_mb"),
            "probe_accuracy": twin.user_attrs.get("probe_accuracy"),
            "accuracy_drift": twin.user_attrs.get("accuracy_drift")})
        return float(twin.value)
