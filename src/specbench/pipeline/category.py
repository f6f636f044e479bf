"""A whole category as one parent run with a child run per cell.

Each model's weights are materialized once and its engine starts once (lazily: a model the
generation cache answers entirely never loads) and serves all its datasets.  Where the models
run is the executor's business (``pipeline.executors``): one after another in this process
(``local``), or one Ray actor per model on a cluster (``ray``); the parent run is opened here
either way, and every cell is its child.  A re-run of the same invocation resumes: FINISHED cells with the same
config hash are kept, interrupted or failed ones are redone in their own run, so no cell ever
has two child runs.  A model that cannot be prepared fails its own cells and no others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from specbench import tracking
from specbench.pipeline.category_plan import CategoryPlan, PlannedCell
from specbench.pipeline.executors import Executor, ExecutorContext, cell_row, make_executor


@dataclass
class CategoryResult:
    parent_run_id: str
    rows: list[dict[str, Any]]  # one per cell: cell, status, main metric, tokens/s, memory, run id
    exit_code: int  # 0 when every runnable cell finished


def existing_runs(digest: str, experiment: str | None = None) -> tuple[str | None, dict[str, tracking.RunRecord]]:
    """The parent run of an earlier identical invocation and its cell runs by config hash
    (the best run per hash: FINISHED beats anything else).  A cell run that was superseded (its
    params differed, see ``tracking.open_run``) or that another live process holds is never
    adopted; a parent another live invocation holds is refused when it is reopened
    (``tracking.RunInUse``: one line naming the owner, exit 2)."""
    exp_ids = [tracking.active_experiment_id(experiment)]
    parents = tracking.search(exp_ids, {"kind": "category", "plan_digest": digest}, newest_first=True, max_results=1)
    if not parents:
        return None, {}
    children: dict[str, tracking.RunRecord] = {}
    for run in tracking.search(exp_ids, parent=parents[0].run_id):
        h = run.tags.get("config_hash")
        if not h or run.tags.get(tracking.SUPERSEDED_BY) or tracking.holder(run.status, run.tags) is not None:
            continue
        if h not in children or run.status == tracking.FINISHED:
            children[h] = run
    return parents[0].run_id, children


def run_category(cplan: CategoryPlan, *, use_cache: bool = True, experiment: str | None = None,
                 on_cell: Callable[[dict[str, Any]], None] | None = None,
                 executor: Executor | None = None) -> CategoryResult:
    """Run every runnable cell of a category plan under one parent run (see the module docstring);
    ``executor``: where the cells run (default: the local one)."""
    digest = cplan.digest()
    executor = executor or make_executor("local")
    executor.start()  # an unreachable cluster stops here, before any run is opened
    rows: list[dict[str, Any]] = []
    counts = {"finished": 0, "failed": 0, "skipped": 0, "resumed": 0}
    name = f"category:{cplan.category}"
    try:
        parent_id, children = existing_runs(digest, experiment)
        # An earlier identical invocation is resumed; else under `mlflow run` its project run
        # becomes the parent (open_run adopts it), else a new run.
        with tracking.open_run("category", name=name, tags={"category": cplan.category, "plan_digest": digest},
                               experiment=experiment, resume=parent_id) as parent:
            if not parent.resumed or "category" not in parent.stored_params:
                parent.log_params({f"option.{k}": v for k, v in cplan.options.items()} | {"category": cplan.category})
            parent.log_dict({"cells": [{"cell": c.name, "role": c.role, "needs": c.needs, "skip_reason": c.reason}
                                       for c in cplan.cells]}, "plan.json")
            for cell in cplan.skipped:
                rows.append(cell_row(cell, "skipped", note=cell.reason or ""))
                counts["skipped"] += 1
            by_model: dict[str, list[PlannedCell]] = {}
            for cell in cplan.runnable:
                by_model.setdefault(cell.model, []).append(cell)
            ctx = ExecutorContext(parent.run_id, parent.experiment_id, children, use_cache)
            for row in executor.run(list(by_model.values()), ctx):
                counts[row["status"]] += 1
                counts["resumed"] += row["note"] == "resumed"
                rows.append(row)
                if on_cell:
                    on_cell(row)
            order = {c.name: i for i, c in enumerate(cplan.cells)}  # the plan's order, whatever ran first
            rows.sort(key=lambda r: order[r["cell"]])
            ok = counts["failed"] == 0
            parent.log_metrics({f"cells_{k}": float(v) for k, v in counts.items()}
                               | {"cells_total": float(len(cplan.cells))})
            parent.log_table(rows, "cells.json")
            parent.set_tags({"exit_code": "0" if ok else "1"})
            if not ok:
                parent.status = tracking.FAILED
        return CategoryResult(parent.run_id, rows, 0 if ok else 1)
    finally:
        executor.close()

