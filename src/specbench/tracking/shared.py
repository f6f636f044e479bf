"""State that machines share through the tracking server: folders and files published on runs.

A derived model's checkpoint (`specbench quantize`, `specbench finetune`) and a sweep's tuned
preset are made on one machine; another machine with the same ``MLFLOW_TRACKING_URI`` finds
them by the tags of the run that made them and downloads them, instead of doing the work again.

They are run artifacts, not MLflow model-registry versions, because the run that made them is
their record already (recipe, digests, parent revision as tags and params), tag searches work on
every backend (sqlite, PostgreSQL, a server), and a registry's "latest version" alias is exactly
the stale pick that specbench must not make: which checkpoint matches is decided by identity tags
(recipe digest, trainer revision, parent revision), and the caller says which.

This module is generic (tags, artifact paths, local folders): what the tags mean is the
caller's (:mod:`specbench.weights_shared`, :mod:`specbench.sweep.preset`).  A run is only found
once its ``published`` tag is set, which happens after the upload completed, so a half-uploaded
folder is never fetched.
"""

from __future__ import annotations

import os
from pathlib import Path

from specbench import settings
from specbench.tracking.naming import tag
from specbench.tracking.reader import RunRecord, all_experiment_ids, client, search
from specbench.tracking.runs import FINISHED, RunHandle
from specbench.tracking.store import tracking_uri

PUBLISHED_TAG = "published"  # the artifact path of what a run published; set once the upload finished


def store_available() -> bool:
    """Whether the tracking store exists to be searched: a server or database URI, or a local
    sqlite file / file store that is already there (a lookup never creates ./mlflow.db)."""
    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).is_file()
    if uri.startswith("file:") or "://" not in uri:
        return Path(uri.removeprefix("file://").removeprefix("file:")).exists()
    if uri.startswith(("http://", "https://")):
        return server_answers(uri)
    return True


def server_answers(uri: str) -> bool:
    """One GET of the server's /health, 5 s at most, remembered for a minute: MLflow's own client
    retries a refused connection for minutes, which a lookup must not do to every plan."""
    import time
    import urllib.request

    now = time.monotonic()
    if uri in _answers and now - _answers[uri][0] < 60:
        return _answers[uri][1]
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=5):
            ok = True
    except Exception as exc:  # refused, timed out, 5xx: not answering
        import logging

        logging.getLogger(__name__).warning("tracking server %s does not answer (%s): nothing published is "
                                            "looked up", uri, exc)
        ok = False
    _answers[uri] = (now, ok)
    return ok


_answers: dict[str, tuple[float, bool]] = {}  # server URI -> (when asked, whether it answered)


def shared_store() -> bool:
    """A store other machines reach (a server or a database), as opposed to a local file."""
    uri = tracking_uri()
    return "://" in uri and not uri.startswith(("sqlite:", "file:"))


def publishing_enabled() -> bool:
    """Whether made checkpoints are uploaded: $SPECBENCH_PUBLISH ``always``/``never``, else
    (``auto``) when the store is shared; a local sqlite store would only hold a second copy of
    what the cache holds already.  Tuned presets (a few hundred bytes) are always published."""
    mode = settings.PUBLISH.get()
    return mode == "always" or (mode == "auto" and shared_store())


def publish_folder(run: RunHandle, folder: Path, artifact_path: str) -> None:
    """Upload ``folder`` as ``artifact_path`` of the open run, then mark the run published."""
    run.log_artifacts(str(folder), artifact_path)
    run.set_tags({PUBLISHED_TAG: artifact_path})


def publish_file(run_id: str, path: Path, artifact_path: str, tags: dict[str, str] | None = None) -> None:
    """Upload one file into ``artifact_path`` of a run (open or not), then tag it published."""
    c = client()
    c.log_artifact(run_id, str(path), artifact_path)
    for key, value in {**(tags or {}), PUBLISHED_TAG: artifact_path}.items():
        c.set_tag(run_id, tag(key), value)


def find_published(tags: dict[str, str]) -> list[RunRecord]:
    """FINISHED runs of any active experiment whose specbench tags equal ``tags`` and that
    published something, newest first; [] when the store does not exist yet."""
    if not store_available():
        return []
    runs = search(all_experiment_ids(), tags, newest_first=True)
    return [r for r in runs if r.status == FINISHED and r.tags.get(PUBLISHED_TAG)]


def download(run_id: str, artifact_path: str, dest: Path) -> Path:
    """Download a run's artifact (file or folder) into ``dest``; returns its local path."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    dest.mkdir(parents=True, exist_ok=True)
    return Path(client().download_artifacts(run_id, artifact_path, str(dest)))
