"""One model's share of a category, wherever it runs: its weights materialized once, its
engine started once (lazily: a model the generation cache answers entirely never loads) and
serving each of its cells in turn.  The local executor drives it in this process; the Ray
executor inside one actor per model."""

from __future__ import annotations

from typing import Any

from specbench import tracking
from specbench.engines import make_engine
from specbench.engines.cache import CachingEngine, GenerationCache
from specbench.pipeline.category_plan import PlannedCell
from specbench.pipeline.cell import cache_scope, engine_params, materialize_weights, run_cell
from specbench.pipeline.executors import cell_row
from specbench.pipeline.plan import CellPlan


class ModelRunner:
    """A model's engine and the cells it answers; ``close`` gives its memory back."""

    def __init__(self, first: CellPlan, use_cache: bool = True) -> None:
        self.error: str | None = None  # why this model's cells cannot run (its weights failed)
        self.cache = GenerationCache() if use_cache else None
        self.engine: CachingEngine | None = None
        try:
            weights = materialize_weights(first)
        except Exception as exc:  # noqa: BLE001 - this model's cells fail, the category goes on
            self.error = f"weights: {tracking.error_line(exc)}"
            return
        params = engine_params(first, weights)
        self.engine = CachingEngine(lambda: make_engine(first.engine, params), self.cache,
                                    cache_scope(first, weights), first.engine)

    def run(self, cell: PlannedCell, parent_run_id: str, run_id: str | None = None) -> dict[str, Any]:
        """One cell as a child run of ``parent_run_id`` (``run_id``: an earlier attempt's, reopened)."""
        plan = cell.plan
        assert plan is not None  # runnable cells have plans
        if self.engine is None:
            return cell_row(cell, "failed", note=self.error or "")
        res = run_cell(plan, engine=self.engine, parent_run_id=parent_run_id, run_id=run_id)
        status = "finished" if res.status == tracking.FINISHED else "failed"
        return cell_row(cell, status, res.run_id, res.metrics, plan.dataset.main_metric, res.error or "")

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()  # memory back before the next model
            self.engine = None
        if self.cache is not None:
            self.cache.close()
            self.cache = None
