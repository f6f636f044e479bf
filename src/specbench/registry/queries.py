"""Questions asked of the registries: which models, which datasets, what maps to what.

The CLI prints the answers; the answers themselves live here, beside the registry, so
another front end (a notebook, a report) asks the same questions the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from specbench.registry.loader import Registry, RegistryError
from specbench.registry.schema import DatasetConfig, ModelConfig

_SIZE = re.compile(r"^\s*(<=|>=|<|>)?\s*([0-9.]+)\s*(?:-\s*([0-9.]+))?\s*[bB]?\s*$")


def size_filter(expr: str) -> Callable[[float], bool]:
    """'7', '<=8', '>30', '3-8' (billions of parameters) -> predicate; a plain number matches
    within half a billion (a tenth below 1B)."""
    m = _SIZE.match(expr)
    if not m:
        raise RegistryError(f"--size '{expr}': expected a number of billions like 7, <=8, >30 or 3-8")
    op, a, b = m.group(1), float(m.group(2)), m.group(3)
    if b is not None:
        lo, hi = a, float(b)
        return lambda p: lo <= p <= hi
    return {
        None: lambda p: abs(p - a) < 0.5 or (a < 1 and abs(p - a) < 0.1),
        "<": lambda p: p < a, "<=": lambda p: p <= a, ">": lambda p: p > a, ">=": lambda p: p >= a,
    }[op]


def find_models(reg: Registry, *, category: str | None = None, baselines: bool = False, size: str | None = None,
                license: str | None = None) -> list[ModelConfig]:
    """Models of a category (specialists, plus its baselines if asked, plus models that name it as
    their category), of a size, whose licence contains a substring (case-insensitive)."""
    models = list(reg.models.values())
    if category:
        cat = reg.category(category)
        keep = set(cat.models) | set(cat.baselines) if baselines else set(cat.models)
        models = [m for m in models if m.key in keep or m.category == cat.key]
    if size:
        pred = size_filter(size)
        models = [m for m in models if m.parameters_b is not None and pred(m.parameters_b)]
    if license:
        models = [m for m in models if license.lower() in m.license.lower()]
    return models


def find_datasets(reg: Registry, *, category: str | None = None, license: str | None = None) -> list[DatasetConfig]:
    """Datasets a category uses (primary and secondary), whose licence contains a substring."""
    dsets = list(reg.datasets.values())
    if category:
        cat = reg.category(category)
        keep = set(cat.datasets.primary) | set(cat.datasets.secondary)
        dsets = [d for d in dsets if d.key in keep]
    if license:
        dsets = [d for d in dsets if license.lower() in d.license.lower()]
    return dsets


def mapping_rows(reg: Registry) -> list[dict[str, Any]]:
    """Category -> dataset (tier, size, status) -> its models and baselines, one row per pair."""
    rows = []
    for c in reg.categories.values():
        for tier in ("primary", "secondary"):
            for dk in getattr(c.datasets, tier):
                d = reg.datasets[dk]
                rows.append({
                    "category": c.key, "dataset": dk, "tier": tier, "samples": d.samples,
                    "status": d.status.value, "models": ", ".join(c.models),
                    "baselines": ", ".join(c.baselines),
                })
    return rows
