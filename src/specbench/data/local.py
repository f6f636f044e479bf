"""Datasets read from a file the user supplies: registration-only data no one may redistribute.

A dataset whose YAML sets ``local_env`` (BioASQ: ``SPECBENCH_BIOASQ``) is read from the file that
environment variable names, through its adapter, and never from the hub or a shipped slice: the
licence allows neither.  Planning checks only that the variable names a file (unset or missing:
the cell is skipped with one line saying which variable to set and where to register for the
data, ``local_source``); loading reads it, so a file with missing fields fails its cell, in one
line naming the file, the record and the field, and the other cells go on.

The file is JSON lines, a JSON list of records, or a JSON object holding one list of records
(BioASQ's ``{"questions": [...]}``).  The adapter's ``split_filter`` keeps the records the dataset
evaluates (BioASQ: the yes/no questions); records are normalized before anything builds an Arrow
table from them, because a BioASQ file mixes answer shapes (a string for yes/no, nested lists for
factoid and list questions) that no one Arrow column holds.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from specbench.data.adapters import get_adapter
from specbench.data.errors import DataUnavailable
from specbench.registry.schema import DatasetConfig
from specbench.types import Item

if TYPE_CHECKING:  # pragma: no cover
    from specbench.data.loading import DataSource, LoadedDataset

__all__ = ["LOCAL", "local_file", "load_local", "plan_local", "read_records"]

LOCAL = "local"  # DataSource.kind of a user-supplied file (the run's data_source tag)


def local_file(dataset: DatasetConfig) -> Path:
    """The file the dataset's ``local_env`` names; unset, empty or not a file is one line saying
    which variable to set, to what, and where to obtain it."""
    env = dataset.local_env
    if env is None:
        raise ValueError(f"dataset '{dataset.key}' is not read from a local file (no local_env)")
    value = os.environ.get(env, "").strip()
    todo = f"set {env} to {dataset.local_source}"
    if not value:
        raise DataUnavailable(f"dataset '{dataset.key}' is read from a local file and {env} is not set: {todo}")
    path = Path(value).expanduser()
    if not path.is_file():
        raise DataUnavailable(f"dataset '{dataset.key}': {env}={value} is not a file; {todo}")
    return path


def plan_local(dataset: DatasetConfig) -> DataSource:
    """The cell's data source when the variable names a file (a pure check: nothing is read)."""
    from specbench.data.loading import DataSource

    local_file(dataset)
    return DataSource(LOCAL, None, f"the file ${dataset.local_env} names")


def read_records(path: Path, key: str) -> list[dict[str, Any]]:
    """The records of a JSON-lines file, a JSON list, or a JSON object holding one list."""
    where = f"dataset '{key}': {path}"
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".jsonl":
            found: Any = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            found = json.loads(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise DataUnavailable(f"{where} cannot be read ({type(exc).__name__}: {exc})") from None
    except json.JSONDecodeError as exc:
        raise DataUnavailable(f"{where} is not valid JSON{' lines' if path.suffix == '.jsonl' else ''} "
                              f"({exc.msg}, line {exc.lineno}); expected a list of records or an object "
                              "holding one (e.g. {\"questions\": [...]})") from None
    if isinstance(found, dict):
        lists = [k for k, v in found.items() if isinstance(v, list)]
        if len(lists) != 1:
            raise DataUnavailable(f"{where}: a JSON object must hold exactly one list of records, found "
                                  f"{len(lists)} ({', '.join(lists) or 'none'}); e.g. {{\"questions\": [...]}}")
        found = found[lists[0]]
    if not isinstance(found, list):
        raise DataUnavailable(f"{where}: expected a list of records, found a JSON {type(found).__name__}")
    if (bad := next((i for i, rec in enumerate(found) if not isinstance(rec, dict)), None)) is not None:
        raise DataUnavailable(f"{where}: record {bad} is a {type(found[bad]).__name__}, not an object")
    return found


def load_local(dataset: DatasetConfig, samples: int | None = None) -> LoadedDataset:
    """The dataset's first ``samples`` items from the user's file, as :func:`data.load_items` returns them."""
    import datasets

    from specbench.data.loading import LoadedDataset

    adapter = get_adapter(dataset)
    if dataset.prompt is not None and dataset.prompt.fewshot:
        raise DataUnavailable(f"dataset '{dataset.key}' is read from one local file, which has no few-shot split; "
                              "set prompt.fewshot: 0")
    path = local_file(dataset)
    records = read_records(path, dataset.key)
    kept = [(i, rec) for i, rec in enumerate(records)
            if adapter.split_filter is None or adapter.split_filter(rec, dataset.split)]
    if not kept:
        raise DataUnavailable(f"dataset '{dataset.key}': {path} holds {len(records)} records and none of the kind "
                              f"it evaluates ({dataset.display_name}); {dataset.local_env} must name "
                              f"{dataset.local_source}")
    available = len(kept)
    n = available if samples is None else min(samples, available)
    notes = []
    if samples is not None and samples > available:
        notes.append(f"samples={samples} requested but {path.name} holds {available}; using all {available}")
    items: list[Item] = []
    for i, rec in kept[:n]:
        try:
            items.append(adapter.normalize(rec, i, dataset.split))
        except (KeyError, TypeError, ValueError) as exc:  # the user's file: one line naming the record
            what = f"no field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise DataUnavailable(f"dataset '{dataset.key}': record {i} of {path}: {what}") from None
    h = hashlib.sha256(path.read_bytes())  # the file's bytes: the same file gives the same digest anywhere
    h.update(f"|first {n}".encode())
    digest = h.hexdigest()[:16]
    rows = [{"id": it.id, **it.doc} for it in items]
    hf = datasets.Dataset.from_list(rows).select(range(len(rows)), new_fingerprint=digest)
    return LoadedDataset(key=dataset.key, items=items, fewshot=[], hf_dataset=hf, digest=digest, source=str(path),
                         offline=True, available=available, notes=notes)
