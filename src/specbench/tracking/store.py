"""Where runs go: the tracking URI, the experiment, and the run ``mlflow run`` made for us."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow

from specbench.redact import redact_url
from specbench.tracking import spool

DEFAULT_EXPERIMENT = "specbench"
_configured: list[str] = []  # the tracking URI setup() last pointed MLflow at


def tracking_uri() -> str:
    """$MLFLOW_TRACKING_URI, else the sqlite store MLflow itself defaults to (./mlflow.db), or,
    inside a project checkout, the nearest mlflow.db up to the project root (the folder with the
    MLproject): `specbench compare` from a subfolder reads the store the root's runs went to.

    The file store (./mlruns) refuses to start in MLflow 3 without an opt-in, and sqlite
    is what the UI and queries are fast on anyway.
    """
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    here = Path.cwd()
    up = (here, *here.parents)
    root = next((i for i, d in enumerate(up) if (d / "MLproject").is_file()), None)
    found = next((d for d in up[: root + 1] if (d / "mlflow.db").is_file()), here) if root is not None else here
    return f"sqlite:///{found / 'mlflow.db'}"


def experiment_name(experiment: str | None = None) -> str:
    """The experiment new runs go to: the one named, else $MLFLOW_EXPERIMENT_NAME, else
    ``specbench`` (under ``mlflow run`` the project's run decides).  Reading is not tied to
    it: a selection that names no experiment reads every one (``reader.experiment_ids``)."""
    return experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT


def setup(experiment: str | None = None) -> str:
    """Point MLflow at the store and the experiment; returns the tracking URI.  MLflow's HTTP retries
    get short defaults, and runs spooled while the store was down are uploaded (``spool``)."""
    uri = tracking_uri()
    spool.http_defaults()
    mlflow.set_tracking_uri(uri)
    env_id = os.environ.get("MLFLOW_EXPERIMENT_ID")
    try:
        if experiment is None and env_id and os.environ.get("MLFLOW_RUN_ID"):
            # Under `mlflow run` the project's run already exists in that experiment; another
            # active experiment would make start_run refuse to resume it.
            mlflow.set_experiment(experiment_id=env_id)
        else:
            mlflow.set_experiment(experiment_name(experiment))
    except Exception as exc:
        if not spool.is_transport_error(exc):
            raise
        first = str(exc).split(" failed with exception ")[-1].split(" (Caused by ")[0]
        raise spool.TrackingUnavailable(f"the tracking store {redact_url(uri)} cannot be reached "
                                        f"({redact_url(first)}); check MLFLOW_TRACKING_URI") from None
    _configured[:] = [uri]
    if spool.spooled(uri):
        spool.flush(uri)
    return uri


def ensure_setup(experiment: str | None = None) -> str:
    """:func:`setup` unless this process already pointed MLflow at the current store and no
    experiment is named: a caller's earlier choice of experiment stands."""
    uri = tracking_uri()
    if experiment is not None or _configured != [uri]:
        return setup(experiment)
    return uri


def ui_command() -> str:
    """The command that shows this store, its password masked (it is printed)."""
    return f"mlflow ui --backend-store-uri {redact_url(tracking_uri())}"


def take_launcher_run() -> str | None:
    """The run ``mlflow run`` made for this process (MLFLOW_RUN_ID), taken out of the
    environment: left there, MLflow would hand it to the first ``start_run`` of any run,
    nested ones included.  The top-level run of a command adopts it (``open_run``)."""
    return os.environ.pop("MLFLOW_RUN_ID", None) or None


def active_experiment_id(experiment: str | None = None) -> str:
    """The id of the experiment new runs go to (after :func:`ensure_setup`)."""
    ensure_setup(experiment)
    return mlflow.tracking.fluent._get_experiment_id()
