"""What every command module shares: the consoles, one-line usage errors, tables, argument types.

Every user error ends as one line on stderr and exit code 2 (``UsageError``, or a
``RegistryError`` from the layers below); argument types accept what ``mlflow run`` passes for
an unset parameter (an empty string) as "not given".
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

# Piped output (logs, CI, `mlflow run`) gets a wide console rather than rich's 80 columns.
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)

USAGE_ERROR = 2


class UsageError(Exception):
    """Bad input from the command line; printed as one line, exit 2."""


def emit(rows: list[dict[str, Any]], columns: list[str], fmt: str, title: str) -> None:
    if fmt == "json":
        print(json.dumps(rows, indent=2, default=str))
        return
    table = Table(title=title, show_lines=False)
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*("" if r.get(c) is None else str(r.get(c)) for c in columns))
    out.print(table)


def samples_arg(text: str) -> int | None:
    """--samples N (N >= 1), or 0/all for every item."""
    if text in ("0", "all", ""):
        return None
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got '{text}'")
    return n


def print_metrics(title: str, metrics: dict[str, float], main: str | None = None) -> None:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k in sorted(metrics, key=lambda k: (k != main, k.endswith("_stderr"), k)):
        table.add_row(f"[bold]{k}[/bold]" if k == main else k, f"{metrics[k]:.4g}")
    out.print(table)


def blank_is_none(text: str) -> str | None:
    """An empty value (what `mlflow run` passes for an unset parameter) means the default."""
    return text.strip() or None


def csv_list(text: str) -> list[str] | None:
    names = [t.strip() for t in text.split(",") if t.strip()]
    return names or None


def boolean(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got '{text}'")


def optional(kind: type):
    """An argparse type where '' means "not given"."""
    def parse(text: str):
        if not text.strip():
            return None
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got '{text}'") from None
    return parse


def tags_arg(text: str) -> dict[str, str]:
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(f"expected key=value pairs separated by commas, got '{part}'")
        out[key.strip()] = value.strip()
    return out
