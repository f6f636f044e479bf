"""Optuna glue: a spec's sampler, pruner and knob distributions, and storages from one string.

Everything Optuna already does stays Optuna's: storages (sqlite by default, a journal file, or
any RDB URL for many workers), samplers (TPE, seeded), pruners, constraints and the
exactly-once hand-out of enqueued trials to concurrent workers.  This module only maps the
spec onto those objects.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from specbench import settings
from specbench.registry import RegistryError
from specbench.registry.sweeps import KNOBS, ParamSpace, SweepSpec

ROLE_ATTR = "role"  # trial user attr: reference (trial 0), warm_start, enqueued, sampled
DEFAULT_STORAGE_FILE = "optuna.db"
GRACE_FACTOR = 3  # a trial is stale after this many missed heartbeats


def heartbeat_s() -> float:
    """The heartbeat interval: $SPECBENCH_SWEEP_HEARTBEAT_S, else 60 s.  Short intervals find a dead
    worker sooner but cost a database write each; the grace period is three intervals, so one slow
    beat (a loaded machine) does not fail a live trial."""
    return settings.SWEEP_HEARTBEAT_S.get()


class TrialFailure(RuntimeError):
    """The engine could not start or died on the probe: the trial FAILs, the study goes on."""


class SweepStopped(RuntimeError):
    """The accuracy guard cannot judge trials (the reference trial failed, is missing, or the
    probe's items are not the reference's): the study stops with this reason rather than
    optimize throughput unguarded."""


# Which end of each knob favours throughput (a prior, not a rule: memory and drift decide).
THROUGHPUT_END: dict[str, Any] = {"max_num_seqs": max, "max_num_batched_tokens": max, "gpu_memory_utilization": max,
                                  "kv_cache_space_gb": max, "enable_prefix_caching": True, "enforce_eager": False}


def distribution(name: str, p: ParamSpace) -> Any:
    """The Optuna distribution a trial samples this knob from (as ``suggest_knob`` asks for it)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if p.choices is not None:
        return CategoricalDistribution(list(p.choices))
    assert p.low is not None and p.high is not None
    with warnings.catch_warnings():  # a range that its step does not divide: Optuna snaps it, as it will when sampling
        warnings.simplefilter("ignore", UserWarning)
        if KNOBS[name] is int:
            return IntDistribution(int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
        return FloatDistribution(p.low, p.high, step=p.step, log=p.log)


def suggest_knob(trial: Any, name: str, p: ParamSpace) -> Any:
    if p.choices is not None:
        return trial.suggest_categorical(name, list(p.choices))
    assert p.low is not None and p.high is not None
    if KNOBS[name] is int:
        return trial.suggest_int(name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
    return trial.suggest_float(name, p.low, p.high, step=p.step, log=p.log)


def throughput_corner(spec: SweepSpec) -> dict[str, Any]:
    """The point of the space at the throughput end of every knob (the warm start); a range's
    high end as Optuna's own distribution snaps it to the step, so the point is in the space."""
    out: dict[str, Any] = {}
    for name, p in spec.space.items():
        end = THROUGHPUT_END[name]
        if p.choices is not None:
            out[name] = end(p.choices) if callable(end) else (end if end in p.choices else p.choices[0])
        else:
            out[name] = KNOBS[name](distribution(name, p).high)
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


def is_journal(url: str) -> bool:
    return url.startswith("journal:") or url.endswith((".journal", ".log"))


def make_storage(storage: str | None = None,
                 failed_trial_callback: Callable[[Any, Any], None] | None = None) -> Any:
    """An Optuna storage from one string.

    - empty: ``sqlite:///./optuna.db``
    - an RDB URL (``sqlite:///...``, ``postgresql://...``, ``mysql+pymysql://...``): RDBStorage
      with heartbeats (:func:`heartbeat_s`), so a worker killed mid-trial leaves a FAIL trial, not a
      RUNNING one; ``failed_trial_callback`` gets each such trial (``Sweep`` retries it with
      Optuna's ``RetryHeartbeatStaleTrialCallback``)
    - ``journal:PATH`` or a path ending in ``.journal``/``.log``: a JournalStorage file,
      safe for several processes on one machine (or a shared file system)
    """
    import optuna
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    url = storage_url(storage)
    if is_journal(url):
        path = url.removeprefix("journal:")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(path))
    if "://" not in url:
        raise RegistryError(f"storage '{redact(url)}': expected an RDB URL (sqlite:///optuna.db, postgresql://...) "
                            "or a journal file (journal:PATH or PATH.journal)")
    beat = heartbeat_s()
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):  # several workers on one file: wait for the lock, don't fail
        kwargs = {"connect_args": {"timeout": 60}}
    for attempt in range(3):
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" in name only
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=max(1, round(beat)),
                                  grace_period=max(2, round(GRACE_FACTOR * beat)),
                                  failed_trial_callback=failed_trial_callback)
        except (ImportError, ModuleNotFoundError) as exc:
            raise RegistryError(f"storage '{redact(url)}': its database driver is missing ({exc})") from None
        except Exception as exc:  # noqa: BLE001 - workers creating the same new file race on its tables
            if attempt == 2:
                first = redact(str(exc).splitlines()[0])
                raise RegistryError(f"storage '{redact(url)}': cannot open it ({first})") from None
            time.sleep(1 + attempt)
    raise AssertionError("unreachable")


def redact(url: str) -> str:
    """A storage URL without its password (journal files and sqlite paths as they are): the one
    redaction rule, :func:`specbench.redact.redact_url`."""
    from specbench.redact import redact_url

    return redact_url(url)
