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
- ends the run with the status the caller set, else FINISHED;
- marks who holds the run (``owner``: host, pid, token, a heartbeat while it is open) and refuses
  to reopen a run another live process holds (:class:`RunInUse`); a reopened run whose params
  really differ (another machine, another engine version in a param) is not reopened: a fresh run
  takes its place and the old one is marked ``specbench.superseded_by`` (and KILLED if it was left
  RUNNING), so the same unresumable run is never tried again;
- keeps the run's writes in a local spool when the store goes down (:mod:`~specbench.tracking.spool`);
- redacts every value it writes (:mod:`specbench.redact`: URLs' credentials, secrets, this machine's folders)
  and records the launching program by name only (``mlflow.source.name``), never a path.

Runs nest as MLflow's fluent API nests them: a run opened inside another's ``with`` block
with ``parent=`` is its child, and every :class:`RunHandle` method writes to its own run.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Param as _Param
from mlflow.entities import RunTag as _RunTag

from specbench.redact import redact, redact_obj
from specbench.tracking import owner, spool
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
from specbench.tracking.spool import TrackingUnavailable
from specbench.tracking.store import ensure_setup, take_launcher_run, tracking_uri

FINISHED, FAILED, KILLED = "FINISHED", "FAILED", "KILLED"
SOURCE_NAME_TAG = "mlflow.source.name"  # MLflow records sys.argv[0], an absolute path of this machine
SUPERSEDED_BY = "superseded_by"


class RunInUse(Exception):
    """A run to reopen is held by another live process (its owner); one line, exit 2."""


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
        self.uri = tracking_uri()
        self._spool: spool.Spool | None = None

    # -- the store, or the spool when it is down -------------------------------------------------
    def _write(self, call: Callable[[], Any], op: str, **data: Any) -> None:
        """``call`` against the store; when the store is down (now or already), ``op`` to the spool."""
        if not spool.is_down():
            try:
                call()
                return
            except Exception as exc:
                if not spool.is_transport_error(exc):
                    raise
                spool.mark_down()
        self.spooled().add(op, **data)

    def _write_file(self, call: Callable[[], Any], local: str, artifact_path: str | None) -> bool:
        """An artifact to the store, else a copy to the spool; True when it reached the store."""
        if not spool.is_down():
            try:
                call()
                return True
            except Exception as exc:
                if not spool.is_transport_error(exc):
                    raise
                spool.mark_down()
        self.spooled().add_file(local, artifact_path)
        return False

    def spooled(self) -> spool.Spool:
        if self._spool is None:
            self._spool = spool.Spool(self.run_id, self.uri)
        return self._spool

    def _write_temp(self, text: str, path: str) -> None:
        folder, name = os.path.split(path)
        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, name)
            with open(local, "w", encoding="utf-8") as f:
                f.write(text)
            self.log_artifact(local, folder or None)

    # -- values -----------------------------------------------------------------------------
    def log_params(self, params: dict[str, Any]) -> None:
        if params:
            clean = _params(params)
            self._write(lambda: MlflowClient(self.uri).log_batch(
                self.run_id, params=[_Param(k, v) for k, v in clean.items()]), "params", values=clean)

    def log_metrics(self, metrics: dict[str, float | None], step: int | None = None) -> dict[str, float]:
        clean = clean_metrics(metrics)
        if clean:
            self._write(lambda: mlflow.log_metrics(clean, step=step, run_id=self.run_id), "metrics", values=clean,
                        step=step)
        return clean

    def set_tags(self, values: dict[str, Any]) -> None:
        if values:
            clean = _tags(values)
            self._write(lambda: MlflowClient(self.uri).log_batch(
                self.run_id, tags=[_RunTag(k, v) for k, v in clean.items()]), "tags", values=clean)

    def delete_tags(self, names: list[str]) -> None:
        gone = [tag(n) for n in names if tag(n) in self.stored_tags]
        if gone:
            client = MlflowClient(self.uri)
            self._write(lambda: [client.delete_tag(self.run_id, n) for n in gone], "delete_tags", names=gone)

    # -- artifacts ----------------------------------------------------------------------------
    def log_dict(self, obj: Any, path: str) -> None:
        """A JSON artifact, every string in it redacted (a config's resolved secrets, home paths)."""
        self._write_temp(json.dumps(redact_obj(obj), indent=2, default=str), path)

    def log_text(self, text: str, path: str) -> None:
        self._write_temp(redact(text), path)

    def log_table(self, rows: list[dict[str, Any]], path: str = SAMPLES_TABLE) -> None:
        """Records (one per sample, trial or cell) as an MLflow table the UI shows and compares;
        columns are the union of the rows' keys in first-seen order.

        The table REPLACES an earlier one of the same name: ``mlflow.log_table`` appends to an
        existing artifact, so a resumed cell, a resumed category (``cells.json``) or a sweep
        worker finishing twice (``trials.json``) would hold every row twice.  The file is what
        ``mlflow.log_table`` writes (pandas' ``split`` JSON: ``columns`` and ``data``) and the run
        gets the same ``mlflow.loggedArtifacts`` entry, so the UI still shows it as a table."""
        import pandas as pd

        if not rows:
            return
        columns = list(dict.fromkeys(k for r in rows for k in r))
        frame = pd.DataFrame({c: [r.get(c) for r in rows] for c in columns})
        folder, name = os.path.split(path)
        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, name)
            frame.to_json(local, orient="split", index=False, date_format="iso")
            if not self._write_file(lambda: mlflow.log_artifact(local, folder or None, run_id=self.run_id),
                                    local, folder or None):  # same name: the file is overwritten
                self.spooled().add("table_entry", path=path)
                return
        self._write(lambda: spool.add_table_entry(MlflowClient(self.uri), self.run_id, path), "table_entry", path=path)

    def log_image_table(self, rows: list[dict[str, Any]], path: str = SAMPLE_IMAGES_TABLE) -> None:
        """A few samples with their images (PIL images in the rows), through MLflow's own table
        image support: it stores each image and a thumbnail, and the UI shows them beside the
        outputs.  Kept small (a handful of rows); the whole per-sample table names every image."""
        import pandas as pd

        if rows and not spool.is_down():  # a view for the UI: not spooled
            mlflow.log_table(data=pd.DataFrame(rows), artifact_file=path)

    def log_sample_traces(self, rows: list[dict[str, Any]], details: list[dict[str, Any]] | None = None,
                          tags: dict[str, Any] | None = None) -> int:
        """Each per-sample row as an MLflow evaluation record linked to this run (a trace: prompt
        in, output and extracted answer out; the reference as an expectation, each ``score.*`` as
        a feedback with the scorer's ``details`` as rationale), for MLflow's own per-sample view.
        Stored in the background (:mod:`specbench.tracking.traces`: ``wait_for_traces``); a
        reopened run's earlier records are replaced.  Returns how many were handed over."""
        from specbench.tracking.traces import submit_samples

        if spool.is_down():  # a view of samples.json, which is spooled
            return 0
        return submit_samples(tracking_uri(), self.experiment_id, self.run_id, rows, details,
                              replace=self.resumed, tags=_tags(tags))

    def log_figure(self, figure: Any, path: str) -> None:
        if not spool.is_down():
            mlflow.log_figure(figure, path)

    def log_artifact(self, local_path: str, artifact_path: str | None = None) -> None:
        self._write_file(lambda: mlflow.log_artifact(local_path, artifact_path, run_id=self.run_id), local_path,
                         artifact_path)

    def log_artifacts(self, local_dir: str, artifact_path: str | None = None) -> None:
        self._write_file(lambda: mlflow.log_artifacts(local_dir, artifact_path, run_id=self.run_id), local_dir,
                         artifact_path)

    def log_dataset(self, hf_dataset: Any, name: str, source: str, digest: str,
                    context: str = "evaluation") -> None:
        """Data the run used as an MLflow dataset input (name, digest, source): the evaluated
        items, or a quantization's calibration texts."""
        from mlflow.data.huggingface_dataset import from_huggingface

        if spool.is_down():  # the digest is also a tag of the cell; the input itself is not spooled
            return
        ds = from_huggingface(hf_dataset, path=redact(source), name=name, digest=digest[:36])  # no local path
        for attempt in range(3):
            try:
                mlflow.log_input(ds, context=context)
                return
            except Exception as exc:
                # Two processes (Ray actors, machines) logging the same dataset into one experiment at
                # once both try to create its row; the loser's retry finds the winner's.
                if attempt == 2 or "unique constraint" not in str(exc).lower():
                    raise
                time.sleep(0.2 * (attempt + 1))

    # -- failures -----------------------------------------------------------------------------
    def record_error(self, exc: BaseException) -> str:
        """The error tags and error.txt of a failed run; returns the one-line message."""
        msg = redact(error_line(exc))
        self.set_tags({"error": msg[:250], "error_type": type(exc).__name__})
        self.log_text("".join(traceback.format_exception(exc)), "error.txt")  # redacted there
        return msg


def _experiment_of(run_id: str) -> str:
    return MlflowClient(tracking_uri()).get_run(run_id).info.experiment_id


@contextmanager
def open_run(kind: str, *, name: str | None = None, tags: dict[str, Any] | None = None,
             params: dict[str, Any] | None = None, experiment: str | None = None, parent: str | None = None,
             resume: str | None = None, adopt_launcher: bool | None = None,
             system_metrics: bool = False, shared: bool = False, take_over: bool = False) -> Iterator[RunHandle]:
    """Open a run of ``kind`` for the ``with`` block; see the module docstring.

    ``parent``: the run this one is a child of (it must be the run open around this block).
    ``resume``: an existing run to reopen instead of starting one (a cell left unfinished); a run
    another live process holds raises :class:`RunInUse`, one whose params differ is superseded.
    ``adopt_launcher``: take over the run ``mlflow run`` made; default: for top-level runs.
    ``shared``: a run several processes write at once by design (a sweep's parent, which workers on
    other machines join): it has no owner and no heartbeat, and is reopened whoever holds it.
    ``take_over``: the caller knows the owner is gone (Ray reported its worker dead): no wait for
    its heartbeat to go stale.
    """
    spool.http_defaults()  # also in a worker process that never called setup() (a Ray actor)
    if adopt_launcher is None:
        adopt_launcher = parent is None
    launcher = take_launcher_run() if adopt_launcher else None
    if parent is None:
        ensure_setup(experiment)
    if spool.is_down():  # back? what this process spooled goes up first
        spool.flush(tracking_uri())
    base = {KIND_TAG: kind, GIT_COMMIT_TAG: git_commit(), **_tags(tags), SOURCE_NAME_TAG: _source_name(),
            **({} if shared else _tags(owner.owner_tags(owner.new_token())))}
    superseded: tuple[Any, list[str]] | None = None
    try:
        if resume and not shared:
            old = _get(resume)
            clash = _check_resume(old, _params(params or {}), take_over)
            if clash:  # not reopened: a fresh run takes its place (below), the old one is marked
                superseded, resume = (old, clash), None
                base.update(_tags({"supersedes": old.info.run_id, "supersede_reason": "params differ: " +
                                   ", ".join(clash)[:200]}))
            elif owner.tag(owner.TOKEN) in old.data.tags:
                base[owner.tag(owner.TAKEN_OVER)] = _owner_text(old.data.tags)
        run_id = resume or launcher
        if parent is None and run_id:  # resuming: the run's own experiment, or MLflow refuses
            mlflow.set_experiment(experiment_id=_experiment_of(run_id))
        if name and (not resume or launcher):
            base[RUN_NAME_TAG] = name  # also names the project run `mlflow run` made
        active = mlflow.start_run(run_id=run_id, run_name=None if run_id else name, nested=parent is not None,
                                  parent_run_id=parent if run_id is None else None, tags=base,
                                  log_system_metrics=system_metrics or None)
        if run_id:
            mlflow.set_tags(base)  # start_run ignores tags when it resumes
        handle = RunHandle(mlflow.get_run(active.info.run_id), resumed=run_id is not None)
    except Exception as exc:
        if spool.is_transport_error(exc):
            spool.mark_down()
            raise TrackingUnavailable(f"the tracking store {redact(tracking_uri())} cannot be reached to open "
                                      f"run {name or kind!r}: {redact(error_line(exc))}") from exc
        raise
    if superseded is not None:
        _supersede(superseded[0], handle.run_id)
    if not shared:
        owner.HEARTBEAT.add(handle.run_id, _beat)
    try:
        context = {k: redact(v) for k, v in handle.stored_tags.items() if k.startswith("mlflow.") and redact(v) != v}
        handle.set_tags(context)  # MLflow's own context tags (a git remote with a token, a home path)
        handle.log_params({k: v for k, v in (params or {}).items() if k not in handle.stored_params})
        yield handle
    except BaseException as exc:
        if handle.status is None:
            handle.record_error(exc)
            handle.status = FAILED if isinstance(exc, Exception) else KILLED
        _end(handle, handle.status)
        raise
    _end(handle, handle.status or FINISHED)


def _get(run_id: str) -> Any:
    return MlflowClient(tracking_uri()).get_run(run_id)


def _owner_text(stored: dict[str, str]) -> str:
    return (f"pid {stored.get(owner.tag(owner.PID), '?')} on {stored.get(owner.tag(owner.HOST), '?')} "
            f"(token {stored.get(owner.tag(owner.TOKEN), '?')})")


def _check_resume(old: Any, params: dict[str, str], take_over: bool = False) -> list[str]:
    """Raise :class:`RunInUse` when another live process holds the run; else the params whose
    stored values differ from these (MLflow refuses to change a param: such a run cannot be resumed)."""
    live = None if take_over else owner.holder(old.info.status, old.data.tags)
    if live is not None:
        name = old.data.tags.get(RUN_NAME_TAG, "")
        raise RunInUse(f"run {old.info.run_id} ({name}) is held by {live.describe()}: another specbench "
                       "invocation is running it; wait for it to end or stop it (a run whose owner is gone "
                       "is taken over)")
    stored = old.data.params
    return sorted(k for k, v in params.items() if k in stored and stored[k] != v)


def _supersede(old: Any, new_id: str) -> None:
    """Mark a run that could not be resumed: ``superseded_by`` (resume skips it from now on), and
    KILLED when it was left RUNNING by a process that is gone."""
    client = MlflowClient(tracking_uri())
    client.set_tag(old.info.run_id, tag(SUPERSEDED_BY), new_id)
    if old.info.status == "RUNNING":
        client.set_terminated(old.info.run_id, KILLED)


def _beat(run_id: str, value: str) -> None:
    if not spool.is_down():
        MlflowClient(tracking_uri()).set_tag(run_id, owner.tag(owner.BEAT), value)


def _end(handle: RunHandle, status: str) -> None:
    """End the run in the store, or, when the store is down, off MLflow's stack of active runs and
    into the spool with its status (uploaded by ``spool.flush``)."""
    owner.HEARTBEAT.remove(handle.run_id)
    if not spool.is_down():
        try:
            mlflow.end_run(status)
            return
        except Exception as exc:
            if not spool.is_transport_error(exc):
                raise
            spool.mark_down()
    from mlflow.tracking import fluent

    stack = fluent._active_run_stack.get()
    if stack and stack[-1].info.run_id == handle.run_id:
        stack.pop()
    monitor = fluent.run_id_to_system_metrics_monitor.pop(handle.run_id, None)
    if monitor is not None:  # its thread stops without a last upload that would wait on the store
        monitor._shutdown_event.set()
        monitor._process = None
    handle.spooled().add("end", status=status)


def _source_name() -> str:
    """The launching program by name (``specbench``, ``pytest``), not MLflow's absolute path of it."""
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"


def _params(values: dict[str, Any]) -> dict[str, str]:
    """Params as MLflow stores them (strings), redacted: what a resumed run's stored values compare with."""
    return {k: redact(str(v)) for k, v in values.items()}


def _tags(values: dict[str, Any] | None) -> dict[str, str]:
    return {k: redact(v) for k, v in tags(values or {}).items()}


def set_tags_on(run_id: str, values: dict[str, Any]) -> None:
    """Tags on a run that is not open here (e.g. a category run linked to its comparison)."""
    client = MlflowClient(tracking_uri())
    for key, value in tags(values).items():
        client.set_tag(run_id, key, value)
