"""From a plan to tracked results: config -> plan -> data -> engine -> scores -> tracking.

- ``plan``: a cell's frozen plan (engine, arguments, sampling, weights' location, identity);
- ``category_plan``: a category expanded into cells, each with its needs or why it cannot run;
- ``task``: the one cell pipeline, prepare -> answer -> score (also the sweep probe's and
  re-scoring's);
- ``cell``: one cell as one MLflow run; ``category``: a category as a parent run with a
  child per cell, resumable; ``rescore``: saved outputs scored again, no model; ``lmeval_io``:
  lm-evaluation-harness's results and samples files, written per cell and read back.
"""

from specbench.pipeline.category import CategoryResult, run_category
from specbench.pipeline.category_plan import CategoryPlan, PlannedCell, hub_reachable, needs, plan_category
from specbench.pipeline.cell import (
    CellResult,
    cache_scope,
    engine_params,
    materialize_weights,
    run_cell,
    start_engine,
)
from specbench.pipeline.plan import (
    TUNED,
    CellPlan,
    CellUnavailable,
    engine_for,
    plan_cell,
    resolve_preset,
    stale_checkpoint,
    tuned_preset_name,
)
from specbench.pipeline.rescore import PredictionsError, read_predictions, rescore
from specbench.pipeline.task import (
    Answered,
    Prepared,
    Task,
    answer,
    answer_prepared,
    prepare,
    sample_rows,
    score,
    task_for,
)

__all__ = [
    "Answered", "CategoryPlan", "CategoryResult", "CellPlan", "CellResult", "CellUnavailable", "PlannedCell",
    "PredictionsError", "Prepared", "TUNED", "Task", "answer", "answer_prepared", "cache_scope", "engine_for",
    "engine_params", "hub_reachable", "materialize_weights", "needs", "plan_category", "plan_cell", "prepare",
    "read_predictions", "rescore", "resolve_preset", "run_category", "run_cell", "sample_rows", "score",
    "stale_checkpoint", "start_engine", "task_for", "tuned_preset_name"
]
