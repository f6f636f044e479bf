"""Zygote entry script: ``python -I -B <path of this file> --zygote CFG`` (started by ../pool.py).

Isolated mode (-I) leaves this script's folder off sys.path, and that is wanted: the programs run
later in this interpreter must not find the harness' modules (or anything else) there.  So instead of
changing sys.path, this script loads its own folder as a package under a name no program or library
uses, straight from its file location; its modules then import each other relatively, exactly as
when the parent imports them as ``specbench.sandbox.child``.  Stdlib-only, like the whole package.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

_PACKAGE = "_specbench_sandbox_child"


def _load_package() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location(
        _PACKAGE, os.path.join(here, "__init__.py"), submodule_search_locations=[here]
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the sandbox child package from {here}")
    pkg = importlib.util.module_from_spec(spec)
    sys.modules[_PACKAGE] = pkg
    spec.loader.exec_module(pkg)


if __name__ == "__main__" and sys.argv[1:2] == ["--zygote"]:
    _load_package()
    importlib.import_module(f"{_PACKAGE}.zygote").main(sys.argv[2:])
