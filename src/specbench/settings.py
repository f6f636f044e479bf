"""The environment variables that tune specbench's behaviour, each declared once: its name, default
and valid values.  Code reads a setting through its object here (``HEARTBEAT_S.get()``), and the CLI
checks them all before a command starts (:func:`check`), so a bad value is one line and exit 2,
never a silent default or a traceback halfway through a run.

Standard library only: the sandbox and tracking layers read it too.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass


class SettingError(ValueError):
    """An environment variable holds a value specbench cannot use; the message says which and what is valid."""


@dataclass(frozen=True)
class Seconds:
    name: str
    default: float

    def get(self) -> float:
        raw = os.environ.get(self.name, "").strip()
        try:
            value = float(raw) if raw else self.default
        except ValueError:
            value = math.nan
        if not (value > 0 and math.isfinite(value)):
            raise SettingError(f"{self.name}={raw!r}: expected a number of seconds > 0 (default {self.default:g})")
        return value


@dataclass(frozen=True)
class Choice:
    name: str
    default: str
    values: dict[str, str]  # what the user may write -> what it means

    def get(self) -> str:
        raw = os.environ.get(self.name, "").strip().lower()
        if not raw:
            return self.default
        if raw not in self.values:
            valid = ", ".join(dict.fromkeys(self.values.values()))
            raise SettingError(f"{self.name}={raw!r}: valid: {valid} (default {self.default})")
        return self.values[raw]


_YES = dict.fromkeys(("1", "true", "yes", "on"), "1")
_NO = dict.fromkeys(("0", "false", "no", "off"), "0")

HEARTBEAT_S = Seconds("SPECBENCH_HEARTBEAT_S", 30.0)  # an open run's owner says it is alive (tracking.owner)
SWEEP_HEARTBEAT_S = Seconds("SPECBENCH_SWEEP_HEARTBEAT_S", 60.0)  # a sweep worker's trials (Optuna's heartbeat)
PUBLISH = Choice("SPECBENCH_PUBLISH", "auto", {"auto": "auto", "always": "always", "never": "never",
                                               **{k: "always" for k in _YES}, **{k: "never" for k in _NO}})
ALLOW_UNISOLATED = Choice("SPECBENCH_SANDBOX_ALLOW_UNISOLATED", "0", {**_YES, **_NO})  # docs/sandbox.md

SETTINGS: tuple[Seconds | Choice, ...] = (HEARTBEAT_S, SWEEP_HEARTBEAT_S, PUBLISH, ALLOW_UNISOLATED)


def check() -> None:
    """Every setting read once: the first bad one raises :class:`SettingError`."""
    for setting in SETTINGS:
        setting.get()
