"""The adapter registry: how each dataset's records become :class:`~specbench.types.Item` s.

One module per dataset in this package, each registering its normalize function with
:func:`adapter`; every module here is imported when the package is, so adding a dataset is
one new module and no list to edit.  A dataset's YAML names its adapter (``adapter``, else
its ``key``); prompting options live in the YAML, not here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from specbench.data.errors import DataUnavailable
from specbench.registry.schema import DatasetConfig
from specbench.types import Item

Normalizer = Callable[[Mapping[str, Any], int, str], Item]

LETTERS = "ABCDEFGHIJ"  # answer labels of lettered multiple choice (mmlu, and arc when unlabelled)


@dataclass(frozen=True)
class Adapter:
    """How one dataset's records become Items (prompting options live in the dataset's YAML)."""

    name: str
    normalize: Normalizer  # (record, index, split) -> Item; index counts within ``group``
    group: str | None = None  # record field that item ids are numbered within
    partial: bool = False  # choices are contexts, the continuation is fixed (winogrande)
    hub_configs: tuple[str, ...] = ()  # concatenated when the YAML's hub_config is null
    # A corpus the hub holds as one split that this dataset cuts into its own (no official split):
    # every split is read from ``hub_split`` and keeps the records ``split_filter(record, split)`` accepts.
    hub_split: str | None = None
    split_filter: Callable[[Mapping[str, Any], str], bool] | None = None


ADAPTERS: dict[str, Adapter] = {}


def register_adapter(adapter: Adapter) -> Adapter:
    """Register (or replace) an adapter by name; for callers that build :class:`Adapter` s themselves."""
    ADAPTERS[adapter.name] = adapter
    return adapter


def adapter(name: str, *, group: str | None = None, partial: bool = False, hub_configs: Iterable[str] = (),
            hub_split: str | None = None, split_filter: Callable[[Mapping[str, Any], str], bool] | None = None,
            ) -> Callable[[Normalizer], Normalizer]:
    """Decorator registering a normalize function ``(record, index, split) -> Item`` as adapter ``name``.

    The function is returned unchanged.  A second, different function under a name already
    taken is an error: two modules claiming one dataset is a mistake, not an override
    (use :func:`register_adapter` to replace one on purpose).
    """

    def register(fn: Normalizer) -> Normalizer:
        old = ADAPTERS.get(name)
        if old is not None and _where(old.normalize) != _where(fn):  # same function again: a module reload
            raise ValueError(f"adapter '{name}' is registered twice: {_where(old.normalize)} and {_where(fn)}")
        register_adapter(Adapter(name, fn, group=group, partial=partial, hub_configs=tuple(hub_configs),
                                 hub_split=hub_split, split_filter=split_filter))
        return fn

    return register


def _where(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{getattr(fn, '__qualname__', fn)}"


def adapter_names() -> list[str]:
    """The registered adapters' names, sorted (what a dataset YAML's ``adapter`` may say)."""
    return sorted(ADAPTERS)


def get_adapter(dataset: DatasetConfig) -> Adapter:
    """The dataset's adapter: its ``adapter`` field, else its ``key``."""
    name = dataset.adapter or dataset.key
    if name not in ADAPTERS:
        raise DataUnavailable(
            f"dataset '{dataset.key}' has no adapter '{name}' in specbench.data; "
            f"known adapters: {', '.join(sorted(ADAPTERS))}")
    return ADAPTERS[name]


def _import_all() -> None:
    """Import every adapter module here (sorted by name), which registers it, then the modules
    installed packages name in the ``specbench.adapters`` entry-point group."""
    from specbench.extensions import import_all

    import_all(__name__, __path__, "specbench.adapters")


_import_all()
