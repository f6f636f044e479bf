"""When the tracking server is down or slow: bounded waits, and a local spool of what could not be written.

MLflow retries a failed request with exponential backoff, by default 7 times with factor 2 and a
120 s timeout: a dead server costs a cell minutes per call.  :func:`http_defaults` gives MLflow's own
settings (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, ``_BACKOFF_FACTOR``, ``_TIMEOUT``) short defaults unless
the user set them, so a dead server costs seconds.

Once a write of an open run fails for want of the server, the store counts as down for this process
(:func:`mark_down`) and every later write of every open run goes to the spool at once, without
waiting on the server again: ``<cache>/spool/<run id>/ops.jsonl`` (params, metrics, tags, table
entries, the run's end) and ``files/`` (the artifacts).  :func:`flush` replays a store's spooled runs in
order and ends them with the status they ended with; the next ``tracking.setup`` of that store (the
next command, the category's next run) and the next run opened in this process call it.  MLflow's
per-sample traces are not spooled (they are a view of ``samples.json``, which is).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

from specbench.redact import redact

log = logging.getLogger("specbench.tracking")
# Short, bounded waits: 1 try + 2 retries, backoff 1 s, 2 s; 10 s per request.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
_down: list[float] = []  # when this process found the store down (empty: up, as far as we know)


def http_defaults() -> None:
    """MLflow's retry and timeout settings, short, where the user set none."""
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)


def is_down() -> bool:
    return bool(_down)


def mark_down() -> None:
    if not _down:
        _down.append(time.time())
        log.warning("the tracking store is unreachable: this process spools its runs under %s until it is back",
                    root())


def mark_up() -> None:
    _down.clear()


class TrackingUnavailable(Exception):
    """The store cannot be reached to start anything (after MLflow's bounded retries); one line, exit 1."""


def is_transport_error(exc: BaseException) -> bool:
    """A failure of the store itself (unreachable, timing out, 5xx), not a refusal of what was
    written (a changed param, a bad name): only the former is spooled."""
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlflowException):
        code = getattr(exc, "error_code", "")
        return code in ("INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED", "ENDPOINT_NOT_FOUND")
    import requests

    return isinstance(exc, (requests.exceptions.RequestException, ConnectionError, TimeoutError))


def root() -> Path:
    """The spool folder under the specbench cache ($SPECBENCH_CACHE, else ~/.cache/specbench, the rule
    of ``specbench.weights.cache_dir``; tracking imports nothing of specbench above it)."""
    return Path(os.environ.get("SPECBENCH_CACHE", Path.home() / ".cache" / "specbench")) / "spool"


def _store_key(uri: str) -> str:
    return hashlib.sha256(uri.encode()).hexdigest()[:16]  # the URI itself may hold a password


class Spool:
    """What one run could not write, in order."""

    def __init__(self, run_id: str, uri: str) -> None:
        self.run_id, self.uri = run_id, uri
        self.dir = root() / run_id

    def _ensure(self) -> None:
        """The folder, made again after a flush uploaded and removed it (the run is still open)."""
        (self.dir / "files").mkdir(parents=True, exist_ok=True)
        meta = self.dir / "meta.json"
        if not meta.exists():
            meta.write_text(json.dumps({"run_id": self.run_id, "store": _store_key(self.uri), "since": time.time(),
                                        "host": socket.gethostname(), "pid": os.getpid()}))

    def add(self, op: str, **data: Any) -> None:
        self._ensure()
        with open(self.dir / "ops.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps({"op": op, "t": int(time.time() * 1000), **data}, default=str) + "\n")

    def add_file(self, local: str, artifact_path: str | None) -> None:
        """A copy of an artifact (a file or a folder), replayed with ``log_artifact(s)``."""
        self._ensure()
        n = sum(1 for _ in (self.dir / "files").iterdir())
        dst = self.dir / "files" / str(n) / Path(local).name
        dst.parent.mkdir(parents=True)
        if Path(local).is_dir():
            shutil.copytree(local, dst)
        else:
            shutil.copy2(local, dst)
        self.add("artifact", file=str(dst.relative_to(self.dir)), path=artifact_path, folder=Path(local).is_dir())


def _writing_elsewhere(info: dict[str, Any]) -> bool:
    """Another live process on this host is still spooling this run (a second invocation must not
    upload and remove a spool under its writer's feet)."""
    pid = info.get("pid")
    if info.get("host") != socket.gethostname() or not isinstance(pid, int) or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def spooled(uri: str) -> list[Path]:
    """The spooled runs of this store that are ready to upload (this process's, or a finished
    process's), oldest first; each is replayed on its own, so the order is only for tidiness."""
    if not root().is_dir():
        return []
    key = _store_key(uri)
    found = []
    for meta in root().glob("*/meta.json"):
        try:
            info = json.loads(meta.read_text())
        except (OSError, ValueError):
            continue
        if info.get("store") == key and not _writing_elsewhere(info):
            found.append((info.get("since", 0), meta.parent))
    return [d for _, d in sorted(found)]


def flush(uri: str) -> list[str]:
    """Replay every spooled run of this store; returns the ids uploaded.  Stops at the first
    failure of the store (the rest stays for next time) and marks the store up when all went."""
    from mlflow import MlflowClient

    done = []
    client = MlflowClient(uri)
    for folder in spooled(uri):
        try:
            _replay(client, folder)
        except Exception as exc:  # noqa: BLE001 - nothing is lost: the spool stays
            if is_transport_error(exc):
                return done
            log.warning("spooled run %s could not be replayed (%s); kept in %s", folder.name, redact(str(exc)), folder)
            continue
        shutil.rmtree(folder, ignore_errors=True)
        done.append(folder.name)
    mark_up()
    return done


def _replay(client: Any, folder: Path) -> None:
    from mlflow.entities import Metric, Param, RunTag

    run_id = folder.name
    ops = []
    if (folder / "ops.jsonl").exists():
        ops = [json.loads(line) for line in (folder / "ops.jsonl").read_text(encoding="utf-8").splitlines() if line]
    have = client.get_run(run_id).data.params
    for op in ops:
        kind = op["op"]
        if kind == "params":
            new = {k: v for k, v in op["values"].items() if k not in have}
            client.log_batch(run_id, params=[Param(k, str(v)) for k, v in new.items()])
            have = {**have, **new}
        elif kind == "metrics":
            client.log_batch(run_id, metrics=[Metric(k, float(v), op["t"], op.get("step") or 0)
                                              for k, v in op["values"].items()])
        elif kind == "tags":
            client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in op["values"].items()])
        elif kind == "delete_tags":
            stored = client.get_run(run_id).data.tags
            for name in op["names"]:
                if name in stored:
                    client.delete_tag(run_id, name)
        elif kind == "artifact":
            local = str(folder / op["file"])
            if op.get("folder"):
                client.log_artifacts(run_id, local, op.get("path"))
            else:
                client.log_artifact(run_id, local, op.get("path"))
        elif kind == "table_entry":
            add_table_entry(client, run_id, op["path"])
        elif kind == "end":
            client.set_terminated(run_id, op["status"], end_time=op["t"])


def add_table_entry(client: Any, run_id: str, path: str) -> None:
    """The run's ``mlflow.loggedArtifacts`` entry of a table (what makes the UI show it as one)."""
    from mlflow.utils.mlflow_tags import MLFLOW_LOGGED_ARTIFACTS

    logged = json.loads(client.get_run(run_id).data.tags.get(MLFLOW_LOGGED_ARTIFACTS, "[]"))
    entry = {"path": path, "type": "table"}
    if entry not in logged:
        client.set_tag(run_id, MLFLOW_LOGGED_ARTIFACTS, json.dumps([*logged, entry]))
