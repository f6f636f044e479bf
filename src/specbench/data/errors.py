"""The data layer's one exception, in a module of its own so the adapter registry and the
loaders can both raise it without importing each other."""

from __future__ import annotations


class DataUnavailable(RuntimeError):
    """A dataset cannot be loaded here; the message is one line: what, why, what would work."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
