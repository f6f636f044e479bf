"""Loading a dataset's items: from the Hugging Face hub, or from the offline slice shipped in
``specbench/slices``, through the same adapter (see :mod:`specbench.data.adapters`)."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from specbench.data.adapters import Adapter, get_adapter
from specbench.data.errors import DataUnavailable
from specbench.hub import datasets_offline, hub_unreachable
from specbench.registry.schema import DatasetConfig, Status, TaskType
from specbench.types import Item

if TYPE_CHECKING:  # pragma: no cover
    import datasets

__all__ = ["SLICES_DIR", "DataSource", "DataUnavailable", "LoadedDataset", "load_items", "load_split_items",
           "plan_source", "split_slice_name"]

log = logging.getLogger(__name__)

SLICES_DIR = Path(__file__).resolve().parents[1] / "slices"  # package data: specbench/slices


@dataclass
class LoadedDataset:
    """What :func:`load_items` returns."""

    key: str
    items: list[Item]
    fewshot: list[Item]  # the few-shot split's items (empty when the prompt is zero-shot)
    hf_dataset: datasets.Dataset  # the evaluated records, for mlflow.data.from_huggingface
    digest: str  # fingerprint of hf_dataset (content hash of the slice when offline)
    source: str  # "hub_path[/config]@revision:split" or the slice's path
    offline: bool
    available: int = 0  # items in the loaded split before ``samples`` was applied
    notes: list[str] = field(default_factory=list)  # fallbacks and truncations, one line each


_hub_unreachable = hub_unreachable  # module-level, so tests can stand in for the network


def _slice_path(name: str | None) -> Path | None:
    return SLICES_DIR / name if name else None


def split_slice_name(dataset: DatasetConfig, split: str) -> str | None:
    """The shipped slice of another split: ``<stem>.<split>.jsonl`` -> ``<stem>.<other split>.jsonl``."""
    name = dataset.offline_slice
    suffix = f".{dataset.split}.jsonl"
    if not name or not name.endswith(suffix):
        return None
    return name[: -len(suffix)] + f".{split}.jsonl"


@dataclass(frozen=True)
class DataSource:
    """Where a cell's items will come from, decided when it is planned (so it is part of the
    cell's identity): the hub's split, or the offline slice shipped in the package."""

    kind: str  # "hub" | "slice"
    items: int | None  # items there (the registry's count for the hub, the slice's lines)
    why: str = ""  # why the slice (the hub's offline flag or error)

    def partial(self, dataset: DatasetConfig, samples: int | None) -> str | None:
        """What a run asking for ``samples`` items would not get from this source (None if it gets
        them): a slice holds only part of the split, so `--samples all` there is not the split."""
        if self.kind != "slice" or self.items is None:
            return None
        if samples is None or samples > self.items:
            asked = "all" if samples is None else str(samples)
            return (f"dataset '{dataset.key}': samples={asked} reads the offline slice's {self.items} items, not "
                    f"the {dataset.split} split's {dataset.samples} ({self.why}); its scores are not the split's")
        return None


def plan_source(dataset: DatasetConfig) -> DataSource:
    """The hub when it is usable (HF offline flags unset, the hub answers), else the shipped
    slice; a pure decision (one HEAD request per process), made before anything loads."""
    if dataset.local_env:  # registration-only data: the user's file, checked to exist (data.local)
        from specbench.data.local import plan_local

        return plan_local(dataset)
    why = _no_hub_copy(dataset) or datasets_offline() or _hub_unreachable()
    slice_path = _slice_path(dataset.offline_slice)
    if why is None:
        return DataSource("hub", dataset.samples)
    if slice_path is None or not slice_path.is_file():  # a hub-only dataset with no hub: nothing to run
        raise DataUnavailable(f"dataset '{dataset.key}' needs the hub ({_hub_source(dataset, dataset.split)}), "
                              f"which cannot be used ({why}), and ships no offline slice")
    with open(slice_path, "rb") as fh:
        lines = sum(1 for line in fh if line.strip())
    return DataSource("slice", lines, f"hub not used: {why}")


def _no_hub_copy(dataset: DatasetConfig) -> str | None:
    """Why the hub is never asked for this dataset: it has no hub copy (its slice is the data)."""
    return None if dataset.hub_path else "no hub copy of this dataset is known (hub_path is empty)"


def _hub_source(dataset: DatasetConfig, split: str) -> str:
    cfg = f"/{dataset.hub_config}" if dataset.hub_config else ""
    return f"{dataset.hub_path}{cfg}@{dataset.revision}:{split}"


def _load_hub(dataset: DatasetConfig, adapter: Adapter, split: str) -> datasets.Dataset:
    import datasets  # lazily: importing the data layer must stay cheap

    configs: list[str | None] = (
        [dataset.hub_config] if dataset.hub_config or not adapter.hub_configs else list(adapter.hub_configs))
    parts = [_undecoded_images(datasets.load_dataset(dataset.hub_path, cfg, split=adapter.hub_split or split,
                                                     revision=dataset.revision)) for cfg in configs]
    ds = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    if adapter.split_filter is not None:  # this dataset's own split of a corpus the hub holds as one
        ds = ds.filter(lambda rec: adapter.split_filter(rec, split))
    return ds


def _undecoded_images(ds: datasets.Dataset) -> datasets.Dataset:
    """Image columns as ``{"bytes", "path"}``: the engine decodes each item's images when it runs
    it (``data.images.open_image``), so one broken image fails its item, not the whole load."""
    import datasets

    for name, feature in ds.features.items():
        if isinstance(feature, datasets.Image) and feature.decode:
            ds = ds.cast_column(name, datasets.Image(decode=False))  # a metadata change, no rewrite
    return ds


def _load_slice(path: Path) -> datasets.Dataset:
    import datasets

    return datasets.load_dataset("json", data_files=str(path), split="train")


def _normalize_all(records: Any, adapter: Adapter, split: str) -> list[Item]:
    items: list[Item] = []
    counters: dict[Any, int] = {}
    for i, rec in enumerate(records):
        if adapter.group:
            g = rec.get(adapter.group)
            i = counters[g] = counters.get(g, -1) + 1
        items.append(adapter.normalize(rec, i, split))
    return items


def _structured(dataset: DatasetConfig, items: list[Item], source: str) -> list[Item]:
    """A classification / NER dataset's items checked against its declared label set (a gold label
    outside it is bad data, refused in one line: scoring it would silently count it wrong), and
    given the set as ``labels``, so prompt templates list the labels from the one declaration."""
    st = dataset.structure
    if st is None:
        return items
    allowed = set(st.labels)
    for item in items:
        if dataset.task_type == TaskType.ner:
            tags = item.doc.get("tags") or []
            bad = next((t for t in tags if t != "O" and (t[:2] not in ("B-", "I-") or t[2:] not in allowed)), None)
            if bad is not None or len(tags) != len(item.doc.get("tokens") or []):
                what = f"tag '{bad}'" if bad is not None else "tokens and tags of different lengths"
                raise DataUnavailable(f"dataset '{dataset.key}' item {item.id} ({source}): {what}; valid tags: O, "
                                      f"B-/I- + one of {', '.join(st.labels)} (structure.labels)")
        elif item.reference not in allowed:
            raise DataUnavailable(f"dataset '{dataset.key}' item {item.id} ({source}): label '{item.reference}' is "
                                  f"not declared; valid: {', '.join(st.labels)} (structure.labels)")
        item.doc.setdefault("labels", list(st.labels))
    return items


def load_split_items(dataset: DatasetConfig, split: str, limit: int | None = None,
                     offline: bool = False) -> tuple[list[Item], str]:
    """The first ``limit`` items of another split of a dataset (a probe's training split), from the
    same kind of source the evaluated split came from -- the hub's split, or its shipped slice --
    through the same adapter and label checks; with where they came from.  An empty or missing
    split is an error in one line: a probe fitted on nothing would predict nothing."""
    adapter = get_adapter(dataset)
    if offline:
        name = split_slice_name(dataset, split)
        path = _slice_path(name)
        if path is None or not path.is_file():
            raise DataUnavailable(f"dataset '{dataset.key}': its '{split}' split has no offline slice "
                                  f"({name or 'none named'}); it needs hub access to {_hub_source(dataset, split)}")
        source = f"slice {name}"  # no machine's absolute path in a run's tags
        if not path.read_text(encoding="utf-8").strip():  # datasets' JSON reader cannot read an empty file
            raise DataUnavailable(f"dataset '{dataset.key}': the '{split}' split ({source}) is empty; nothing to "
                                  "train a probe on")
        ds = _load_slice(path)
    else:
        ds, source = _load_hub(dataset, adapter, split), _hub_source(dataset, split)
    if limit is not None and len(ds) > limit:
        ds = ds.select(range(limit))
    if len(ds) == 0:
        raise DataUnavailable(f"dataset '{dataset.key}': the '{split}' split ({source}) is empty; nothing to "
                              "train a probe on")
    return _structured(dataset, _normalize_all(ds, adapter, split), source), source


def load_items(dataset: DatasetConfig, samples: int | None = None,
               offline: bool | None = None) -> LoadedDataset:
    """Load a dataset's evaluation items (and its few-shot pool) through its adapter.

    ``offline``: None tries the hub and falls back to the shipped slice when the hub is
    unreachable or HF_HUB_OFFLINE / HF_DATASETS_OFFLINE is set; True reads only the slice;
    False only the hub.  ``samples=N`` keeps the first N items (lm-eval's ``--limit``);
    more than there are keeps all of them, with a note.
    """
    key = dataset.key
    if dataset.status == Status.planned:
        raise DataUnavailable(
            f"dataset '{key}' is planned, not runnable: {dataset.planned_reason or 'no reason given'} "
            f"(status: planned in conf/datasets/{key}.yaml)")
    if samples is not None and samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if dataset.local_env:  # registration-only data: read from the user's file, never the hub (data.local)
        from specbench.data.local import load_local

        return load_local(dataset, samples)
    adapter = get_adapter(dataset)
    prompt = dataset.prompt
    k = prompt.fewshot if prompt else 0
    notes: list[str] = []
    slice_path = _slice_path(dataset.offline_slice)

    use_offline = bool(offline)
    hub_error: str | None = None
    if not use_offline:
        hub_error = _no_hub_copy(dataset) or datasets_offline() or _hub_unreachable()
        if hub_error and offline is False:
            raise DataUnavailable(
                f"dataset '{key}': offline=False but the hub cannot be used ({hub_error}); "
                f"it needs hub access to {_hub_source(dataset, dataset.split)}, or offline=True"
                + (f" to read the slice {dataset.offline_slice}" if dataset.offline_slice else ""))
        use_offline = hub_error is not None

    ds = fs_ds = None
    if not use_offline:
        try:
            ds = _load_hub(dataset, adapter, dataset.split)
            if k:
                fs_ds = _load_hub(dataset, adapter, prompt.fewshot_split)
        except Exception as exc:  # noqa: BLE001 - reported in one line, or the slice is used
            hub_error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
            if offline is False:
                raise DataUnavailable(
                    f"dataset '{key}': loading {_hub_source(dataset, dataset.split)} from the hub "
                    f"failed ({hub_error}); check hub access, or use offline=True"
                    + (f" (slice {dataset.offline_slice})" if dataset.offline_slice else "")) from exc
            use_offline = True
        else:
            source = _hub_source(dataset, dataset.split)

    if use_offline:
        why = hub_error or "offline=True"
        if slice_path is None or not slice_path.is_file():
            missing = (f"its slice {slice_path.name} is missing from {SLICES_DIR}" if slice_path
                       else "it ships no offline slice")
            raise DataUnavailable(
                f"dataset '{key}' is not available offline ({why}): {missing}; it needs hub access "
                f"to {_hub_source(dataset, dataset.split)}")
        if hub_error and offline is None:
            notes.append(f"hub not used ({hub_error}); loaded the offline slice {slice_path.name}")
        ds = _load_slice(slice_path)
        source = str(slice_path)
        if k:
            fs_name = split_slice_name(dataset, prompt.fewshot_split)
            fs_path = _slice_path(fs_name)
            if fs_path is None or not fs_path.is_file():
                raise DataUnavailable(
                    f"dataset '{key}': {k}-shot prompts need the '{prompt.fewshot_split}' split, which "
                    f"has no offline slice ({fs_name or 'none named'}); use prompt.fewshot: 0 offline "
                    f"or hub access")
            fs_ds = _load_slice(fs_path)

    available = len(ds)
    n = available if samples is None else min(samples, available)
    if samples is not None and samples > available:
        notes.append(f"samples={samples} requested but only {available} items are available "
                     f"({'offline slice' if use_offline else dataset.split + ' split'}); using all {available}")
    if use_offline:
        # the slice's bytes, not datasets' cache fingerprint: the same slice gives the same digest anywhere
        h = hashlib.sha256(slice_path.read_bytes())
        h.update(f"|first {n}".encode())
        digest = h.hexdigest()[:16]
        ds = ds.select(range(n), new_fingerprint=digest)
    else:
        if n < available:
            ds = ds.select(range(n))
        digest = ds._fingerprint

    items = _structured(dataset, _normalize_all(ds, adapter, dataset.split), source)
    fewshot: list[Item] = []
    if fs_ds is not None:
        fewshot = _structured(dataset, _normalize_all(fs_ds, adapter, prompt.fewshot_split),
                              f"{prompt.fewshot_split} split")
        if prompt.fewshot_ids:
            by_id = {it.id: it for it in fewshot}
            missing_ids = [i for i in prompt.fewshot_ids if i not in by_id]
            if missing_ids:
                raise DataUnavailable(
                    f"dataset '{key}': the fixed few-shot examples {missing_ids} are not in the "
                    f"'{prompt.fewshot_split}' split")
            fewshot = [by_id[i] for i in prompt.fewshot_ids]
    for note in notes:
        log.warning("%s: %s", key, note)
    return LoadedDataset(key=key, items=items, fewshot=fewshot, hf_dataset=ds, digest=digest,
                         source=source, offline=use_offline, available=available, notes=notes)
