"""Other names of datasets: the seeds' names (``enhanced_math_fixed``, ``math_competition``) for
our keys (``math``), declared as ``aliases`` in conf/datasets/*.yaml as categories declare theirs.

An alias stands for exactly one key, so it must not repeat and must not be another dataset's
key (either would make a name mean two datasets); category files may name a dataset by an
alias, and the loader rewrites it to the key, so everything downstream (plans, tags, tables)
only ever sees keys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the loader imports this module; the Registry type only annotates
    from specbench.registry.loader import Registry


def dataset_aliases(reg: Registry) -> dict[str, str]:
    """alias -> dataset key, over every dataset of the registry."""
    return {alias: d.key for d in reg.datasets.values() for alias in d.aliases}


def check_and_resolve(reg: Registry) -> None:
    """One-line errors for an alias declared twice or equal to a dataset key; then category files'
    dataset names rewritten from aliases to keys (unknown names are left for the reference check)."""
    from specbench.registry.loader import RegistryError

    owner: dict[str, str] = {}
    for d in reg.datasets.values():
        f = reg.root / "datasets" / f"{d.key}.yaml"
        for i, alias in enumerate(d.aliases):
            if alias in reg.datasets:
                raise RegistryError(f"alias '{alias}' is the key of dataset '{alias}'", f, f"aliases[{i}]")
            if alias in owner:
                raise RegistryError(f"alias '{alias}' is already an alias of dataset '{owner[alias]}'", f,
                                    f"aliases[{i}]")
            owner[alias] = d.key
    for c in reg.categories.values():
        for tier in (c.datasets.primary, c.datasets.secondary):
            tier[:] = list(dict.fromkeys(owner.get(name, name) for name in tier))
