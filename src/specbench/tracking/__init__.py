"""Everything MLflow: the only package of specbench that imports it.

- ``store``: where runs go (tracking URI, experiment) and the run ``mlflow run`` made;
- ``runs``: :func:`open_run`, the one lifecycle of every kind of run, and :class:`RunHandle`,
  what a run records (params, metrics, tags, tables, figures, dataset inputs, artifacts);
- ``reader``: runs read back as plain :class:`RunRecord` data (resume, compare, report);
- ``owner``: who holds an open run (host, pid, token, heartbeat), so two invocations never adopt
  each other's runs and a dead one's runs are taken over;
- ``spool``: short HTTP retries, and a run's writes kept locally while the store is down, uploaded after;
- ``naming``: tag names (``specbench.`` prefix, MLflow's own keys), value cleaning, and the
  mapping of older tag names.

One cell's params, metrics, tags, dataset input and artifacts are written in a handful of
batched calls, which keeps per-cell logging well under a second even with a 1,000-row table
(benchmarks/bench_tracking.py).
"""

from specbench.tracking.naming import (
    GIT_COMMIT_TAG,
    KIND_TAG,
    PARENT_TAG,
    SAMPLES_TABLE,
    TAG_PREFIX,
    clean_metrics,
    error_line,
    flatten,
    git_commit,
    normalize_tags,
    package_versions,
    read_table,
    tag,
)
from specbench.tracking.owner import Owner, holder
from specbench.tracking.reader import (
    ArtifactReader,
    RunRecord,
    TrackingError,
    experiment_ids,
    get_run,
    run_experiment_id,
    search,
)
from specbench.tracking.runs import (
    FAILED,
    FINISHED,
    KILLED,
    SUPERSEDED_BY,
    RunHandle,
    RunInUse,
    TrackingUnavailable,
    open_run,
    set_tags_on,
)
from specbench.tracking.spool import flush
from specbench.tracking.store import (
    DEFAULT_EXPERIMENT,
    active_experiment_id,
    ensure_setup,
    experiment_name,
    setup,
    take_launcher_run,
    tracking_uri,
    ui_command,
)

__all__ = [
    "ArtifactReader", "DEFAULT_EXPERIMENT", "FAILED", "FINISHED", "GIT_COMMIT_TAG", "KILLED", "KIND_TAG", "Owner",
    "PARENT_TAG", "RunHandle", "RunInUse", "RunRecord", "SAMPLES_TABLE", "SUPERSEDED_BY", "TAG_PREFIX",
    "TrackingError", "TrackingUnavailable", "active_experiment_id", "flush", "holder",
    "clean_metrics", "ensure_setup", "error_line", "experiment_ids", "experiment_name", "flatten", "get_run",
    "git_commit", "normalize_tags", "open_run", "package_versions", "read_table", "run_experiment_id", "search",
    "set_tags_on", "setup", "tag", "take_launcher_run", "tracking_uri", "ui_command"
]
