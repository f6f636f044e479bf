"""Engines behind one interface, each one module that registers itself.

An engine module defines an :class:`Engine` subclass decorated with :func:`register_engine`,
which records what it can do (``generate``, ``loglikelihood``, ``images``, ``embeddings``) and
whether it serves local weights or a remote endpoint.  Every module of this package is
imported on first use (and any module named by a ``specbench.engines`` entry point), so adding
an engine is one new module: the CLI's ``--engine`` choices, the planners' checks and
``specbench validate`` all read this registry.  Engine modules import their heavy libraries
inside methods, so listing or validating the registry never imports torch or vLLM.

The class provides two class methods: ``planned_params(model, preset, weights, seed)`` (the
engine arguments a run will use, computed before the engine starts and logged verbatim) and
``start(params, **options)`` (the engine, started with them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from specbench.engines.base import (
    Embedded,
    Engine,
    EngineStats,
    Generation,
    GenParams,
    Images,
    LoglikResult,
    Message,
    PeakRSS,
    Prompt,
    Timer,
)
from specbench.registry.schema import ModelConfig, PresetConfig
from specbench.weights import SIMULATED_SOURCE, ResolvedModel

CAPABILITIES = frozenset({"generate", "loglikelihood", "images", "embeddings"})
# Engine arguments that say where weights are, not how they run: filled in when a cell is
# prepared, and never part of an identity.
WEIGHT_KEYS = ("model", "tokenizer")
# Engine arguments that say how requests travel, not what comes back (an endpoint's key variable,
# concurrency, timeout, retries): logged, but never part of a cell's identity or a cache scope.
TRANSPORT_KEYS = ("api_key_env", "concurrency", "timeout_s", "max_retries")


def identity_params(params: dict[str, Any]) -> dict[str, Any]:
    """The engine arguments that can change an output: all but the weights' location and transport."""
    return {k: v for k, v in params.items() if k not in WEIGHT_KEYS and k not in TRANSPORT_KEYS}


@dataclass(frozen=True)
class EngineInfo:
    name: str
    cls: type[Engine]
    capabilities: frozenset[str]
    remote: bool  # True: an endpoint serving the model elsewhere (no local weights to resolve)
    package: str | None  # distribution whose version is part of the generation cache's identity

    def can(self, capability: str) -> bool:
        return capability in self.capabilities

    def version(self) -> str | None:
        """The engine library's version, from package metadata (no import)."""
        for dist in (self.package, f"{self.package}-cpu") if self.package else ():
            try:
                return metadata.version(dist)
            except metadata.PackageNotFoundError:
                continue
        return None


ENGINES: dict[str, EngineInfo] = {}


def register_engine(name: str, *, capabilities: set[str] | frozenset[str], remote: bool = False,
                    package: str | None = None) -> Callable[[type[Engine]], type[Engine]]:
    """Class decorator: record an Engine subclass under ``name`` with what it can do."""
    unknown = set(capabilities) - CAPABILITIES
    if unknown:
        raise ValueError(f"engine '{name}': unknown capabilities {sorted(unknown)}; valid: {sorted(CAPABILITIES)}")

    def add(cls: type[Engine]) -> type[Engine]:
        old = ENGINES.get(name)
        if old is not None and old.cls.__qualname__ != cls.__qualname__:
            raise ValueError(f"engine '{name}' is registered twice ({old.cls.__module__} and {cls.__module__})")
        cls.name = name
        ENGINES[name] = EngineInfo(name, cls, frozenset(capabilities), remote, package)
        return cls

    return add


def load_engines() -> dict[str, EngineInfo]:
    """Import every engine module once (this package's, then entry points)."""
    from specbench.extensions import import_all

    import_all(__name__, __path__, "specbench.engines")
    return ENGINES


def engine_names() -> list[str]:
    return sorted(load_engines())


def engine_info(name: str) -> EngineInfo:
    engines = load_engines()
    if name not in engines:
        raise ValueError(f"unknown engine '{name}'; valid: {', '.join(sorted(engines))}")
    return engines[name]


def planned_params(kind: str, model: ModelConfig, preset: PresetConfig, resolved: ResolvedModel,
                   seed: int = 0) -> dict[str, Any]:
    """The engine arguments a run will use, computed without starting the engine.

    Unpacked AWQ weights (``SIMULATED_SOURCE``) are a plain float checkpoint: read in float32
    (which holds their float16 values exactly) and with no quantization method."""
    info = engine_info(kind)
    params = info.cls.planned_params(model, preset, resolved, seed)  # type: ignore[attr-defined]
    if resolved.source == SIMULATED_SOURCE and not info.remote:
        params.pop("quantization", None)
        params["dtype"] = "float32"
    return params


def with_weights(params: dict[str, Any], path: str) -> dict[str, Any]:
    """Planned engine arguments pointed at the weights' local folder."""
    return {k: (path if k in WEIGHT_KEYS else v) for k, v in params.items()}


def make_engine(kind: str, params: dict[str, Any], **options: Any) -> Engine:
    """Start an engine with the arguments from ``planned_params`` (options: e.g. ``base_url``)."""
    return engine_info(kind).cls.start(params, **options)  # type: ignore[attr-defined]


__all__ = [
    "CAPABILITIES", "ENGINES", "Embedded", "Engine", "EngineInfo", "EngineStats", "GenParams", "Generation", "Images",
    "LoglikResult", "Message", "PeakRSS", "Prompt", "Timer", "TRANSPORT_KEYS", "WEIGHT_KEYS", "engine_info",
    "engine_names", "identity_params", "load_engines", "make_engine", "planned_params", "register_engine",
    "with_weights"
]
