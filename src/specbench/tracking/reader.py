"""Reading runs back: what resume, compare and report know of the runs in a store.

Runs come back as :class:`RunRecord`, plain data with specbench's tags normalized (prefix
stripped, older unprefixed names mapped: :func:`~specbench.tracking.naming.normalize_tags`),
so no caller outside tracking ever holds an MLflow object.  Searches by tag look up both the
prefixed and the older names, so stores written before the prefix still answer.  A run's
artifacts (its per-item table, JSON files) are read through an :class:`ArtifactReader`,
which downloads each file once and hands back plain rows or dicts.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities import ViewType

from specbench.redact import redact_url
from specbench.tracking.naming import (
    GIT_COMMIT_TAG,
    PARENT_TAG,
    RUN_NAME_TAG,
    SAMPLES_TABLE,
    TAG_PREFIX,
    normalize_tags,
    read_table,
    tag,
)
from specbench.tracking.store import experiment_name, tracking_uri


class TrackingError(Exception):
    """A selection that names nothing in the store (unknown experiment or run); one line."""


@dataclass(frozen=True)
class RunRecord:
    """One run as specbench reads it."""

    run_id: str
    experiment_id: str
    status: str  # FINISHED | FAILED | KILLED | RUNNING | SCHEDULED
    start_time: int
    tags: dict[str, str]  # normalized: "model", "dataset", "kind", ..., and MLflow's "mlflow.*" keys
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """cell, category, sweep, ...; runs from before kinds were recorded: cell if they name a
        model and a dataset."""
        kind = self.tags.get("kind")
        if kind:
            return kind
        return "cell" if self.tags.get("model") and self.tags.get("dataset") else ""

    @property
    def parent_id(self) -> str | None:
        return self.tags.get(PARENT_TAG)

    @property
    def name(self) -> str:
        return self.tags.get(RUN_NAME_TAG, "")

    @property
    def git_commit(self) -> str:
        return self.tags.get(GIT_COMMIT_TAG, "")


def record(run: Any) -> RunRecord:
    return RunRecord(run.info.run_id, run.info.experiment_id, run.info.status, run.info.start_time or 0,
                     normalize_tags(run.data.tags), dict(run.data.metrics), dict(run.data.params))


def client() -> MlflowClient:
    return MlflowClient(tracking_uri())


def get_run(run_id: str) -> RunRecord | None:
    """The run with this id in the current store, or None."""
    try:
        return record(client().get_run(run_id))
    except mlflow.exceptions.MlflowException:
        return None


def all_experiment_ids() -> list[str]:
    """Every active experiment of the store: where a selection that names no experiment looks,
    since runs go wherever ``mlflow run`` (its Default experiment without ``--experiment-name``)
    or $MLFLOW_EXPERIMENT_NAME/ID put them, and their tags say what they are."""
    return [e.experiment_id for e in client().search_experiments(view_type=ViewType.ACTIVE_ONLY)]


def experiment_ids(name: str | None = None, must_exist: bool = True) -> list[str]:
    """The id of the experiment named (default: ``store.experiment_name``, where new runs go)."""
    name = experiment_name(name)
    exp = client().get_experiment_by_name(name)
    if exp is None:
        if not must_exist:
            return []
        names = [e.name for e in client().search_experiments()]
        raise TrackingError(f"no experiment '{name}' in {redact_url(tracking_uri())}; "
                            f"experiments: {', '.join(names) or '(none)'}")
    return [exp.experiment_id]


def _quote(value: str) -> str:
    if "'" in value:
        raise TrackingError(f"quotes are not allowed in a selection value: {value!r}")
    return f"'{value}'"


def _search(exp_ids: list[str], query: str, order_by: list[str] | None, max_results: int | None) -> list[Any]:
    runs: list[Any] = []
    token = None
    while True:
        page = client().search_runs(exp_ids, query, run_view_type=ViewType.ACTIVE_ONLY, order_by=order_by,
                                    max_results=min(max_results or 5000, 5000), page_token=token)
        runs += list(page)
        token = page.token
        if not token or (max_results and len(runs) >= max_results):
            return runs[:max_results] if max_results else runs


def search(exp_ids: Iterable[str], tags: dict[str, str] | None = None, *, parent: str | None = None,
           newest_first: bool = False, max_results: int | None = None) -> list[RunRecord]:
    """Active runs whose specbench tags equal ``tags`` (prefixed or older names) and, if given,
    whose parent is ``parent``.  Deleted runs are not returned."""
    exp_ids = list(exp_ids)
    if not exp_ids:
        return []
    tags = tags or {}
    order = ["attributes.start_time DESC"] if newest_first else None
    found: dict[str, Any] = {}
    queries: list[str] = []
    for legacy in (False, True):  # this version's names, then the older unprefixed ones
        clauses = [f"tags.`{k.removeprefix(TAG_PREFIX) if legacy else tag(k)}` = {_quote(str(v))}"
                   for k, v in tags.items()]
        if parent:
            clauses.append(f"tags.`{PARENT_TAG}` = {_quote(parent)}")
        query = " and ".join(clauses)
        if query in queries:
            break  # nothing to rename (no tags, or only MLflow's own keys): the first query found everything
        queries.append(query)
        for run in _search(exp_ids, query, order, max_results):
            found.setdefault(run.info.run_id, run)
    records = [record(r) for r in found.values()]
    if newest_first:
        records.sort(key=lambda r: r.start_time, reverse=True)
    return records[:max_results] if max_results else records


def run_experiment_id(run_id: str) -> str:
    """The experiment of a run named by id (a selection by parent run reads that experiment)."""
    found = get_run(run_id)
    if found is None:
        raise TrackingError(f"no run with id '{run_id}' in {redact_url(tracking_uri())}")
    return found.experiment_id


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


class ArtifactReader:
    """Artifacts of runs, each file downloaded once per reader and returned as plain data.

    A comparison reads one run's ``samples.json`` for every table it appears in (matrix,
    each delta, quantization); caching here keeps that one download.  A file that is absent
    or unreadable reads as None, which callers show as a cell without per-item scores.
    """

    def __init__(self) -> None:
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per artifact otherwise
        self._cache: dict[tuple[str, str, Callable[[Path], Any]], Any] = {}

    def table(self, run_id: str, path: str = SAMPLES_TABLE) -> list[dict[str, Any]] | None:
        """Rows of a table the run logged (``RunHandle.log_table``), or None."""
        return self._download(run_id, path, read_table)

    def json_artifact(self, run_id: str, path: str) -> Any | None:
        """A JSON file the run logged (e.g. ``environment.json``), parsed, or None."""
        return self._download(run_id, path, _read_json)

    def _download(self, run_id: str, path: str, parse: Callable[[Path], Any]) -> Any | None:
        """The one download: fetch ``path`` of the run into a scratch folder, parse it, cache
        the result (None for a file that is missing or does not parse)."""
        key = (run_id, path, parse)
        if key not in self._cache:
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    self._cache[key] = parse(Path(client().download_artifacts(run_id, path, tmp)))
                except (OSError, mlflow.exceptions.MlflowException, ValueError, KeyError, TypeError):
                    self._cache[key] = None
        return self._cache[key]
