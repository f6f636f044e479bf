"""specbench: does the specialist model beat the generalist, at what cost, on which hardware?

A declarative evaluation suite on MLflow: models, datasets and categories are YAML files under
conf/, read through one typed loader; every model x dataset cell is one MLflow run.  The
public API, imported lazily so that ``import specbench`` costs nothing (no torch, vLLM or MLflow
until a name that needs them is used)::

    from specbench import load_registry, plan_cell, run_cell
    reg = load_registry()
    result = run_cell(plan_cell(reg, "smollm2_135m", "gsm8k", samples=16))

Extensions register themselves: ``scorer`` (specbench.scoring), ``adapter`` (specbench.data),
``register_engine`` (specbench.engines); see docs/extending.md.  docs/architecture.md maps the
packages.
"""

from __future__ import annotations

from importlib import import_module, metadata
from typing import Any

try:
    __version__ = metadata.version("specbench")
except metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

_API = {
    "load_registry": "specbench.registry", "Registry": "specbench.registry", "RegistryError": "specbench.registry",
    "plan_cell": "specbench.pipeline", "plan_category": "specbench.pipeline", "run_cell": "specbench.pipeline",
    "run_category": "specbench.pipeline", "rescore": "specbench.pipeline", "CellPlan": "specbench.pipeline",
    "CellUnavailable": "specbench.pipeline", "digest": "specbench.identity", "scorer": "specbench.scoring",
    "adapter": "specbench.data", "register_engine": "specbench.engines", "open_run": "specbench.tracking",
}
__all__ = ["__version__", *sorted(_API)]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'specbench' has no attribute {name!r}")
