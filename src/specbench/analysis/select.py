"""Which runs a comparison reads, and which run fills each cell of its tables.

A :class:`Selection` narrows the cell runs (by category, parent run and tags) of the store's
experiments, or of the one it names: runs land wherever ``mlflow run`` or the environment put
them (MLflow's Default experiment without ``--experiment-name``), and their tags say what they
are.  Per model, dataset and preset :func:`pick_cells` takes the finished run with the most
samples, never merely the latest (a 4-item smoke run after a full run must not replace it
in a matrix), and among runs on as many items the newest, whose config hash is the cell's
current configuration; a cell without a finished run shows its latest run of any status, so
a cell that only failed shows as failed.  Rows and
columns come from the registry (the category's specialists, baselines and primary
datasets) plus whatever else has runs, so a declared cell without a run is a
``missing`` :class:`Cell`, never left out.

Runs are :class:`specbench.tracking.RunRecord` (normalized tags): runs written before tags
carried the ``specbench.`` prefix, and cells that had no kind tag, read the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from specbench import tracking
from specbench.registry import Registry
from specbench.tracking.reader import all_experiment_ids

FINISHED, FAILED, RUNNING, MISSING = "finished", "failed", "running", "missing"
_STATUS = {"FINISHED": FINISHED, "FAILED": FAILED, "KILLED": FAILED, "RUNNING": RUNNING, "SCHEDULED": RUNNING}

CellKey = tuple[str, str, str]  # model, dataset, preset
Cells = dict[CellKey, "Cell"]


@dataclass
class Selection:
    """Which runs a comparison reads; every field narrows it further."""

    experiment: str | None = None  # only this experiment; default: every experiment of the store
    category: str | None = None
    parent_run: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    def describe(self) -> dict[str, str]:
        out = {"experiment": self.experiment or "", "category": self.category or "",
               "parent_run": self.parent_run or ""}
        out.update({f"tag.{k}": v for k, v in sorted(self.tags.items())})
        return {k: v for k, v in out.items() if v}


@dataclass
class Cell:
    """The run chosen for one model x dataset x preset, or the mark that there is none."""

    model: str
    dataset: str
    preset: str
    status: str  # finished | failed | running | missing
    run: tracking.RunRecord | None = None

    @property
    def run_id(self) -> str:
        return self.run.run_id if self.run else ""

    def metric(self, name: str) -> float:
        if self.run is None or self.status != FINISHED:
            return float("nan")
        return float(self.run.metrics.get(name, float("nan")))

    def tag(self, name: str) -> str:
        """A normalized tag of the cell's run ('' without a run)."""
        return self.run.tags.get(name, "") if self.run else ""

    @property
    def n_samples(self) -> int | None:
        """How many items the cell's run evaluated (None: it does not say)."""
        n = sample_count(self.run) if self.run else None
        return int(n) if n is not None and math.isfinite(n) else None


def sample_count(run: tracking.RunRecord) -> float | None:
    """Items a run evaluated: its ``n_samples`` metric, else its ``samples`` param (a number;
    ``all`` ranks above any number); None when the run says neither (older runs)."""
    n = run.metrics.get("n_samples")
    if n is not None and math.isfinite(n):
        return float(n)
    asked = str(run.params.get("samples", "")).strip()
    if asked.isdigit():
        return float(asked)
    return math.inf if asked == "all" else None


def _rank(run: tracking.RunRecord) -> tuple[bool, float, int]:
    """Which run fills a cell: finished first, then the most samples, then the newest (runs
    that did not finish: the newest only)."""
    finished = run.status == "FINISHED"
    n = sample_count(run) if finished else None
    return finished, -1.0 if n is None else n, run.start_time


# -- reading the runs ---------------------------------------------------------------------

def experiment_ids(sel: Selection) -> list[str]:
    """The experiments a selection reads: its parent run's, else the one named, else every one
    (the tags find the runs); an unknown run or experiment raises tracking.TrackingError (one line)."""
    if sel.parent_run:
        return [tracking.run_experiment_id(sel.parent_run)]
    return tracking.experiment_ids(sel.experiment) if sel.experiment else all_experiment_ids()


def cell_runs(sel: Selection) -> list[tracking.RunRecord]:
    """Cell runs matching the selection; deleted runs are not returned, so a deleted cell
    reads as missing."""
    tags = ({"category": sel.category} if sel.category else {}) | sel.tags
    runs = tracking.search(experiment_ids(sel), tags, parent=sel.parent_run)
    return [r for r in runs if r.kind == "cell"]


def pick_cells(runs: list[tracking.RunRecord]) -> Cells:
    """Per model, dataset and preset the run that fills the cell:

    1. a FINISHED run if there is one (else the latest run of any status, so a cell that only
       failed shows as failed, not as missing);
    2. among finished runs, the one on the most items (``n_samples``, else the ``samples``
       param): a later smoke run on 4 items never replaces a full run;
    3. among runs on as many items, the newest; its config hash (tag ``config_hash``) is the
       cell's current configuration, and an older run of another configuration is not used.
    """
    best: dict[CellKey, tracking.RunRecord] = {}
    for run in runs:
        key = (run.tags["model"], run.tags["dataset"], run.tags.get("preset", ""))
        old = best.get(key)
        if old is None or _rank(run) > _rank(old):
            best[key] = run
    return {k: Cell(*k, status=_STATUS.get(r.status, FAILED), run=r) for k, r in best.items()}


latest_cells = pick_cells  # the former name (it picked the latest run; it no longer does)


def select_cells(sel: Selection) -> Cells:
    """The cells of a selection: :func:`cell_runs`, one per model x dataset x preset (:func:`pick_cells`)."""
    return pick_cells(cell_runs(sel))


def selection_category(sel: Selection) -> str | None:
    """The category a selection is about: named, else its parent run's (a category run)."""
    if sel.category or not sel.parent_run:
        return sel.category
    parent = tracking.get_run(sel.parent_run)
    return parent.tags.get("category") if parent else None


# -- what a table covers ----------------------------------------------------------------

def main_metric(reg: Registry, dataset: str, cell: Cell | None = None) -> str:
    """The dataset's main metric (the run's own tag for a dataset no longer registered)."""
    if dataset in reg.datasets:
        return reg.datasets[dataset].main_metric
    return cell.tag("main_metric") if cell else ""


def rows_of(reg: Registry, category: str, cells: Cells, models: list[str] | None = None) -> list[tuple[str, str, str]]:
    """(model, preset, role) rows: the category's specialists then its baselines, each with
    every preset it has runs under (or its registry preset when it has none)."""
    cat = reg.category(category)
    declared = models or cat.models + [b for b in cat.baselines if b not in cat.models]
    seen = [] if models else [m for (m, _, _) in cells if m not in declared]
    rows = []
    for m in declared + sorted(set(seen)):
        presets = sorted({p for (mm, _, p) in cells if mm == m})
        if not presets:
            presets = [reg.models[m].preset if m in reg.models else ""]
        role = reg.role(m, cat.key) if m in reg.models else "specialist"
        rows += [(m, p, role) for p in presets]
    return rows


def datasets_of(reg: Registry, category: str, cells: Cells, datasets: list[str] | None = None) -> list[str]:
    """The category's primary datasets, then any other dataset it has runs on."""
    if datasets:
        return list(datasets)
    cat = reg.category(category)
    out = list(cat.datasets.primary)
    extra = {d for (_, d, _) in cells} - set(out)
    return out + [d for d in cat.datasets.secondary if d in extra] + sorted(extra - set(cat.datasets.secondary))


def cell_at(cells: Cells, model: str, dataset: str, preset: str) -> Cell:
    """The cell for exactly this preset, or a missing one."""
    return cells.get((model, dataset, preset)) or Cell(model, dataset, preset, MISSING)


def best_any_preset(reg: Registry, cells: Cells, model: str, dataset: str) -> Cell:
    """The model's cell on a dataset under any preset: finished first, then the most samples
    (as :func:`pick_cells`), then the model's own registry preset, then the latest."""
    cands = [c for (m, d, _), c in cells.items() if m == model and d == dataset]
    if not cands:
        return Cell(model, dataset, "", MISSING)
    own = reg.models[model].preset if model in reg.models else None

    def rank(c: Cell) -> tuple[bool, float, bool, int]:
        finished, n, start = _rank(c.run) if c.run else (False, -1.0, 0)
        return c.status == FINISHED and finished, n, c.preset == own, start

    return max(cands, key=rank)


def mixed_counts(counts: list[int | None]) -> bool:
    """True when cells compared with each other were evaluated on different numbers of items."""
    known = {n for n in counts if n is not None}
    return len(known) > 1


__all__ = ["FAILED", "FINISHED", "MISSING", "RUNNING", "Cell", "CellKey", "Cells", "Selection", "best_any_preset",
           "cell_at", "cell_runs", "datasets_of", "experiment_ids", "latest_cells", "main_metric", "mixed_counts",
           "pick_cells", "rows_of", "sample_count", "select_cells", "selection_category"]
