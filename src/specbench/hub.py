"""Is the Hugging Face hub usable from here?  One answer per process, for models and datasets.

A leaf module (standard library and huggingface_hub only), so the data layer and the weights
layer ask the same question the same way without importing each other.
"""

from __future__ import annotations

import os
from functools import lru_cache

_TRUE = {"1", "true", "yes", "on"}


def hub_offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub reads it (1/true/yes/on, any case)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


@lru_cache(maxsize=1)
def hub_unreachable() -> str | None:
    """Why the hub cannot be reached from here (None if it answers): one quick HEAD request per
    process, through huggingface_hub's own session (proxies, HF_ENDPOINT), so an offline
    machine falls back at once instead of after the libraries' retries.  Offline flags are the
    caller's to check first (models and datasets honour different ones)."""
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    try:
        get_session().head(constants.ENDPOINT, timeout=5)
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable from here"
        return f"{constants.ENDPOINT} unreachable ({type(exc).__name__})"


def datasets_offline() -> str | None:
    """``VAR=value`` of the first offline flag a dataset load honours (HF_HUB_OFFLINE,
    HF_DATASETS_OFFLINE), or None."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return f"{var}={os.environ[var]}"
    return None
