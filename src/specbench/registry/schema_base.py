"""What every registry schema module shares: the error a bad value raises, the check that
raises it, and the plain (JSON-able) form of a config, so the schema can span several modules
without importing each other in a circle."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from enum import Enum
from typing import Any


class ConfigError(ValueError):
    """A registry value that is well-typed but not valid; ``key`` names the field."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


def to_plain(obj: Any) -> Any:
    """A config dataclass as JSON-able values (enums by value), for logging and --format json."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return {k: to_plain(v) for k, v in asdict(obj).items()}
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj


def _check(cond: bool, key: str, message: str) -> None:
    if not cond:
        raise ConfigError(key, message)
