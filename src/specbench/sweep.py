"""Engine sweeps: an Optuna study per model and spec, measured for real, into a tuned preset.

A sweep spec (``sweeps/<name>.yaml``) declares a search space over the vLLM knobs a preset
holds (batch size ``max_num_seqs``, ``max_num_batched_tokens``, ``enable_prefix_caching``,
``gpu_memory_utilization`` and, on the CPU backend, ``kv_cache_space_gb``), a fixed probe
set drawn from the model's category datasets, the accuracy constraint, the sampler, the
pruner and the budget.  Each trial starts a real engine with one configuration, answers the
probe chunk by chunk (reporting cumulative output tokens/s after each chunk, so Optuna's
pruner can stop a clearly slow trial early) and scores the answers.

Why these choices:

- Everything that Optuna already does is Optuna's: storages (sqlite by default, a journal
  file, or any RDB URL for many workers), samplers (TPE, seeded), pruners, constraints
  (``Trial.set_constraint``: ``study.best_trial`` and TPE both honour feasibility), and the
  exactly-once hand-out of enqueued trials to concurrent workers.
- The reference configuration (the model's registry preset) is trial 0 of every study,
  enqueued by the worker whose ``create_study`` succeeded (study creation is atomic in every
  storage), so it is measured exactly once however many workers start at the same time;
  every other trial's probe accuracy is compared with it (the constraint) and drift is
  reported: accuracy difference, items whose score flipped, and outputs that changed.
- An engine that cannot start (out of memory, impossible KV cache) or dies mid-probe is a
  FAIL trial with its error recorded; the study goes on.  A configuration that already
  completed in the study is not measured again: the trial reuses that measurement.
- Each trial is a nested MLflow run under one parent run per study; the parent gets the
  optimization history, parameter importances and the throughput-vs-memory Pareto front.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from specbench.registry.schema import ConfigError, DatasetConfig, ModelConfig, PresetConfig, Status, to_plain
from specbench.plan import tuned_preset_name
from specbench.registry import Registry, RegistryError, load_object, suggest
from specbench.tracking import KIND_TAG

log = logging.getLogger(__name__)

ROLE_ATTR = "role"  # trial user attr: "reference" for trial 0
DEFAULT_STORAGE_FILE = "optuna.db"

# Preset fields a sweep may vary, and the Python type of each.
KNOBS: dict[str, type] = {
    "max_num_seqs": int,
    "max_num_batched_tokens": int,
    "enable_prefix_caching": bool,
    "enforce_eager": bool,
    "gpu_memory_utilization": float,
    "kv_cache_space_gb": float,
}


# -- the spec ---------------------------------------------------------------------------------

@dataclass
class ParamSpace:
    """One knob's range: ``choices`` (categorical, also what a grid needs) or low/high[/step/log]."""

    choices: list[Any] | None = None
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False

    def check(self, at: str) -> None:
        if self.choices is not None:
            if not self.choices:
                raise ConfigError(f"{at}.choices", "needs at least one value")
            if self.low is not None or self.high is not None:
                raise ConfigError(f"{at}.choices", "give either choices or low/high, not both")
            return
        if self.low is None or self.high is None:
            raise ConfigError(f"{at}.low", "give choices, or both low and high")
        if not self.low < self.high:
            raise ConfigError(f"{at}.high", f"must be > low ({self.low}), got {self.high}")
        if self.log and (self.step is not None or self.low <= 0):
            raise ConfigError(f"{at}.log", "a log range needs low > 0 and no step")


@dataclass
class ProbeSpec:
    """The fixed probe: the first ``samples`` items of each dataset, answered in ``chunks``."""

    datasets: list[str] = field(default_factory=list)  # default: the category's generative primaries
    samples: int = 16  # per dataset
    max_new_tokens: int = 64  # capped further by each dataset's own max_new_tokens
    chunks: int = 2  # generate calls per dataset; each reports throughput to the pruner

    def check(self, at: str) -> None:
        if self.samples < 1:
            raise ConfigError(f"{at}.samples", f"must be >= 1, got {self.samples}")
        if self.max_new_tokens < 1:
            raise ConfigError(f"{at}.max_new_tokens", f"must be >= 1, got {self.max_new_tokens}")
        if not 1 <= self.chunks <= self.samples:
            raise ConfigError(f"{at}.chunks", f"must be between 1 and samples ({self.samples}), got {self.chunks}")


@dataclass
class ConstraintSpec:
    """Probe accuracy may drop at most ``accuracy_tolerance`` (absolute) below the reference's."""

    accuracy_tolerance: float = 0.05
    wait_reference_s: float = 3600.0  # a worker whose trial ends first waits this long for trial 0

    def check(self, at: str) -> None:
        if self.accuracy_tolerance < 0:
            raise ConfigError(f"{at}.accuracy_tolerance", f"must be >= 0, got {self.accuracy_tolerance}")


@dataclass
class SamplerSpec:
    """An Optuna sampler: tpe (default), random, or grid (every knob needs ``choices``)."""

    name: str = "tpe"
    seed: int = 0
    n_startup_trials: int = 3  # TPE: random trials before the model; small budgets want few
    multivariate: bool = True  # TPE: model the knobs jointly (they interact: batch x KV cache)
    # Measure the throughput corner first (largest batch, token budget, KV space and memory
    # fraction; prefix caching on; CUDA graphs on): the configuration throughput is expected
    # to peak at, unless memory or drift rule it out -- which is what the sweep then finds.
    warm_start: bool = True

    def check(self, at: str) -> None:
        if self.name not in SAMPLERS:
            raise ConfigError(f"{at}.name", f"unknown sampler '{self.name}'; {suggest(self.name, SAMPLERS)}")
        if self.n_startup_trials < 0:
            raise ConfigError(f"{at}.n_startup_trials", "must be >= 0")


@dataclass
class PrunerSpec:
    """An Optuna pruner over the cumulative tokens/s reported after each probe chunk."""

    name: str = "percentile"  # percentile | median | none
    percentile: float = 25.0  # percentile: prune below this percentile of earlier trials
    n_startup_trials: int = 2  # complete trials before pruning starts
    n_warmup_steps: int = 0  # chunks before a trial may be pruned

    def check(self, at: str) -> None:
        if self.name not in PRUNERS:
            raise ConfigError(f"{at}.name", f"unknown pruner '{self.name}'; {suggest(self.name, PRUNERS)}")
        if not 0 < self.percentile < 100:
            raise ConfigError(f"{at}.percentile", f"must be in (0, 100), got {self.percentile}")


@dataclass
class BudgetSpec:
    """This worker's budget, as Optuna counts it: trials and/or wall-clock seconds."""

    n_trials: int = 8
    timeout_s: float | None = None

    def check(self, at: str) -> None:
        if self.n_trials < 1:
            raise ConfigError(f"{at}.n_trials", f"must be >= 1, got {self.n_trials}")


@dataclass
class SweepSpec:
    """One sweep: what to vary, how to measure it, what to keep, how to search, how long."""

    name: str
    space: dict[str, ParamSpace]
    description: str = ""
    hardware: str = "cpu"  # cpu | gpu: the machine the space is meant for
    engine: str = "vllm"  # vllm; transformers varies only the batch size (cheap smoke sweeps)
    probe: ProbeSpec = field(default_factory=ProbeSpec)
    constraints: ConstraintSpec = field(default_factory=ConstraintSpec)
    sampler: SamplerSpec = field(default_factory=SamplerSpec)
    pruner: PrunerSpec = field(default_factory=PrunerSpec)
    budget: BudgetSpec = field(default_factory=BudgetSpec)
    enqueue: list[dict[str, Any]] = field(default_factory=list)  # configurations to try first
    reference_preset: str | None = None  # default: the model's own preset

    def __post_init__(self) -> None:
        if self.hardware not in ("cpu", "gpu"):
            raise ConfigError("hardware", f"must be cpu or gpu, got '{self.hardware}'")
        if self.engine not in ("vllm", "transformers"):
            raise ConfigError("engine", f"must be vllm or transformers, got '{self.engine}'")
        for part in ("probe", "constraints", "sampler", "pruner", "budget"):
            getattr(self, part).check(part)  # nested checks run here, so errors name the full key
        if not self.space:
            raise ConfigError("space", "declare at least one knob")
        for name, p in self.space.items():
            if name not in KNOBS:
                raise ConfigError(f"space.{name}", f"unknown knob; {suggest(name, KNOBS)}")
            p.check(f"space.{name}")
            _check_values(name, p)
        if self.engine == "transformers" and set(self.space) != {"max_num_seqs"}:
            raise ConfigError("space", "the transformers engine only has a batch size: space max_num_seqs only")
        if self.sampler.name == "grid" and any(p.choices is None for p in self.space.values()):
            raise ConfigError("sampler.name", "the grid sampler needs choices for every knob")
        for i, cfg in enumerate(self.enqueue):
            for k, v in cfg.items():
                if k not in self.space:
                    raise ConfigError(f"enqueue.{i}.{k}", f"not a knob of this space; {suggest(k, self.space)}")
                _check_value(f"enqueue.{i}.{k}", k, v)

    def digest(self) -> str:
        """What a study's trials mean: space, probe, engine, constraint (not the budget)."""
        from specbench.tracking import config_hash

        return config_hash({"space": asdict(self)["space"], "probe": asdict(self.probe), "engine": self.engine,
                            "tolerance": self.constraints.accuracy_tolerance, "reference": self.reference_preset})


def _check_value(key: str, knob: str, value: Any) -> Any:
    """A knob value of the right type and inside PresetConfig's own ranges."""
    want = KNOBS[knob]
    if want is bool and not isinstance(value, bool):
        raise ConfigError(key, f"{knob} takes true or false, got {value!r}")
    if want is int and (isinstance(value, bool) or not float(value).is_integer()):
        raise ConfigError(key, f"{knob} takes integers, got {value!r}")
    if want is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ConfigError(key, f"{knob} takes numbers, got {value!r}")
    value = want(value)
    try:
        replace(PresetConfig(gpu_memory_utilization=0.9), **{knob: value})
    except ConfigError as exc:
        raise ConfigError(key, exc.message) from None
    return value


def _check_values(name: str, p: ParamSpace) -> None:
    if p.choices is not None:
        for v in p.choices:
            _check_value(f"space.{name}.choices", name, v)
        return
    if KNOBS[name] is bool:
        raise ConfigError(f"space.{name}", "a true/false knob needs choices: [true, false]")
    _check_value(f"space.{name}.low", name, p.low)
    _check_value(f"space.{name}.high", name, p.high)


def sweeps_dir(reg: Registry) -> Path:
    """sweeps/ beside conf/ (the repository root)."""
    return reg.root.resolve().parent / "sweeps"


def default_spec_name() -> str:
    from specbench.weights import gpu_count

    return "gpu" if gpu_count() > 0 else "cpu"


def load_spec(reg: Registry, spec: str | os.PathLike[str] | None = None) -> tuple[SweepSpec, Path]:
    """A spec by path or by name under sweeps/ (default: cpu or gpu, by what this machine has)."""
    name = str(spec) if spec else default_spec_name()
    path = Path(name)
    if not path.is_file():
        path = sweeps_dir(reg) / (name if name.endswith(".yaml") else f"{name}.yaml")
    if not path.is_file():
        known = sorted(p.stem for p in sweeps_dir(reg).glob("*.yaml"))
        raise RegistryError(f"unknown sweep spec '{name}'; {suggest(Path(name).stem, known)}")
    data = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    if isinstance(data, dict):
        data.setdefault("name", path.stem)
    return load_object(data, SweepSpec, path), path


# -- the probe --------------------------------------------------------------------------------

@dataclass
class ProbeSet:
    """Prompts per dataset and the generate calls (steps) that answer them."""

    datasets: list[DatasetConfig]
    items: dict[str, list[Any]]
    prompts: dict[str, list[str]]
    chunks: int
    chat: bool
    max_new_tokens: int
    digest: str = ""

    def steps(self) -> list[tuple[DatasetConfig, int, int]]:
        """(dataset, start, stop) per generate call, round-robin over datasets so that the
        first steps a pruner sees already mix the workloads."""
        per_ds = []
        for ds in self.datasets:
            n = len(self.prompts[ds.key])
            bounds = [round(i * n / self.chunks) for i in range(self.chunks + 1)]
            per_ds.append([(ds, a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a])
        out = []
        for i in range(max(len(s) for s in per_ds)):
            out += [s[i] for s in per_ds if i < len(s)]
        return out

    def gen(self, ds: DatasetConfig, seed: int = 0) -> Any:
        from specbench.engines import GenParams

        assert ds.prompt is not None
        return GenParams(max_new_tokens=min(self.max_new_tokens, ds.prompt.max_new_tokens),
                         stop=tuple(ds.prompt.stop), seed=seed)


def probe_datasets(reg: Registry, model: ModelConfig, probe: ProbeSpec) -> list[DatasetConfig]:
    """The probe's datasets: the spec's, else the generative primaries of the model's category."""
    from specbench.plan import GENERATIVE

    cats = reg.categories_of(model.key) or [model.category]
    cat = reg.category(cats[0])
    pool = cat.datasets.primary + cat.datasets.secondary
    if probe.datasets:
        keys = probe.datasets
        for k in keys:
            reg.dataset(k)  # unknown name: one line with suggestions
    else:
        keys = [k for k in cat.datasets.primary if reg.dataset(k).status == Status.ready
                and reg.dataset(k).task_type in GENERATIVE]
        if not keys:
            keys = [k for k in pool if reg.dataset(k).status == Status.ready
                    and reg.dataset(k).task_type in GENERATIVE][:2]
    out = []
    for k in keys:
        ds = reg.dataset(k)
        if ds.status != Status.ready or ds.task_type not in GENERATIVE:
            raise RegistryError(f"probe dataset '{k}' must be ready and generative (it is {ds.status.value}, "
                                f"{ds.task_type.value}): throughput is measured on generated tokens")
        out.append(ds)
    if not out:
        raise RegistryError(f"category {cat.key} has no ready generative dataset for the probe; "
                            "set probe.datasets in the sweep spec")
    return out


def build_probe(reg: Registry, model: ModelConfig, probe: ProbeSpec) -> ProbeSet:
    """Load the probe's items and render their prompts, before any engine starts."""
    from specbench import data

    datasets = probe_datasets(reg, model, probe)
    items, prompts, digests = {}, {}, []
    for ds in datasets:
        loaded = data.load_items(ds, probe.samples)
        items[ds.key] = loaded.items
        prompts[ds.key] = [data.build_prompt(ds, it, loaded.fewshot) for it in loaded.items]
        digests.append(f"{ds.key}:{loaded.digest}")
    return ProbeSet(datasets, items, prompts, min(probe.chunks, min(len(p) for p in prompts.values())),
                    chat=model.instruct, max_new_tokens=probe.max_new_tokens, digest=",".join(digests))


@dataclass
class Measurement:
    """What one configuration did on the probe."""

    output_tokens: int
    generation_s: float
    load_s: float
    peak_rss_mb: float
    accuracy: float  # mean over datasets of each dataset's main metric
    per_dataset: dict[str, float]  # dataset -> main metric
    sample_scores: list[float]  # main-metric score per probe item, in probe order
    output_digests: list[str]  # sha1 of each probe output, in probe order (drift: changed outputs)
    memory: dict[str, float] = field(default_factory=dict)

    @property
    def tokens_per_s(self) -> float:
        return self.output_tokens / self.generation_s if self.generation_s > 0 else 0.0


def measure(kind: str, params: dict[str, Any], probe: ProbeSet,
            report: Callable[[int, float], None] | None = None) -> Measurement:
    """Start the engine, answer the probe step by step, score it; always close the engine.

    ``report(step, cumulative_tokens_per_s)`` is called after each generate call; it may
    raise (optuna.TrialPruned) to stop the trial early.
    """
    from specbench import scoring
    from specbench.engines import PeakRSS, make_engine

    outputs: dict[str, list[Any]] = {ds.key: [None] * len(probe.prompts[ds.key]) for ds in probe.datasets}
    tokens, wall = 0, 0.0
    engine = None
    with PeakRSS() as rss:
        try:
            engine = make_engine(kind, params)
            for step, (ds, a, b) in enumerate(probe.steps()):
                gen = engine.generate(probe.prompts[ds.key][a:b], probe.gen(ds), chat=probe.chat,
                                      system=ds.prompt.system if ds.prompt else None)
                outputs[ds.key][a:b] = gen.texts
                tokens += gen.output_tokens
                wall += gen.wall_s
                if report is not None:
                    report(step, tokens / wall if wall > 0 else 0.0)
            memory = engine.memory()
            load_s = engine.load_s
        finally:
            if engine is not None:
                engine.close()
    per_ds, sample_scores, digests = {}, [], []
    for ds in probe.datasets:
        rep = scoring.score(ds, probe.items[ds.key], outputs[ds.key])
        per_ds[ds.key] = rep.metrics[ds.main_metric]
        sample_scores += [s.scores.get(ds.main_metric, 0.0) for s in rep.samples]
        digests += [hashlib.sha1(json.dumps(o).encode()).hexdigest()[:12] for o in outputs[ds.key]]
    return Measurement(output_tokens=tokens, generation_s=wall, load_s=load_s, peak_rss_mb=rss.peak_mb,
                       accuracy=sum(per_ds.values()) / len(per_ds), per_dataset=per_ds,
                       sample_scores=sample_scores, output_digests=digests, memory=memory)


# -- Optuna plumbing --------------------------------------------------------------------------

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("percentile", "median", "none")


class TrialFailure(RuntimeError):
    """The engine could not start or died on the probe: the trial FAILs, the study goes on."""


# Which end of each knob favours throughput (a prior, not a rule: memory and drift decide).
THROUGHPUT_END: dict[str, Any] = {"max_num_seqs": max, "max_num_batched_tokens": max, "gpu_memory_utilization": max,
                                  "kv_cache_space_gb": max, "enable_prefix_caching": True, "enforce_eager": False}


def throughput_corner(spec: SweepSpec) -> dict[str, Any]:
    """The point of the space at the throughput end of every knob (the warm start)."""
    out: dict[str, Any] = {}
    for name, p in spec.space.items():
        end = THROUGHPUT_END[name]
        if p.choices is not None:
            out[name] = end(p.choices) if callable(end) else (end if end in p.choices else p.choices[0])
        else:
            high = p.high if p.step is None else p.low + math.floor((p.high - p.low) / p.step + 1e-9) * p.step
            out[name] = KNOBS[name](round(high, 10))
    return out


def make_sampler(spec: SweepSpec, seed: int | None = None) -> Any:
    import optuna

    s = spec.sampler
    seed = s.seed if seed is None else seed
    if s.name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if s.name == "grid":
        return optuna.samplers.GridSampler({k: list(p.choices or []) for k, p in spec.space.items()}, seed=seed)
    with warnings.catch_warnings():  # multivariate and group are "experimental" in name only by now
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # group: the reference trial has no parameters; without it, the intersection of the
        # trials' search spaces is empty and multivariate TPE silently samples independently.
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=s.n_startup_trials,
                                          multivariate=s.multivariate, group=s.multivariate)


def make_pruner(spec: SweepSpec) -> Any:
    import optuna

    p = spec.pruner
    if p.name == "none":
        return optuna.pruners.NopPruner()
    if p.name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=p.n_startup_trials, n_warmup_steps=p.n_warmup_steps)
    return optuna.pruners.PercentilePruner(p.percentile, n_startup_trials=p.n_startup_trials,
                                           n_warmup_steps=p.n_warmup_steps)


def storage_url(storage: str | None) -> str:
    """The storage as given, or the default sqlite file in the working directory."""
    return storage or f"sqlite:///{Path.cwd() / DEFAULT_STORAGE_FILE}"


def make_storage(storage: str | None = None) -> Any:
    """An Optuna storage from one string.

    - empty: ``sqlite:///./optuna.db``
    - an RDB URL (``sqlite:///...``, ``postgresql://...``, ``mysql+pymysql://...``): RDBStorage
      with heartbeats, so a worker killed mid-trial leaves a FAIL trial, not a RUNNING one
    - ``journal:PATH`` or a path ending in ``.journal``/``.log``: a JournalStorage file,
      safe for several processes on one machine (or a shared file system)
    """
    import optuna
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    url = storage_url(storage)
    if url.startswith("journal:") or url.endswith((".journal", ".log")):
        path = url.removeprefix("journal:")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(path))
    if "://" not in url:
        raise RegistryError(f"storage '{url}': expected an RDB URL (sqlite:///optuna.db, postgresql://...) "
                            "or a journal file (journal:PATH or PATH.journal)")
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):  # several workers on one file: wait for the lock, don't fail
        kwargs = {"connect_args": {"timeout": 60}}
    for attempt in range(3):
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" in name only
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=60, grace_period=180)
        except (ImportError, ModuleNotFoundError) as exc:
            raise RegistryError(f"storage '{url}': its database driver is missing ({exc})") from None
        except Exception as exc:  # noqa: BLE001 - workers creating the same new file race on its tables
            if attempt == 2:
                raise RegistryError(f"storage '{url}': cannot open it ({str(exc).splitlines()[0]})") from None
            time.sleep(1 + attempt)
    raise AssertionError("unreachable")


def suggest_knob(trial: Any, name: str, p: ParamSpace) -> Any:
    if p.choices is not None:
        return trial.suggest_categorical(name, list(p.choices))
    assert p.low is not None and p.high is not None
    if KNOBS[name] is int:
        return trial.suggest_int(name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
    return trial.suggest_float(name, p.low, p.high, step=p.step, log=p.log)


def hardware() -> str:
    """GPU names when there are GPUs, else the CPU model, core count and memory."""
    from specbench.weights import gpu_count

    gpus = gpu_count()
    if gpus:
        import torch

        return f"{gpus}x {torch.cuda.get_device_name(0)}"
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import psutil

    return f"CPU {model}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB"


# -- one sweep --------------------------------------------------------------------------------

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


def tuned_preset_path(reg: Registry, model_key: str) -> Path:
    return reg.root / "presets" / f"{tuned_preset_name(model_key)}.yaml"


class Sweep:
    """One worker on one study: builds the objective and runs it under MLflow."""

    def __init__(self, reg: Registry, model_key: str, spec: SweepSpec, *, spec_path: Path | None = None,
                 storage: str | None = None, study_name: str | None = None, seed: int | None = None,
                 on_trial: Callable[[dict[str, Any]], None] | None = None) -> None:
        from specbench.plan import plan_cell
        from specbench.weights import gpu_count

        self.reg = reg
        self.model = reg.model(model_key)
        self.spec = spec
        self.spec_path = spec_path
        self.on_trial = on_trial
        self.gpus = gpu_count()
        if spec.hardware == "gpu" and self.gpus == 0:
            raise RegistryError(f"sweep spec '{spec.name}' is for GPUs and this machine has none; "
                                "use --spec cpu")
        # The reference cell, planned exactly as `evaluate` plans it (weights, presets including
        # `tuned`, the model's engines, stale checkpoints); raises CellUnavailable with the reason.
        first = probe_datasets(reg, self.model, spec.probe)[0]
        ref = plan_cell(reg, model_key, first.key, preset=spec.reference_preset, engine=spec.engine)
        self.ref_name, self.ref_preset, self.resolved = ref.preset_name, ref.preset, ref.resolved
        self.probe = build_probe(reg, self.model, spec.probe)  # validates datasets before any engine
        self.storage_url = storage_url(storage)
        self.storage = make_storage(storage)
        self.study_name = study_name or f"sweep-{self.model.key}-{spec.name}"
        self.seed = seed
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    # -- study ------------------------------------------------------------------------------
    def open_study(self) -> tuple[Any, bool]:
        """Create the study (this worker then enqueues the reference and the spec's configs)
        or load it; creation is atomic, so exactly one worker enqueues."""
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
            theirs = study.user_attrs.get("spec_digest")
            if theirs and theirs != self.spec.digest():
                raise RegistryError(f"study '{self.study_name}' in {self.storage_url} was made with another "
                                    f"spec (digest {theirs}, this one {self.spec.digest()}); pass a new "
                                    "--study name") from None
            return study, False
        for k, v in {"model": self.model.key, "spec": self.spec.name, "spec_digest": self.spec.digest(),
                     "reference_preset": self.ref_name, "probe_digest": self.probe.digest,
                     "knobs": sorted(self.spec.space)}.items():
            study.set_user_attr(k, v)
        study.enqueue_trial({}, user_attrs={ROLE_ATTR: "reference"})
        for cfg in self.spec.enqueue:
            study.enqueue_trial(dict(cfg), user_attrs={ROLE_ATTR: "enqueued"})
        corner = throughput_corner(self.spec)
        if self.spec.sampler.warm_start and corner not in self.spec.enqueue:
            study.enqueue_trial(corner, user_attrs={ROLE_ATTR: "warm_start"})
        return study, True

    # -- MLflow -----------------------------------------------------------------------------
    def start_parent(self, study: Any, created: bool, experiment: str | None) -> Any:
        """One parent run per study: the project run when under `mlflow run`, else the run
        the study records (resumed), else a new one."""
        import mlflow

        from specbench import tracking

        tracking.setup(experiment)
        client = mlflow.MlflowClient()
        # Taken out of the environment as MLflow itself does, or the first nested trial run
        # would resume the project's run instead of starting a child of it.
        run_id = os.environ.pop("MLFLOW_RUN_ID", None)
        if not run_id:
            run_id = study.user_attrs.get("mlflow_parent_run_id")
            if not run_id and not created:  # the creator is about to record it
                deadline = time.time() + 60
                while not run_id and time.time() < deadline:
                    time.sleep(1)
                    run_id = study.user_attrs.get("mlflow_parent_run_id")  # read from storage
            if run_id:
                try:
                    client.get_run(run_id)
                except mlflow.exceptions.MlflowException:
                    run_id = None  # recorded in another tracking store
        if run_id:
            exp = client.get_run(run_id).info.experiment_id
            mlflow.set_experiment(experiment_id=exp)
        tags = {KIND_TAG: "sweep", "model": self.model.key, "sweep_spec": self.spec.name,
                "study": self.study_name, "storage": _redact(self.storage_url),
                "git_commit": tracking.git_commit(), "hardware": hardware()}
        parent = mlflow.start_run(run_id=run_id, run_name=None if run_id else f"sweep:{self.model.key}",
                                  tags=None if run_id else tags)
        if run_id:
            mlflow.set_tags(tags)
        if not study.user_attrs.get("mlflow_parent_run_id"):
            study.set_user_attr("mlflow_parent_run_id", parent.info.run_id)
        if "sweep.study" not in client.get_run(parent.info.run_id).data.params:
            # Prefixed: `mlflow run` already logged its entry point's own parameters (model, spec, ...).
            spec = to_plain(self.spec)
            mlflow.log_params({"sweep.model": self.model.key, "sweep.study": self.study_name,
                               "sweep.reference_preset": self.ref_name,
                               **{k: v for k, v in tracking.flatten("spec", spec).items() if k != "spec.description"}})
            mlflow.log_dict(spec, "sweep_spec.json")
        return parent

    # -- the objective ------------------------------------------------------------------------
    def preset_for(self, knobs: dict[str, Any]) -> PresetConfig:
        return replace(self.ref_preset, description="", provenance={}, **knobs)

    def engine_params(self, preset: PresetConfig) -> dict[str, Any]:
        from specbench.engines import planned_params

        return planned_params(self.spec.engine, self.model, preset, self.resolved, seed=0)

    def objective(self, trial: Any) -> float:
        import mlflow
        import optuna

        from specbench import tracking

        role = trial.user_attrs.get(ROLE_ATTR, "sampled")
        knobs = {} if role == "reference" else {
            name: suggest_knob(trial, name, p) for name, p in self.spec.space.items()}
        trial.set_user_attr("worker", self.worker)
        preset = self.preset_for(knobs)
        params = self.engine_params(preset)
        # What the engine really gets for each knob (the reference's unset batch size included).
        trial.set_user_attr("knobs", effective_knobs(self.spec, preset, params))
        run = mlflow.start_run(run_name=f"trial-{trial.number}", nested=True, tags={
            KIND_TAG: "sweep_trial", "model": self.model.key, "study": self.study_name,
            "trial": str(trial.number), "trial_role": role, "worker": self.worker,
            "preset": self.ref_name if role == "reference" else "(trial)"})
        trial.set_user_attr("mlflow_run_id", run.info.run_id)
        mlflow.log_params({**{f"knob.{k}": v for k, v in knobs.items()},
                           **tracking.flatten(self.spec.engine, {k: v for k, v in params.items()
                                                                 if k not in ("model", "tokenizer")})})
        state = "FAIL"
        try:
            twin = self._completed_twin(trial, knobs) if knobs else None
            if twin is not None:
                value = self._reuse(trial, twin)
                state = "COMPLETE"
                return value

            def report(step: int, tps: float) -> None:
                mlflow.log_metric("probe_tokens_per_s", tps, step=step)
                trial.report(tps, step)
                if role != "reference" and trial.should_prune():
                    raise optuna.TrialPruned(f"{tps:.1f} tokens/s after chunk {step}")

            try:
                m = measure(self.spec.engine, params, self.probe, report)
            except optuna.TrialPruned:
                state = "PRUNED"
                raise
            except Exception as exc:
                msg = f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:400] + memory_hint(preset, self.gpus)
                trial.set_user_attr("error", msg)
                mlflow.set_tags({"error": msg[:250], "error_type": type(exc).__name__})
                raise TrialFailure(msg) from exc
            attrs = {"tokens_per_s": m.tokens_per_s, "peak_rss_mb": m.peak_rss_mb, "probe_accuracy": m.accuracy,
                     "load_s": m.load_s, "generation_s": m.generation_s, "output_tokens": m.output_tokens,
                     "per_dataset": m.per_dataset, **m.memory}
            if role == "reference":
                attrs.update(sample_scores=m.sample_scores, output_digests=m.output_digests)
            for k, v in attrs.items():
                trial.set_user_attr(k, v)
            metrics = {"output_tokens_per_s": m.tokens_per_s, "peak_rss_mb": m.peak_rss_mb,
                       "probe_accuracy": m.accuracy, "model_load_s": m.load_s, "generation_s": m.generation_s,
                       "output_tokens": m.output_tokens, **{f"{k}.main_metric": v for k, v in m.per_dataset.items()},
                       **m.memory}
            metrics.update(self._drift(trial, role, m))
            mlflow.log_metrics(tracking.clean_metrics(metrics))
            state = "COMPLETE"
            return m.tokens_per_s
        finally:
            mlflow.set_tag("trial_state", state)
            mlflow.end_run({"COMPLETE": "FINISHED", "PRUNED": "KILLED"}.get(state, "FAILED"))

    def _drift(self, trial: Any, role: str, m: Measurement) -> dict[str, float]:
        """Accuracy drift against the reference (trial 0) and the constraint that bounds it."""
        import mlflow

        tol = self.spec.constraints.accuracy_tolerance
        if role == "reference":
            trial.set_constraint("accuracy_drop", -tol)
            return {"accuracy_drift": 0.0, "flipped_samples": 0.0, "changed_outputs": 0.0}
        ref = self.reference(trial.study)
        if ref is None:
            trial.set_user_attr("drift", "unknown: the reference trial failed")
            mlflow.set_tag("accuracy_drift", "unknown (reference failed)")
            return {}
        drift = m.accuracy - ref["probe_accuracy"]
        flipped = sum(a != b for a, b in zip(m.sample_scores, ref["sample_scores"], strict=False))
        changed = sum(a != b for a, b in zip(m.output_digests, ref["output_digests"], strict=False))
        trial.set_constraint("accuracy_drop", -drift - tol)
        trial.set_user_attr("accuracy_drift", drift)
        trial.set_user_attr("flipped_samples", flipped)
        trial.set_user_attr("changed_outputs", changed)
        trial.set_user_attr("feasible", -drift <= tol)
        return {"accuracy_drift": drift, "flipped_samples": float(flipped), "changed_outputs": float(changed),
                "feasible": float(-drift <= tol)}

    def reference(self, study: Any) -> dict[str, Any] | None:
        """Trial 0's measurement; waits while another worker is still measuring it."""
        from optuna.trial import TrialState

        deadline = time.time() + self.spec.constraints.wait_reference_s
        while True:
            refs = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get(ROLE_ATTR) == "reference"]
            if not refs:
                return None
            t = refs[0]
            if t.state == TrialState.COMPLETE:
                return t.user_attrs
            if t.state.is_finished() or time.time() > deadline:
                return None
            time.sleep(2)

    def _completed_twin(self, trial: Any, knobs: dict[str, Any]) -> Any:
        from optuna.trial import TrialState

        for t in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if t.params == knobs and t.number != trial.number:
                return t
        return None

    def _reuse(self, trial: Any, twin: Any) -> float:
        """A configuration already measured in this study: take its figures, start nothing."""
        import mlflow

        from specbench import tracking

        trial.set_user_attr("duplicate_of", twin.number)
        for k, v in twin.user_attrs.items():
            if k not in (ROLE_ATTR, "worker", "mlflow_run_id", "sample_scores", "output_digests"):
                trial.set_user_attr(k, v)
        for key, value in twin.constraints.items():
            trial.set_constraint(key, value)
        mlflow.set_tag("duplicate_of", str(twin.number))
        mlflow.log_metrics(tracking.clean_metrics({
            "output_tokens_per_s": twin.value, "peak_rss_mb": twin.user_attrs.get("peak_rss_mb"),
            "probe_accuracy": twin.user_attrs.get("probe_accuracy"),
            "accuracy_drift": twin.user_attrs.get("accuracy_drift")}))
        return float(twin.value)

    # -- run ------------------------------------------------------------------------------------
    def run(self, n_trials: int | None = None, timeout_s: float | None = None, experiment: str | None = None,
            write_preset: bool = True) -> SweepResult:
        import mlflow

        study, created = self.open_study()
        parent = self.start_parent(study, created, experiment)
        n = n_trials or self.spec.budget.n_trials
        timeout = timeout_s if timeout_s is not None else self.spec.budget.timeout_s

        def callback(study: Any, frozen: Any) -> None:
            if self.on_trial:
                self.on_trial(trial_row(frozen, self.spec))

        try:
            study.optimize(self.objective, n_trials=n, timeout=timeout, catch=(TrialFailure,),
                           callbacks=[callback], gc_after_trial=True)
            result = self.finish(study, parent.info.run_id, write_preset)
            mlflow.end_run("FINISHED")
            return result
        except BaseException:
            mlflow.end_run("KILLED")
            raise

    def finish(self, study: Any, parent_run_id: str, write_preset: bool) -> SweepResult:
        """Parent-run summary: best trial, counts, plots, trials table; then the tuned preset."""
        import mlflow
        from optuna.trial import TrialState

        from specbench import tracking

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
        mlflow.log_metrics(tracking.clean_metrics(metrics))
        tracking.log_samples([{k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in r.items()}
                              for r in rows], artifact_file="trials.json")
        artifacts = log_plots(study, rows)
        result = SweepResult(self.study_name, self.storage_url, parent_run_id, rows,
                             trial_row(best, self.spec) if best is not None else None, artifacts=artifacts)
        if best is None:
            mlflow.set_tag("best", "none: no feasible completed trial")
            return result
        params = json.dumps(best.params, sort_keys=True) if best.params else "(the reference preset)"
        mlflow.set_tags({"best_trial": str(best.number), "best_params": params})
        if write_preset:
            knobs = {k: v for k, v in best.user_attrs.get("knobs", best.params).items() if v is not None}
            path = write_tuned_preset(self.reg, self.model.key, self.preset_for(knobs),
                                      self.provenance(best, ref, parent_run_id))
            mlflow.log_artifact(str(path))
            result.preset_name, result.preset_path = tuned_preset_name(self.model.key), str(path)
        return result

    def provenance(self, best: Any, ref: Any, parent_run_id: str) -> dict[str, str]:
        from specbench import tracking

        u = best.user_attrs
        prov = {
            "study": self.study_name, "storage": _redact(self.storage_url), "trial": str(best.number),
            "spec": str(self.spec_path or self.spec.name), "spec_digest": self.spec.digest(),
            "reference_preset": self.ref_name, "engine": self.spec.engine, "probe": self.probe.digest,
            "output_tokens_per_s": f"{best.value:.2f}",
            "peak_rss_mb": f"{u.get('peak_rss_mb', float('nan')):.0f}",
            "probe_accuracy": f"{u.get('probe_accuracy', float('nan')):.4f}",
            "accuracy_drift": f"{u.get('accuracy_drift', 0.0):+.4f}",
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "hardware": hardware(), "git_commit": tracking.git_commit(), "mlflow_run_id": parent_run_id,
        }
        if ref is not None and ref.value:
            prov["reference_output_tokens_per_s"] = f"{ref.value:.2f}"
            prov["speedup_vs_reference"] = f"{best.value / ref.value:.3f}"
        return prov


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
            "mlflow_run_id": u.get("mlflow_run_id"), "worker": u.get("worker")}
    return row


# -- plots ------------------------------------------------------------------------------------

def pareto_front(points: list[tuple[float, float, int]]) -> list[tuple[float, float, int]]:
    """Non-dominated (memory, throughput, id) points: no other point has less or equal memory
    and more or equal throughput (one strictly better)."""
    front = []
    for m, v, i in points:
        if not any((m2 <= m and v2 >= v) and (m2 < m or v2 > v) for m2, v2, _ in points):
            front.append((m, v, i))
    return sorted(front)


def log_plots(study: Any, rows: list[dict[str, Any]]) -> list[str]:
    """Optimization history, parameter importances, throughput-vs-memory Pareto front (PNGs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow
    import optuna
    import optuna.visualization.matplotlib as ovm

    logged = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        plots = {"optimization_history.png": lambda: ovm.plot_optimization_history(
                     study, target_name="output tokens/s"),
                 "param_importances.png": lambda: ovm.plot_param_importances(study, target_name="output tokens/s")}
        distinct = {json.dumps(r["params"], sort_keys=True) for r in rows
                    if r["state"] == "COMPLETE" and r.get("params")}
        if len(distinct) < 3:  # Optuna would draw equal bars: say why there is no figure instead
            plots.pop("param_importances.png")
            mlflow.set_tag("plot.param_importances.png",
                           f"not drawn: {len(distinct)} distinct completed configurations (3 needed)")
        for name, make in plots.items():
            try:
                ax = make()
                fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
                fig.set_size_inches(8, 5)
                fig.tight_layout()
                mlflow.log_figure(fig, name)
                plt.close(fig)
                logged.append(name)
            except Exception as exc:  # too few trials for importances, one knob, ...
                log.warning("%s not drawn: %s", name, exc)
                mlflow.set_tag(f"plot.{name}", f"not drawn: {str(exc)[:200]}")
    done = [r for r in rows if r["state"] == "COMPLETE" and r["peak_rss_mb"] is not None
            and r["output_tokens_per_s"] is not None and r["duplicate_of"] is None]
    if done:
        fig, ax = plt.subplots(figsize=(8, 5))
        feas = [r for r in done if r["feasible"] is not False]
        infeas = [r for r in done if r["feasible"] is False]
        ax.scatter([r["peak_rss_mb"] for r in feas], [r["output_tokens_per_s"] for r in feas],
                   c="tab:blue", label="trial")
        if infeas:
            ax.scatter([r["peak_rss_mb"] for r in infeas], [r["output_tokens_per_s"] for r in infeas],
                       c="tab:red", marker="x", label="accuracy constraint violated")
        front = pareto_front([(r["peak_rss_mb"], r["output_tokens_per_s"], r["trial"]) for r in feas])
        if front:
            ax.step([p[0] for p in front], [p[1] for p in front], where="post", c="tab:orange",
                    label="Pareto front")
        for r in done:
            label = f"{r['trial']}" + (" (ref)" if r["role"] == "reference" else "")
            ax.annotate(label, (r["peak_rss_mb"], r["output_tokens_per_s"]), textcoords="offset points",
                        xytext=(4, 4), fontsize=8)
        ax.set_xlabel("peak memory, MB (RSS of the process tree; GPU runs: see gpu_used_mb)")
        ax.set_ylabel("output tokens/s on the probe")
        ax.set_title(f"{study.study_name}: throughput vs memory")
        ax.legend()
        fig.tight_layout()
        mlflow.log_figure(fig, "pareto_front.png")
        plt.close(fig)
        logged.append("pareto_front.png")
    return logged


# -- the tuned preset ---------------------------------------------------------------------------

def write_tuned_preset(reg: Registry, model_key: str, preset: PresetConfig, provenance: dict[str, str]) -> Path:
    """conf/presets/tuned_<model>.yaml, validated through the registry's own loader first."""
    name = tuned_preset_name(model_key)
    body = asdict(preset) | {"provenance": provenance,
                             "description": f"Tuned by `specbench sweep --model {model_key}` "
                                            f"(study {provenance.get('study')}, trial {provenance.get('trial')})"}
    path = tuned_preset_path(reg, model_key)
    load_object(body, PresetConfig, path, prefix=f"presets.{name}")  # the loader's checks, before writing
    path.parent.mkdir(parents=True, exist_ok=True)
    text = ("# Written by `specbench sweep`; re-run the sweep rather than editing by hand.\n"
            + OmegaConf.to_yaml(OmegaConf.create({"presets": {name: body}})))
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)  # atomic: concurrent workers never leave half a file
    return path


# -- helpers ------------------------------------------------------------------------------------

def _redact(url: str) -> str:
    """A storage URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url


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
