"""Every extension point in one place: engines, scorers and data adapters.

Each kind of extension is a module that registers itself (``@register_engine``, ``@scorer``,
``@adapter``) in its package, or in any installed package through the entry-point groups
``specbench.engines``, ``specbench.scorers`` and ``specbench.adapters``; a module can also
simply be imported before the run (what tests and docs/extending.md do).  :func:`check`
validates the registry's names against what is registered, so a misspelt scorer, engine or
adapter in conf/ is one line and exit 2 before anything starts.  Nothing here imports torch.
"""

from __future__ import annotations

import importlib
import os

from specbench.registry import Registry, RegistryError, check_adapters, check_engines, check_scorers

PLUGINS_ENV = "SPECBENCH_PLUGINS"


_imported: set[str] = set()


def import_all(package: str, path: list[str], group: str) -> None:
    """Import every module of an extension package (which registers what it defines), then
    every module installed packages name in the entry-point group ``group``; once per package."""
    import pkgutil
    from importlib import metadata

    if package in _imported:
        return
    _imported.add(package)
    for info in pkgutil.iter_modules(path):
        importlib.import_module(f"{package}.{info.name}")
    for ep in metadata.entry_points(group=group):
        ep.load()


def load_plugins() -> list[str]:
    """Import the modules $SPECBENCH_PLUGINS names (comma-separated): extensions that live in
    no installed package, e.g. while trying one out.  Returns their names."""
    names = [n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(",") if n.strip()]
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise RegistryError(f"{PLUGINS_ENV} names module '{name}', which cannot be imported ({exc}); "
                                "put its folder on PYTHONPATH") from None
    return names


def check(reg: Registry) -> None:
    """Raise RegistryError (file, key, nearest names) for a name conf/ uses that nothing registers."""
    from specbench.data import adapter_names
    from specbench.engines import engine_names
    from specbench.scoring import METRICS, load_scorers

    load_scorers()
    check_scorers(reg, METRICS)
    check_engines(reg, engine_names())
    check_adapters(reg, adapter_names())
