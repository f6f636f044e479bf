"""The one way specbench opens, writes and ends an MLflow run, whatever kind it is.

Every run (cell, category parent, sweep parent and trial, quantize, compare, report,
rescore) goes through :func:`open_run`, which

- adopts the run ``mlflow run`` made for this process (MLFLOW_RUN_ID) for a top-level run,
  or reopens a run to resume, in that run's own experiment;
- tags it with its kind (``specbench.kind``), the commit (``mlflow.source.git.commit``) and
  the caller's tags under the ``specbench.`` prefix, and logs the caller's params;
- records a failure (status FAILED, or KILLED for an interrupt; ``specbench.error``,
  ``specbench.error_type`` and ``error.txt``) and re-raises it; the caller decides whether a
  failure stays in its cell;
- ends the run with the status the caller set, else FINISHED.

Runs nest as MLflow's fluent API nests them: a run opened inside another's ``with`` block
with ``parent=`` is its child, and every :class:`RunHandle` method writes to its own run.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import mlflow
from mlflow import MlflowClient

from specbench.tracking.naming import (
    GIT_COMMIT_TAG,
    KIND_TAG,
    RUN_NAME_TAG,
    SAMPLE_IMAGES_TABLE,
    SAMPLES_TABLE,
    clean_metrics,
    error_line,
    git_commit,
    tag,
    tags,
)
from specbench.tracking.store import ensure_setup, take_launcher_run, tracking_uri

FINISHED, FAILED, KILLED = "FINISHED", "FAILED", "KILLED"


class RunHandle:
    """One open run: what specbench writes to it.  Tag keys are specbench's own (prefixed on
    writing, see :func:`~specbench.tracking.naming.tag`); metrics are cleaned (None and
    non-finite values dropped)."""

    def __init__(self, run: Any, resumed: bool) -> None:
        self.run_id: str = run.info.run_id
        self.experiment_id: str = run.info.experiment_id
        self.resumed = resumed  # an existing run reopened (resume, or the `mlflow run` project run)
        self.stored_tags: dict[str, str] = dict(run.data.tags)  # as they were when opened
        self.stored_params: dict[str, str] = dict(run.data.params)
        self.status: str | None = None  # set to end with another status than FINISHED

    # -- values -----------------------------------------------------------------------------
    def log_params(self, params: dict[str, Any]) -> None:
        if params:
            mlflow.log_params(params)

    def log_metrics(self, metrics: dict[str, float | None], step: int | None = None) -> dict[str, float]:
        clean = clean_metrics(metrics)
        if clean:
            mlflow.log_metrics(clean, step=step)
        return clean

    def set_tags(self, values: dict[str, Any]) -> None:
        if values:
            mlflow.set_tags(tags(values))

    def delete_tags(self, names: list[str]) -> None:
        client = MlflowClient(tracking_uri())
        for name in names:
            if tag(name) in self.stored_tags:
                client.delete_tag(self.run_id, tag(name))

    # -- artifacts ----------------------------------------------------------------------------
    def log_dict(self, obj: Any, path: str) -> None:
        mlflow.log_dict(obj, path)

    def log_text(self, text: str, path: str) -> None:
        mlflow.log_text(text, path)

    def log_table(self, rows: list[dict[str, Any]], path: str = SAMPLES_TABLE) -> None:
        """Records (one per sample, trial or cell) as an MLflow table the UI shows and compares;
        columns are the union of the rows' keys in first-seen order.

        The table REPLACES an earlier one of the same name: ``mlflow.log_table`` appends to an
        existing artifact, so a resumed cell, a resumed category (``cells.json``) or a sweep
        worker finishing twice (``trials.json``) would hold every row twice.  The file is what
        ``mlflow.log_table`` writes (pandas' ``split`` JSON: ``columns`` and ``data``) and the run
        gets the same ``mlflow.loggedArtifacts`` entry, so the UI still shows it as a table."""
        import json
        import os
        import tempfile

        import pandas as pd
        from mlflow.utils.mlflow_tags import MLFLOW_LOGGED_ARTIFACTS  # the run's tables, for the UI

        if not rows:
            return
        columns = list(dict.fromkeys(k for r in rows for k in r))
        frame = pd.DataFrame({c: [r.get(c) for r in rows] for c in columns})
        folder, name = os.path.split(path)
        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, name)
            frame.to_json(local, orient="split", index=False, date_format="iso")
            mlflow.log_artifact(local, folder or None)  # same name: the file is overwritten
        client = MlflowClient(tracking_uri())
        logged = json.loads(client.get_run(self.run_id).data.tags.get(MLFLOW_LOGGED_ARTIFACTS, "[]"))
        entry = {"path": path, "type": "table"}
        if entry not in logged:
            client.set_tag(self.run_id, MLFLOW_LOGGED_ARTIFACTS, json.dumps([*logged, entry]))

    def log_image_table(self, rows: list[dict[str, Any]], path: str = SAMPLE_IMAGES_TABLE) -> None:
        """A few samples with their images (PIL images in the rows), through MLflow's own table
        image support: it stores each image and a thumbnail, and the UI shows them beside the
        outputs.  Kept small (a handful of rows); the whole per-sample table names every image."""
        import pandas as pd

        if rows:
            mlflow.log_table(data=pd.DataFrame(rows), artifact_file=path)

    def log_sample_traces(self, rows: list[dict[str, Any]], details: list[dict[str, Any]] | None = None,
                          tags: dict[str, Any] | None = None) -> int:
        """Each per-sample row as an MLflow evaluation record linked to this run (a trace: prompt
        in, output and extracted answer out; the reference as an expectation, each ``score.*`` as
        a feedback with the scorer's ``details`` as rationale), for MLflow's own per-sample view.
        Stored in the background (:mod:`specbench.tracking.traces`: ``wait_for_traces``); a
        reopened run's earlier records are replaced.  Returns how many were handed over."""
        from specbench.tracking.traces import submit_samples

        return submit_samples(tracking_uri(), self.experiment_id, self.run_id, rows, details,
                              replace=self.resumed, tags=_tags(tags))

    def log_figure(self, figure: Any, path: str) -> None:
        mlflow.log_figure(figure, path)

    def log_artifact(self, local_path: str, artifact_path: str | None = None) -> None:
        mlflow.log_artifact(local_path, artifact_path)

    def log_artifacts(self, local_dir: str, artifact_path: str | None = None) -> None:
        mlflow.log_artifacts(local_dir, artifact_path)

    def log_dataset(self, hf_dataset: Any, name: str, source: str, digest: str,
                    context: str = "evaluation") -> None:
        """Data the run used as an MLflow dataset input (name, digest, source): the evaluated
        items, or a quantization's calibration texts."""
        from mlflow.data.huggingface_dataset import from_huggingface

        ds = from_huggingface(hf_dataset, path=source, name=name, digest=digest[:36])
        mlflow.log_input(ds, context=context)

    # -- failures -----------------------------------------------------------------------------
    def record_error(self, exc: BaseException) -> str:
        """The error tags and error.txt of a failed run; returns the one-line message."""
        msg = error_line(exc)
        self.set_tags({"error": msg[:250], "error_type": type(exc).__name__})
        self.log_text("".join(traceback.format_exception(exc)), "error.txt")
        return msg


def _experiment_of(run_id: str) -> str:
    return MlflowClient(tracking_uri()).get_run(run_id).info.experiment_id


@contextmanager
def open_run(kind: str, *, name: str | None = None, tags: dict[str, Any] | None = None,
             params: dict[str, Any] | None = None, experiment: str | None = None, parent: str | None = None,
             resume: str | None = None, adopt_launcher: bool | None = None,
             system_metrics: bool = False) -> Iterator[RunHandle]:
    """Open a run of ``kind`` for the ``with`` block; see the module docstring.

    ``parent``: the run this one is a child of (it must be the run open around this block).
    ``resume``: an existing run to reopen instead of starting one (a cell left unfinished).
    ``adopt_launcher``: take over the run ``mlflow run`` made; default: for top-level runs.
    """
    if adopt_launcher is None:
        adopt_launcher = parent is None
    launcher = take_launcher_run() if adopt_launcher else None
    run_id = resume or launcher
    if parent is None:
        ensure_setup(experiment)
        if run_id:  # resuming: the run's own experiment, or MLflow refuses
            mlflow.set_experiment(experiment_id=_experiment_of(run_id))
    base = {KIND_TAG: kind, GIT_COMMIT_TAG: git_commit(), **_tags(tags)}
    if name and (not resume or launcher):
        base[RUN_NAME_TAG] = name  # also names the project run `mlflow run` made
    active = mlflow.start_run(run_id=run_id, run_name=None if run_id else name, nested=parent is not None,
                              parent_run_id=parent if run_id is None else None, tags=base,
                              log_system_metrics=system_metrics or None)
    if run_id:
        mlflow.set_tags(base)  # start_run ignores tags when it resumes
    handle = RunHandle(mlflow.get_run(active.info.run_id), resumed=run_id is not None)
    try:
        handle.log_params({k: v for k, v in (params or {}).items() if k not in handle.stored_params})
        yield handle
    except BaseException as exc:
        if handle.status is None:
            handle.record_error(exc)
            handle.status = FAILED if isinstance(exc, Exception) else KILLED
        mlflow.end_run(handle.status)
        raise
    mlflow.end_run(handle.status or FINISHED)


def _tags(values: dict[str, Any] | None) -> dict[str, str]:
    return tags(values or {})


def set_tags_on(run_id: str, values: dict[str, Any]) -> None:
    """Tags on a run that is not open here (e.g. a category run linked to its comparison)."""
    client = MlflowClient(tracking_uri())
    for key, value in tags(values).items():
        client.set_tag(run_id, key, value)
