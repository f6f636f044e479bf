"""A whole category as one parent run with a child run per cell.

Each model's weights are materialized once and its engine starts once (lazily: a model the
generation cache answers entirely never loads) and serves all its datasets; it is closed
before the next model.  A re-run of the same invocation resumes: FINISHED cells with the same
config hash are kept, interrupted or failed ones are redone in their own run, so no cell ever
has two child runs.  A model that cannot be prepared fails its own cells and no others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from specbench import tracking
from specbench.engines import make_engine
from specbench.engines.cache import CachingEngine, GenerationCache
from specbench.pipeline.category_plan import CategoryPlan, PlannedCell
from specbench.pipeline.cell import cache_scope, engine_params, materialize_weights, run_cell


@dataclass
class CategoryResult:
    parent_run_id: str
    rows: list[dict[str, Any]]  # one per cell: cell, status, main metric, tokens/s, memory, run id
    exit_code: int  # 0 when every runnable cell finished


def existing_runs(digest: str, experiment: str | None = None) -> tuple[str | None, dict[str, tracking.RunRecord]]:
    """The parent run of an earlier identical invocation and its cell runs by config hash
    (the best run per hash: FINISHED beats anything else)."""
    exp_ids = [tracking.active_experiment_id(experiment)]
    parents = tracking.search(exp_ids, {"kind": "category", "plan_digest": digest}, newest_first=True, max_results=1)
    if not parents:
        return None, {}
    children: dict[str, tracking.RunRecord] = {}
    for run in tracking.search(exp_ids, parent=parents[0].run_id):
        h = run.tags.get("config_hash")
        if h and (h not in children or run.status == tracking.FINISHED):
            children[h] = run
    return parents[0].run_id, children


def _row(cell: PlannedCell, status: str, run_id: str = "", metrics: dict[str, float] | None = None,
         main: str | None = None, note: str = "") -> dict[str, Any]:
    metrics = metrics or {}
    return {"cell": cell.name, "role": cell.role, "status": status,
            "main_metric": main or "", "value": metrics.get(main) if main else None,
            "output_tokens_per_s": metrics.get("output_tokens_per_s"), "peak_rss_mb": metrics.get("peak_rss_mb"),
            "run_id": run_id, "note": note}


def run_category(cplan: CategoryPlan, *, use_cache: bool = True, experiment: str | None = None,
                 on_cell: Callable[[dict[str, Any]], None] | None = None) -> CategoryResult:
    """Run every runnable cell of a category plan under one parent run (see the module docstring)."""
    digest = cplan.digest()
    parent_id, children = existing_runs(digest, experiment)
    rows: list[dict[str, Any]] = []
    counts = {"finished": 0, "failed": 0, "skipped": 0, "resumed": 0}
    cache = GenerationCache() if use_cache else None
    name = f"category:{cplan.category}"
    try:
        # An earlier identical invocation is resumed; else under `mlflow run` its project run
        # becomes the parent (open_run adopts it), else a new run.
        with tracking.open_run("category", name=name, tags={"category": cplan.category, "plan_digest": digest},
                               experiment=experiment, resume=parent_id) as parent:
            if not parent.resumed or "category" not in parent.stored_params:
                parent.log_params({f"option.{k}": v for k, v in cplan.options.items()} | {"category": cplan.category})
            parent.log_dict({"cells": [{"cell": c.name, "role": c.role, "needs": c.needs, "skip_reason": c.reason}
                                       for c in cplan.cells]}, "plan.json")
            for cell in cplan.skipped:
                rows.append(_row(cell, "skipped", note=cell.reason or ""))
                counts["skipped"] += 1
            by_model: dict[str, list[PlannedCell]] = {}
            for cell in cplan.runnable:
                by_model.setdefault(cell.model, []).append(cell)
            for cells in by_model.values():
                for row in _run_model(cells, cache, parent.run_id, children):
                    counts[row["status"]] += 1
                    counts["resumed"] += row["note"] == "resumed"
                    rows.append(row)
                    if on_cell:
                        on_cell(row)
            ok = counts["failed"] == 0
            parent.log_metrics({f"cells_{k}": float(v) for k, v in counts.items()}
                               | {"cells_total": float(len(cplan.cells))})
            parent.log_table(rows, "cells.json")
            parent.set_tags({"exit_code": "0" if ok else "1"})
            if not ok:
                parent.status = tracking.FAILED
        return CategoryResult(parent.run_id, rows, 0 if ok else 1)
    finally:
        if cache is not None:
            cache.close()


def _run_model(cells: list[PlannedCell], cache: GenerationCache | None, parent_id: str,
               children: dict[str, tracking.RunRecord]) -> Iterator[dict[str, Any]]:
    """One model's cells on one lazily started engine; yields each cell's summary row."""
    first = cells[0].plan
    assert first is not None  # runnable cells have plans
    try:
        weights = materialize_weights(first)
    except Exception as exc:  # noqa: BLE001 - this model's cells fail, the category goes on
        why = f"weights: {tracking.error_line(exc)}"
        yield from (_row(c, "failed", note=why) for c in cells)
        return
    params = engine_params(first, weights)
    scope = cache_scope(first, weights)
    engine = CachingEngine(lambda: make_engine(first.engine, params), cache, scope, first.engine)
    try:
        for cell in cells:
            plan = cell.plan
            assert plan is not None
            old = children.get(plan.config_hash())
            main = plan.dataset.main_metric
            if old is not None and old.status == tracking.FINISHED:
                yield _row(cell, "finished", old.run_id, old.metrics, main, "resumed")
                continue
            res = run_cell(plan, engine=engine, parent_run_id=parent_id, run_id=old.run_id if old else None)
            status = "finished" if res.status == tracking.FINISHED else "failed"
            yield _row(cell, status, res.run_id, res.metrics, main, res.error or "")
    finally:
        engine.close()  # memory back before the next model
