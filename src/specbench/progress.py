"""Progress where a user waits: batches, programs, trials, quantization steps.

Library code (engines, the sandbox, sweeps, quantization) reports progress through
:func:`progress`; it is drawn only on the console the command line hands over with :func:`use`
(its stderr console, which stays on the real screen while library chatter goes to the log), so
library callers and tests draw nothing.  Bars are transient: they vanish when their work ends,
and inside another bar (a category's cells) they are drawn beneath it (rich nests live displays).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from rich.console import Console

_console: Console | None = None
T = TypeVar("T")


def use(console: Console | None) -> None:
    """Draw progress on ``console`` from now on (None: draw nothing)."""
    global _console
    _console = console


Advance = Callable[..., None]  # advance(n=1, description=None): n steps done; what runs now


def no_progress(n: int = 1, description: str | None = None) -> None:
    return None


@contextmanager
def progress(description: str, total: int | None) -> Iterator[Advance]:
    """A bar of ``total`` steps; yields ``advance(n=1, description=None)``.  Nothing is drawn without a console
    (see :func:`use`) or for fewer than two steps (nothing to wait for between them)."""
    if _console is None or (total is not None and total < 2):
        yield no_progress
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=_console, transient=True) as bar:
        task = bar.add_task(description, total=total)

        def advance(n: int = 1, description: str | None = None) -> None:
            bar.update(task, advance=n, **({"description": description} if description else {}))

        yield advance


def tracked(steps: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """``steps`` with a bar that advances as each step's body finishes (a loop's one-line change)."""
    items = list(steps) if total is None else steps
    with progress(description, len(items) if total is None else total) as advance:  # type: ignore[arg-type]
        for item in items:
            yield item
            advance()
