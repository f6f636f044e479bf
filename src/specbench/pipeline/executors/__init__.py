"""Where a category's cells run: executors register themselves by name (``local``, ``ray``).

An executor gets the runnable cells grouped by model and the category's context (the parent
run, the earlier invocation's cell runs) and yields one summary row per cell, in any order.
Whatever runs them, each model's engine starts once (``ModelRunner``) and serves all its
datasets, each cell is a child run of the parent opened by ``pipeline.run_category``, and a
cell that fails (or whose worker dies) fails alone.  Heavy imports (Ray, engines) stay inside
the executor modules, loaded only when that executor is asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from specbench.pipeline.category_plan import PlannedCell

# name -> module that registers it (imported on first use: listing executors never imports Ray)
_MODULES = {"local": "specbench.pipeline.executors.local", "ray": "specbench.pipeline.executors.ray"}
_EXECUTORS: dict[str, Callable[..., Executor]] = {}


class ExecutorError(RuntimeError):
    """An executor cannot reach what runs the cells (an unreachable Ray cluster); one line."""


@dataclass
class ExecutorContext:
    """What every cell of one category invocation shares."""

    parent_run_id: str
    experiment_id: str  # the parent's experiment: child runs opened elsewhere go there too
    children: dict[str, Any] = field(default_factory=dict)  # config hash -> earlier run (RunRecord)
    use_cache: bool = True


class Executor(Protocol):
    def start(self) -> None:
        """Reach what runs the cells (a cluster) before any run is opened; raise with one line if it cannot."""
        ...

    def close(self) -> None:
        """Give back what ``start`` took."""
        ...

    def run(self, groups: list[list[PlannedCell]], ctx: ExecutorContext) -> Iterator[dict[str, Any]]:
        """Run each group (one model's runnable cells, in order) and yield a row per cell."""
        ...


def register_executor(name: str) -> Callable[[Callable[..., Executor]], Callable[..., Executor]]:
    def deco(factory: Callable[..., Executor]) -> Callable[..., Executor]:
        _EXECUTORS[name] = factory
        return factory
    return deco


def executor_names() -> list[str]:
    return list(_MODULES)


def make_executor(name: str, **options: Any) -> Executor:
    """The executor ``name`` with its options (e.g. the Ray ``address``); ValueError names the valid ones."""
    if name not in _MODULES:
        raise ValueError(f"executor '{name}': valid: {', '.join(_MODULES)}")
    importlib.import_module(_MODULES[name])
    return _EXECUTORS[name](**options)


def cell_row(cell: PlannedCell, status: str, run_id: str = "", metrics: dict[str, float] | None = None,
             main: str | None = None, note: str = "") -> dict[str, Any]:
    """One cell's summary: the category's table row and its ``cells.json`` entry."""
    metrics = metrics or {}
    return {"cell": cell.name, "role": cell.role, "status": status,
            "main_metric": main or "", "value": metrics.get(main) if main else None,
            "output_tokens_per_s": metrics.get("output_tokens_per_s"), "peak_rss_mb": metrics.get("peak_rss_mb"),
            "run_id": run_id, "note": note}


def resumed_row(cell: PlannedCell, ctx: ExecutorContext) -> dict[str, Any] | None:
    """The row of a cell an earlier identical invocation FINISHED (kept, not redone), else None."""
    from specbench import tracking

    assert cell.plan is not None
    old = ctx.children.get(cell.plan.config_hash())
    if old is None or old.status != tracking.FINISHED:
        return None
    return cell_row(cell, "finished", old.run_id, old.metrics, cell.plan.dataset.main_metric, "resumed")


def split_resumed(cells: list[PlannedCell], ctx: ExecutorContext) -> tuple[list[dict[str, Any]], list[PlannedCell]]:
    """A model's cells as (rows of those an earlier invocation finished, the cells still to run)."""
    rows: list[dict[str, Any]] = []
    todo: list[PlannedCell] = []
    for cell in cells:
        row = resumed_row(cell, ctx)
        if row is not None:
            rows.append(row)
        else:
            todo.append(cell)
    return rows, todo


def earlier_run_id(cell: PlannedCell, ctx: ExecutorContext) -> str | None:
    """The run an interrupted or failed earlier attempt left for this cell: reopened, so no cell has two runs."""
    assert cell.plan is not None
    old = ctx.children.get(cell.plan.config_hash())
    return old.run_id if old is not None else None


__all__ = ["Executor", "ExecutorContext", "ExecutorError", "cell_row", "earlier_run_id", "executor_names",
           "make_executor", "register_executor", "resumed_row", "split_resumed"]
