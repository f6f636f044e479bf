"""Derived checkpoints shared between machines through the tracking server.

`specbench quantize` and `specbench finetune` upload the checkpoint folder they made (manifest
included) as the ``checkpoint`` artifact of their run, when the store is shared
(``tracking.shared.publishing_enabled``).  A machine that lacks the checkpoint finds the newest
published one for the derived model's key by the run's tags, and which one matches is decided by
identity, never by recency alone: the trainer's revision (quantizer or fine-tuner) must be this
specbench's, the recipe digest the registry's (a plan refuses a stale one before anything is
downloaded), and `quantize`/`finetune` also require the parent's revision before reusing one.

A published checkpoint is downloaded once, into a scratch folder beside cache/models/<key>/,
its weights' digest checked against the manifest (and the revision the plan holds), then renamed
into place: from then on it is exactly a locally made one.

MLflow is imported only here, lazily, and only when no local checkpoint exists and a tracking
store does (a lookup never creates ./mlflow.db); an unreachable server is a warning, never a crash.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from specbench.weights import (
    FINETUNER_REVISION,
    MERGED_DIR,
    PACKED_DIR,
    QUANTIZED_MANIFEST,
    QUANTIZER_REVISION,
    ModelUnavailable,
    cache_dir,
    checkpoint_digest,
    checkpoint_outdated,
    derived_dir,
    install_derived,
)

_logger = logging.getLogger(__name__)

ARTIFACT = "checkpoint"  # the artifact path a derived checkpoint is published under
FETCHED_FILE = "fetched_from.json"  # beside the manifest: which run and store it came from
KINDS = ("quantize", "finetune")
_found: dict[tuple[str, str, str], list[dict[str, Any]]] = {}  # (store, cache, key) -> published manifests
_unreadable: set[str] = set()  # stores a lookup failed on (the refusal then says so)


def _weights_dir(manifest: dict[str, Any]) -> str:
    """The folder whose weights the manifest's digest is of."""
    return MERGED_DIR if manifest.get("kind") == "finetune" else PACKED_DIR


def _current(manifest: dict[str, Any]) -> bool:
    if manifest.get("kind") == "finetune":
        return manifest.get("finetuner_revision") == FINETUNER_REVISION
    return manifest.get("quantizer_revision", 1) == QUANTIZER_REVISION


def published(key: str, refresh: bool = False) -> list[dict[str, Any]]:
    """Manifests of the checkpoints published for derived model ``key`` that this specbench can
    use (current trainer revision), newest first, each with ``_published`` (run id, store).
    Looked up once per process and store; [] without a store or when the server cannot be read."""
    from specbench import tracking

    uri = tracking.tracking_uri()
    memo = (uri, str(cache_dir()), key)
    if memo in _found and not refresh:
        return _found[memo]
    from specbench.tracking import shared

    out: list[dict[str, Any]] = []
    try:
        for kind in KINDS:
            for run in shared.find_published({"kind": kind, "model": key}):
                if run.tags.get(shared.PUBLISHED_TAG) != ARTIFACT:
                    continue
                with _scratch(key, "manifest") as tmp:
                    path = shared.download(run.run_id, f"{ARTIFACT}/{QUANTIZED_MANIFEST}", tmp)
                    manifest = json.loads(path.read_text())
                if _current(manifest):
                    out.append({**manifest, "_published": {"run_id": run.run_id, "tracking_uri": uri,
                                                           "start_time": run.start_time}})
    except Exception as exc:  # a server down or a store of another version: the local cache still works
        _logger.warning("cannot look up published checkpoints of %s on %s: %s", key, uri, exc)
        _found[memo] = []  # once per command: MLflow's client retries for minutes
        _unreadable.add(uri)
        return []
    out.sort(key=lambda m: m["_published"]["start_time"], reverse=True)
    _found[memo] = out
    return out


def published_manifest(key: str, recipe_digest: str | None = None,
                       parent_revision: str | None = None) -> dict[str, Any] | None:
    """The newest published checkpoint of ``key`` matching what is given (recipe digest, parent
    revision), or None."""
    for manifest in published(key):
        if recipe_digest is not None and checkpoint_outdated(manifest, recipe_digest) is not None:
            continue
        if parent_revision is not None and manifest.get("parent_revision") != parent_revision:
            continue
        return manifest
    return None


def _conf_recipe_digest(recipe: str) -> str | None:
    """The digest of the recipe as the default conf/ states it (what the plan will compare with),
    read from its one file; None when it cannot be read (then the newest published one is offered
    and the plan says whether it is stale)."""
    from specbench.registry.loader import find_conf_dir, load_file
    from specbench.registry.schema import FinetuneSpec, QuantizationSpec

    try:
        root = find_conf_dir()
        for folder, schema in (("quantization", QuantizationSpec), ("finetune", FinetuneSpec)):
            path = root / folder / f"{recipe}.yaml"
            if path.is_file():
                return load_file(path, schema).digest()  # type: ignore[attr-defined]
    except Exception:  # a broken conf/ is reported by the registry itself, not here
        return None
    return None


def lookup(model: Any) -> dict[str, Any] | None:
    """The published manifest a machine without the checkpoint would fetch: for a registry model,
    the newest whose recipe is conf/'s (else the newest); for a bare key, the newest.  None without
    a tracking store (no MLflow import then)."""
    key = model if isinstance(model, str) else model.key
    if not _store_configured():
        return None
    from specbench.tracking.shared import store_available  # MLflow: only now

    if not store_available():
        return None
    recipe = None if isinstance(model, str) or model.recipe is None else model.recipe
    digest = _conf_recipe_digest(recipe) if recipe else None
    return (published_manifest(key, digest) if digest else None) or published_manifest(key)


def _store_configured() -> bool:
    """A tracking store to ask: $MLFLOW_TRACKING_URI, or a ./mlflow.db-style default found by
    tracking (checked by ``store_available``).  Cheap: tells whether importing MLflow is worth it."""
    return bool(os.environ.get("MLFLOW_TRACKING_URI")) or Path("mlflow.db").is_file() or \
        any((d / "mlflow.db").is_file() for d in Path.cwd().parents)


def none_published() -> str:
    """The tail of the no-checkpoint reason: whether the tracking server was asked too."""
    if not _store_configured():
        return " (or set MLFLOW_TRACKING_URI to a team server where one is published)"
    from specbench import tracking
    from specbench.tracking.shared import store_available

    uri = tracking.tracking_uri()
    if uri in _unreadable or not store_available() and uri.startswith(("http://", "https://")):
        return f" (the tracking server {uri} could not be asked for a published one)"
    return f" on one machine with this MLFLOW_TRACKING_URI first: {uri} has none published either"


class _scratch:
    """A scratch folder beside the cache's models (same filesystem: the final rename is atomic)."""

    def __init__(self, key: str, what: str) -> None:
        self.path = cache_dir() / "models" / f".{key}.{what}{os.getpid()}"

    def __enter__(self) -> Path:
        shutil.rmtree(self.path, ignore_errors=True)
        self.path.mkdir(parents=True)
        return self.path

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def fetch(key: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """Download the published checkpoint ``manifest`` describes into cache/models/<key>/, check its
    weights' digest and install it; returns the manifest as stored locally.  Raises
    ModelUnavailable (one line) when the download fails or the files are not what was published."""
    from specbench.tracking import shared

    run_id = manifest["_published"]["run_id"]
    with _scratch(key, "fetch") as tmp:
        try:
            folder = shared.download(run_id, ARTIFACT, tmp)
        except Exception as exc:
            raise ModelUnavailable(f"{key}: cannot download the checkpoint published by run {run_id}: "
                                   f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}") from None
        stored = json.loads((folder / QUANTIZED_MANIFEST).read_text())
        got = checkpoint_digest(folder / _weights_dir(stored))
        if got != manifest["digest"] or stored.get("digest") != manifest["digest"]:
            raise ModelUnavailable(f"{key}: the checkpoint published by run {run_id} has weights digest {got}, "
                                   f"its manifest says {manifest['digest']}; run `specbench quantize`/`finetune` "
                                   "for it again")
        (folder / FETCHED_FILE).write_text(json.dumps(manifest["_published"], indent=2))
        if _local_digest(key) != got:  # else a concurrent fetch (another cell's process) installed it already
            install_derived(folder, derived_dir(key))
    _logger.info("fetched %s (digest %s) from run %s", key, got, run_id)
    return stored


def _local_digest(key: str) -> str | None:
    try:
        return json.loads((derived_dir(key) / QUANTIZED_MANIFEST).read_text()).get("digest")
    except (OSError, ValueError):
        return None


def ensure_local(key: str, digest: str) -> None:
    """Materialize a derived model located from a published manifest: download it unless the
    local checkpoint already has weights digest ``digest``."""
    local = _local_digest(key)
    if local == digest:
        return
    if local is not None:  # never replace a checkpoint made (or fetched) here since the plan was made
        raise ModelUnavailable(f"{key}: its checkpoint here changed since the plan was made ({local}, planned "
                               f"{digest}); plan again")
    manifest = next((m for m in published(key) if m["digest"] == digest), None)
    if manifest is None:
        raise ModelUnavailable(f"{key}: no checkpoint with digest {digest} here or published on the tracking "
                               "server any more; plan again")
    fetch(key, manifest)


def publish(run: Any, folder: Path) -> None:
    """Upload a checkpoint folder (manifest included) on its quantize/finetune run."""
    from specbench.tracking import shared

    shared.publish_folder(run, folder, ARTIFACT)
    run.set_tags({"checkpoint_artifact": ARTIFACT})
    _found.clear()


def publishing_enabled() -> bool:
    from specbench.tracking import shared

    return shared.publishing_enabled()


def existing_checkpoint(key: str, kind: str, recipe_digest: str, parent_revision: str) -> \
        tuple[dict[str, Any], str | None] | None:
    """An up-to-date checkpoint for a derived model (same kind, recipe digest, trainer revision
    and parent revision): the local one (run None), else one published on the tracking server,
    fetched now (the run that published it); None when there is neither."""
    from specbench.weights import derived_manifest

    local = derived_manifest(key, local_only=True)
    if (local and local.get("kind", "quantize") == kind and checkpoint_outdated(local, recipe_digest) is None
            and local.get("parent_revision") == parent_revision):
        return local, None
    remote = published_manifest(key, recipe_digest, parent_revision)
    if remote is None or remote.get("kind", "quantize") != kind:
        return None
    return fetch(key, remote), remote["_published"]["run_id"]


def reuse_published(run: Any, key: str, found: tuple[dict[str, Any], str | None]) -> list[str]:
    """On the quantize/finetune run that reuses a checkpoint: where it came from, and, when it was
    made here and the store is shared but holds no copy yet, its upload.  Returns notes for the user."""
    manifest, fetched_from = found
    if fetched_from:
        run.set_tags({"fetched_from": fetched_from})
        return [f"fetched the checkpoint published by run {fetched_from} (weights digest {manifest['digest']})"]
    notes = ["an up-to-date checkpoint exists here"]
    if publishing_enabled() and not any(m["digest"] == manifest["digest"] for m in published(key, refresh=True)):
        publish(run, derived_dir(key))
        notes.append("published it on the tracking server for other machines")
    return notes
