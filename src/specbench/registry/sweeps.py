"""Schema of sweep specs (``sweeps/<name>.yaml``): what a sweep varies, measures, keeps and searches.

They live with the other registry schemas so that a spec is checked exactly as ``conf/`` is
(``registry.load_object``: unknown keys with suggestions, wrong types and out-of-range values
as one line naming the file and key).  ``specbench.sweep`` runs them; nothing here imports
Optuna: the sampler and pruner names are checked against the lists below, which
``sweep.search`` turns into Optuna objects.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from specbench.identity import digest
from specbench.registry.loader import Registry, RegistryError, load_object, read_yaml, suggest
from specbench.registry.schema import ConfigError, PresetConfig

# Preset fields a sweep may vary, and the Python type of each.
KNOBS: dict[str, type] = {
    "max_num_seqs": int,
    "max_num_batched_tokens": int,
    "enable_prefix_caching": bool,
    "enforce_eager": bool,
    "gpu_memory_utilization": float,
    "kv_cache_space_gb": float,
}
SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("percentile", "median", "none")


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
        if self.step is not None and not 0 < self.step <= self.high - self.low:
            raise ConfigError(f"{at}.step", f"must be > 0 and at most high - low ({self.high - self.low}), "
                                            f"got {self.step}")


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
        if not self.accuracy_tolerance >= 0:  # `not >=`: NaN is refused too
            raise ConfigError(f"{at}.accuracy_tolerance", f"must be >= 0, got {self.accuracy_tolerance}")
        if not 0 <= self.wait_reference_s < float("inf"):
            raise ConfigError(f"{at}.wait_reference_s",
                              f"must be a number of seconds >= 0, got {self.wait_reference_s}")


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
            raise ConfigError(f"{at}.n_startup_trials", f"must be >= 0, got {self.n_startup_trials}")
        if not 0 <= self.seed < 2**32:
            raise ConfigError(f"{at}.seed", f"must be between 0 and 2**32 - 1, got {self.seed}")


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
        for key in ("n_startup_trials", "n_warmup_steps"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{at}.{key}", f"must be >= 0, got {getattr(self, key)}")


@dataclass
class BudgetSpec:
    """This worker's budget, as Optuna counts it: trials and/or wall-clock seconds."""

    n_trials: int = 8
    timeout_s: float | None = None

    def check(self, at: str) -> None:
        if self.n_trials < 1:
            raise ConfigError(f"{at}.n_trials", f"must be >= 1, got {self.n_trials}")
        if self.timeout_s is not None and not 0 < self.timeout_s < float("inf"):
            raise ConfigError(f"{at}.timeout_s", f"must be a number of seconds > 0, got {self.timeout_s}")


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
                check_value(f"enqueue.{i}.{k}", k, v)

    def digest(self) -> str:
        """What a study's trials mean: space, probe, engine, constraint (not the budget).

        Recorded on every study and compared when a worker joins one, so these bytes must
        not change: none of these fields is prose, so the identity rule hashes them exactly as
        the former ``tracking.config_hash`` did."""
        return digest({"space": asdict(self)["space"], "probe": asdict(self.probe), "engine": self.engine,
                       "tolerance": self.constraints.accuracy_tolerance, "reference": self.reference_preset})


def check_value(key: str, knob: str, value: Any) -> Any:
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
            check_value(f"space.{name}.choices", name, v)
        return
    if KNOBS[name] is bool:
        raise ConfigError(f"space.{name}", "a true/false knob needs choices: [true, false]")
    check_value(f"space.{name}.low", name, p.low)
    check_value(f"space.{name}.high", name, p.high)


def sweeps_dir(reg: Registry) -> Path:
    """sweeps/ beside conf/ (the repository root)."""
    return reg.root.resolve().parent / "sweeps"


def load_sweep_spec(reg: Registry, spec: str | os.PathLike[str]) -> tuple[SweepSpec, Path]:
    """A spec by path, or by name under sweeps/; an unknown name is one line with suggestions."""
    name = str(spec)
    path = Path(name)
    if not path.is_file():
        path = sweeps_dir(reg) / (name if name.endswith(".yaml") else f"{name}.yaml")
    if not path.is_file():
        known = sorted(p.stem for p in sweeps_dir(reg).glob("*.yaml"))
        raise RegistryError(f"unknown sweep spec '{name}'; {suggest(Path(name).stem, known)}")
    data = read_yaml(path)
    if isinstance(data, dict):
        data.setdefault("name", path.stem)
    return load_object(data, SweepSpec, path), path


__all__ = ["KNOBS", "PRUNERS", "SAMPLERS", "BudgetSpec", "ConstraintSpec", "ParamSpace", "ProbeSpec", "PrunerSpec",
           "SamplerSpec", "SweepSpec", "check_value", "load_sweep_spec", "sweeps_dir"]
