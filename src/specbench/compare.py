"""Specialist-vs-generalist comparisons, read back from MLflow.

A comparison selects cell runs (by category, parent run, experiment or tags), keeps the
latest finished run per model, dataset and preset, and builds long-form tables (one row
per cell, pandas) from which every rendering is made:

- ``metric_matrix``: models x datasets of the main metric with a bootstrap interval over
  the run's per-item scores (its ``samples.json``);
- ``delta_matrix``: specialist minus each declared baseline, paired by item id, with
  McNemar's exact test for right/wrong scores and the paired bootstrap otherwise;
- ``efficiency_table``: accuracy against output tokens/s and peak memory (Pareto fronts)
  and accuracy per billion parameters;
- ``quantization_table``: each quantized variant against its full-precision parent
  (paired delta and test, size, memory and throughput ratios);
- ``framework_matrix``: conf/framework.yaml's primary task x role matrix.

A declared model or dataset without a finished run is a row with status ``missing`` (or
``failed``/``running``), never left out.  ``write`` renders the tables (render.py) and
``log_run`` records them on a ``compare`` run linked from the cells' parent runs.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities import Run, ViewType
from mlflow.tracking import MlflowClient

from specbench import stats, tracking
from specbench.registry import Registry

KIND_TAG = tracking.KIND_TAG
COMPARE_LINK_TAG = "specbench.compare_run"  # set on a category's parent run
FINISHED, FAILED, RUNNING, MISSING = "finished", "failed", "running", "missing"
_STATUS = {"FINISHED": FINISHED, "FAILED": FAILED, "KILLED": FAILED, "RUNNING": RUNNING, "SCHEDULED": RUNNING}


class CompareError(Exception):
    """A selection that names nothing (unknown experiment or run); one line for the CLI."""


@dataclass
class Selection:
    """Which runs a comparison reads; every field narrows it further."""

    experiment: str | None = None  # name; default $MLFLOW_EXPERIMENT_NAME or specbench
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
    run: Run | None = None

    @property
    def run_id(self) -> str:
        return self.run.info.run_id if self.run else ""

    def metric(self, name: str) -> float:
        if self.run is None or self.status != FINISHED:
            return float("nan")
        return float(self.run.data.metrics.get(name, float("nan")))


# -- reading runs back ------------------------------------------------------------------

class RunStore:
    """MLflow reads for one comparison; each run's artifacts are downloaded once."""

    def __init__(self, client: MlflowClient | None = None) -> None:
        self.client = client or MlflowClient(tracking.tracking_uri())
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per artifact otherwise
        self._tables: dict[tuple[str, str], list[dict[str, Any]] | None] = {}
        self._json: dict[tuple[str, str], dict[str, Any] | None] = {}

    def experiment_ids(self, sel: Selection) -> list[str]:
        if sel.parent_run:
            try:
                return [self.client.get_run(sel.parent_run).info.experiment_id]
            except mlflow.exceptions.MlflowException:
                raise CompareError(f"no run with id '{sel.parent_run}' in {tracking.tracking_uri()}") from None
        name = sel.experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or tracking.DEFAULT_EXPERIMENT
        exp = self.client.get_experiment_by_name(name)
        if exp is None:
            names = [e.name for e in self.client.search_experiments()]
            raise CompareError(f"no experiment '{name}' in {tracking.tracking_uri()}; "
                               f"experiments: {', '.join(names) or '(none)'}")
        return [exp.experiment_id]

    def search(self, sel: Selection) -> list[Run]:
        """Cell runs (those tagged with a model and a dataset) matching the selection; deleted
        runs are not returned, so a deleted cell reads as missing."""
        clauses = []
        for key, value in (({"category": sel.category} if sel.category else {}) | sel.tags).items():
            clauses.append(f"tags.`{key}` = {_quote(value)}")
        if sel.parent_run:
            clauses.append(f"tags.`mlflow.parentRunId` = {_quote(sel.parent_run)}")
        runs: list[Run] = []
        token = None
        exp_ids = self.experiment_ids(sel)
        while True:
            page = self.client.search_runs(exp_ids, " and ".join(clauses),
                                           run_view_type=ViewType.ACTIVE_ONLY, max_results=5000, page_token=token)
            runs += [r for r in page if r.data.tags.get("model") and r.data.tags.get("dataset")
                     and KIND_TAG not in r.data.tags]
            token = page.token
            if not token:
                return runs

    def table(self, run: Run, path: str = tracking.SAMPLES_TABLE) -> list[dict[str, Any]] | None:
        key = (run.info.run_id, path)
        if key not in self._tables:
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    local = self.client.download_artifacts(run.info.run_id, path, tmp)
                    self._tables[key] = tracking.read_table(local)
                except (OSError, mlflow.exceptions.MlflowException, ValueError, KeyError):
                    self._tables[key] = None
        return self._tables[key]

    def json_artifact(self, run: Run, path: str) -> dict[str, Any] | None:
        key = (run.info.run_id, path)
        if key not in self._json:
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    self._json[key] = json.loads(Path(self.client.download_artifacts(
                        run.info.run_id, path, tmp)).read_text())
                except (OSError, mlflow.exceptions.MlflowException, ValueError):
                    self._json[key] = None
        return self._json[key]

    def scores(self, cell: Cell, metric: str) -> pd.Series | None:
        """Per-item scores of a finished cell, indexed by item id (the pairing key)."""
        if cell.run is None or cell.status != FINISHED:
            return None
        rows = self.table(cell.run)
        col = f"score.{metric}"
        if not rows or col not in rows[0]:
            return None
        s = pd.Series({str(r["id"]): r[col] for r in rows}, dtype=float)
        return s[~s.index.duplicated(keep="first")].dropna()


def _quote(value: str) -> str:
    if "'" in value:
        raise CompareError(f"quotes are not allowed in a selection value: {value!r}")
    return f"'{value}'"


def latest_cells(runs: list[Run]) -> dict[tuple[str, str, str], Cell]:
    """Per model, dataset and preset: the latest FINISHED run, else the latest run of any
    status (so a cell that only failed shows as failed, not as missing)."""
    best: dict[tuple[str, str, str], Run] = {}
    for run in runs:
        t = run.data.tags
        key = (t["model"], t["dataset"], t.get("preset", ""))
        old = best.get(key)
        rank = (run.info.status == "FINISHED", run.info.start_time or 0)
        if old is None or rank > (old.info.status == "FINISHED", old.info.start_time or 0):
            best[key] = run
    return {k: Cell(*k, status=_STATUS.get(r.info.status, FAILED), run=r) for k, r in best.items()}


def select(reg: Registry, sel: Selection, store: RunStore | None = None) -> tuple[RunStore, dict]:
    store = store or RunStore()
    return store, latest_cells(store.search(sel))


# -- what a table covers ----------------------------------------------------------------

def main_metric(reg: Registry, dataset: str, cell: Cell | None = None) -> str:
    if dataset in reg.datasets:
        return reg.datasets[dataset].main_metric
    return cell.run.data.tags.get("main_metric", "") if cell and cell.run else ""


def rows_of(reg: Registry, category: str, cells: dict, models: list[str] | None = None) -> list[tuple[str, str, str]]:
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


def datasets_of(reg: Registry, category: str, cells: dict, datasets: list[str] | None = None) -> list[str]:
    """The category's primary datasets, then any other dataset it has runs on."""
    if datasets:
        return list(datasets)
    cat = reg.category(category)
    out = list(cat.datasets.primary)
    extra = {d for (_, d, _) in cells} - set(out)
    return out + [d for d in cat.datasets.secondary if d in extra] + sorted(extra - set(cat.datasets.secondary))


def _cell(cells: dict, model: str, dataset: str, preset: str) -> Cell:
    return cells.get((model, dataset, preset)) or Cell(model, dataset, preset, MISSING)


# -- the matrices -------------------------------------------------------------------------

def metric_matrix(reg: Registry, store: RunStore, cells: dict, category: str, *, models: list[str] | None = None,
                  datasets: list[str] | None = None, metric: str | None = None, seed: int = stats.SEED) -> pd.DataFrame:
    """One row per model x preset x dataset: value, bootstrap interval, n, status, run id."""
    out = []
    for model, preset, role in rows_of(reg, category, cells, models):
        for ds in datasets_of(reg, category, cells, datasets):
            c = _cell(cells, model, ds, preset)
            m = metric or main_metric(reg, ds, c)
            row = {"category": category, "model": model, "preset": preset, "role": role, "dataset": ds, "metric": m,
                   "status": c.status, "value": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n": 0,
                   "ci_method": "", "run_id": c.run_id}
            value = c.metric(m)
            if c.status == FINISHED and not np.isfinite(value):
                row["status"] = MISSING  # the run does not have this metric
            scores = store.scores(c, m)
            if row["status"] == FINISHED and scores is not None and len(scores):
                iv = stats.bootstrap_mean(scores.to_numpy(), seed=seed)
                row.update(value=value, ci_low=iv.low, ci_high=iv.high, n=iv.n, ci_method="bootstrap")
            elif row["status"] == FINISHED:  # no per-item table: normal interval from the logged stderr
                se = c.metric(f"{m}_stderr")
                row.update(value=value, ci_low=value - 1.96 * se, ci_high=value + 1.96 * se,
                           n=int(c.metric("n_samples")) if np.isfinite(c.metric("n_samples")) else 0,
                           ci_method="stderr" if np.isfinite(se) else "")
            out.append(row)
    return pd.DataFrame(out, columns=["category", "model", "preset", "role", "dataset", "metric", "status", "value",
                                      "ci_low", "ci_high", "n", "ci_method", "run_id"])


def pair_scores(a: pd.Series, b: pd.Series) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The items both runs answered, aligned by id (sorted, so the result is deterministic)."""
    ids = sorted(set(a.index) & set(b.index))
    return a.loc[ids].to_numpy(), b.loc[ids].to_numpy(), ids


def paired(store: RunStore, a: Cell, b: Cell, metric: str, seed: int = stats.SEED) -> dict[str, Any]:
    """Cell a minus cell b on the items both answered: status, delta, its interval, the paired
    test (McNemar for right/wrong scores, else the paired bootstrap) and McNemar's counts."""
    out: dict[str, Any] = {"status": FINISHED, "delta": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                           "p_value": np.nan, "test": "", "n_paired": 0, "b": np.nan, "c": np.nan}
    if a.status != FINISHED or b.status != FINISHED:
        out["status"] = next(st for st in (FAILED, RUNNING, MISSING) if st in (a.status, b.status))
        return out
    sa, sb = store.scores(a, metric), store.scores(b, metric)
    if sa is None or sb is None:
        return out | {"status": MISSING, "test": "no per-item scores"}
    x, y, ids = pair_scores(sa, sb)
    res = stats.paired_test(x, y, seed=seed)
    out.update(delta=res.delta, ci_low=res.low, ci_high=res.high, p_value=res.p_value, test=res.test,
               n_paired=res.n, b=res.b if res.b is not None else np.nan, c=res.c if res.c is not None else np.nan)
    if not ids:
        out["status"] = MISSING
    return out


DELTA_COLUMNS = ["category", "model", "preset", "baseline", "baseline_preset", "dataset", "metric", "status",
                 "delta", "ci_low", "ci_high", "p_value", "test", "n_paired", "b", "c", "model_value",
                 "baseline_value", "run_id", "baseline_run_id"]


def delta_matrix(reg: Registry, store: RunStore, cells: dict, category: str, *, baselines: list[str] | None = None,
                 models: list[str] | None = None, datasets: list[str] | None = None, metric: str | None = None,
                 seed: int = stats.SEED) -> pd.DataFrame:
    """Specialist minus baseline per dataset, for each declared baseline, on paired items."""
    cat = reg.category(category)
    rows = rows_of(reg, category, cells, models)
    out = []
    for base in baselines or cat.baselines:
        base_rows = [r for r in rows_of(reg, category, cells, [base])]
        for model, preset, _ in rows:
            if model == base or (not models and model not in cat.models):
                continue
            for _, bpreset, _ in base_rows:
                for ds in datasets_of(reg, category, cells, datasets):
                    s, g = _cell(cells, model, ds, preset), _cell(cells, base, ds, bpreset)
                    m = metric or main_metric(reg, ds, s)
                    out.append({
                        "category": category, "model": model, "preset": preset, "baseline": base,
                        "baseline_preset": bpreset, "dataset": ds, "metric": m, "model_value": s.metric(m),
                        "baseline_value": g.metric(m), "run_id": s.run_id, "baseline_run_id": g.run_id,
                        **paired(store, s, g, m, seed)})
    return pd.DataFrame(out, columns=DELTA_COLUMNS)


MEMORY_METRICS = ("gpu_peak_mb", "gpu_used_mb", "peak_rss_mb")  # first present wins: GPU when there is one


def efficiency_table(reg: Registry, cells: dict, matrix: pd.DataFrame) -> pd.DataFrame:
    """One row per model x preset: accuracy (mean main metric over the datasets that every
    model with any finished cell finished, so the rows are comparable; the set is in
    ``accuracy_datasets``), median output tokens/s over its generating cells, peak memory,
    parameters, accuracy per billion parameters, and whether it is on each Pareto front."""
    out = []
    done_all = matrix[matrix.status == FINISHED]
    per_row = [set(g.dataset) for _, g in done_all.groupby(["model", "preset"], sort=False)]
    common = [d for d in dict.fromkeys(matrix.dataset) if per_row and all(d in r for r in per_row)]
    for (model, preset), grp in matrix.groupby(["model", "preset"], sort=False):
        done = grp[grp.status == FINISHED]
        acc = float(done[done.dataset.isin(common)].value.mean()) if len(done) and common else np.nan
        tps, mem, source, params_b = [], [], "", np.nan
        for ds in grp.dataset:
            c = cells.get((model, ds, preset))
            if c is None or c.status != FINISHED:
                continue
            if np.isfinite(c.metric("output_tokens_per_s")):
                tps.append(c.metric("output_tokens_per_s"))
            for name in MEMORY_METRICS:
                if np.isfinite(c.metric(name)):
                    if not source or MEMORY_METRICS.index(name) < MEMORY_METRICS.index(source):
                        mem, source = [], name
                    if name == source:
                        mem.append(c.metric(name))
                    break
            try:
                params_b = float(c.run.data.params.get("model.parameters_b", params_b))
            except (TypeError, ValueError):
                pass
        if not np.isfinite(params_b) and model in reg.models:
            params_b = reg.models[model].parameters_b or np.nan  # None: an API model of unpublished size
        out.append({"model": model, "preset": preset, "role": grp.role.iloc[0], "accuracy": acc,
                    "accuracy_datasets": ",".join(common), "datasets_finished": f"{len(done)}/{len(grp)}",
                    "output_tokens_per_s": float(np.median(tps)) if tps else np.nan,
                    "memory_mb": float(max(mem)) if mem else np.nan, "memory_metric": source,
                    "parameters_b": params_b, "accuracy_per_b": acc / params_b if params_b else np.nan})
    df = pd.DataFrame(out, columns=["model", "preset", "role", "accuracy", "accuracy_datasets", "datasets_finished",
                                    "output_tokens_per_s", "memory_mb", "memory_metric", "parameters_b",
                                    "accuracy_per_b"])
    df["pareto_throughput"] = stats.pareto_front(df.output_tokens_per_s, df.accuracy)
    df["pareto_memory"] = stats.pareto_front(df.memory_mb, df.accuracy, maximize_x=False)
    return df


QUANT_COLUMNS = ["category", "variant", "parent", "preset", "parent_preset", "dataset", "metric", "status",
                 "simulated", "variant_value", "parent_value", "delta", "ci_low", "ci_high", "p_value", "test",
                 "n_paired", "b", "c", "size_ratio", "memory_ratio", "memory_metric", "throughput_ratio", "run_id",
                 "parent_run_id"]


def _ratio(a: Cell, b: Cell, names: tuple[str, ...]) -> tuple[float, str]:
    """a's metric over b's for the first of names both cells logged (nan, '' when none)."""
    for name in names:
        x, y = a.metric(name), b.metric(name)
        if np.isfinite(x) and np.isfinite(y) and y:
            return x / y, name
    return np.nan, ""


def quantization_table(reg: Registry, store: RunStore, cells: dict, category: str, *,
                       models: list[str] | None = None, datasets: list[str] | None = None,
                       metric: str | None = None, seed: int = stats.SEED) -> pd.DataFrame:
    """Each quantized variant that has runs here beside its full-precision parent, per dataset
    and preset: paired accuracy delta with its test, weights-on-disk ratio, and memory and
    throughput ratios, which stay empty when either run is simulated (unpacked int4 weights
    on a machine without AWQ kernels: its speed and memory are not AWQ's)."""
    from specbench.quantize import quantized_pairs, size_ratio

    out = []
    for variant, parent in quantized_pairs(reg):
        if models and variant not in models:
            continue
        for preset in sorted({p for (m, _, p) in cells if m == variant}):
            for ds in datasets_of(reg, category, {k: c for k, c in cells.items() if k[0] == variant}, datasets):
                v = _cell(cells, variant, ds, preset)
                p = cells.get((parent, ds, preset)) or _best_any_preset(reg, cells, parent, ds)
                m = metric or main_metric(reg, ds, v)
                simulated = any(c.run is not None and c.run.data.tags.get("perf_representative") == "false"
                                for c in (v, p))
                mem, mem_name = _ratio(v, p, MEMORY_METRICS)
                tps, _ = _ratio(v, p, ("output_tokens_per_s",))
                out.append({
                    "category": category, "variant": variant, "parent": parent, "preset": preset,
                    "parent_preset": p.preset, "dataset": ds, "metric": m, "simulated": simulated,
                    "variant_value": v.metric(m), "parent_value": p.metric(m), "size_ratio": size_ratio(reg, variant),
                    "memory_ratio": np.nan if simulated else mem, "memory_metric": "" if simulated else mem_name,
                    "throughput_ratio": np.nan if simulated else tps, "run_id": v.run_id,
                    "parent_run_id": p.run_id, **paired(store, v, p, m, seed)})
    return pd.DataFrame(out, columns=QUANT_COLUMNS)


def framework_matrix(reg: Registry, cells: dict, metric: str | None = None) -> pd.DataFrame:
    """conf/framework.yaml: per task and role, the model's mean main metric over the task's
    datasets; missing unless every dataset has a finished run (any preset, the model's own
    registry preset first)."""
    fw = reg.framework
    out = []
    if fw is None:
        return pd.DataFrame(out)
    for key, task in fw.tasks.items():
        dsets = task.datasets or reg.category(task.category).datasets.primary
        for role in fw.roles:
            model = task.models.get(role)
            row = {"task": key, "task_name": task.display_name, "role": role, "model": model or "",
                   "datasets": ",".join(dsets), "status": MISSING, "value": np.nan, "n_finished": 0,
                   "n_datasets": len(dsets), "run_ids": ""}
            if model:
                picks = [_best_any_preset(reg, cells, model, d) for d in dsets]
                vals = [c.metric(metric or main_metric(reg, d, c)) for c, d in zip(picks, dsets, strict=True)]
                ok = [np.isfinite(v) for v in vals]
                row.update(n_finished=sum(ok), run_ids=",".join(c.run_id for c in picks if c.run_id))
                if all(ok) and dsets:
                    row.update(status=FINISHED, value=float(np.mean(vals)))
                elif any(c.status == FAILED for c in picks):
                    row["status"] = FAILED
            out.append(row)
    return pd.DataFrame(out)


def _best_any_preset(reg: Registry, cells: dict, model: str, dataset: str) -> Cell:
    cands = [c for (m, d, _), c in cells.items() if m == model and d == dataset]
    if not cands:
        return Cell(model, dataset, "", MISSING)
    own = reg.models[model].preset if model in reg.models else None
    return max(cands, key=lambda c: (c.status == FINISHED, c.preset == own, c.run.info.start_time or 0))


# -- a whole comparison -----------------------------------------------------------------

@dataclass
class CategoryViews:
    category: str
    matrix: pd.DataFrame
    deltas: pd.DataFrame
    efficiency: pd.DataFrame
    quantization: pd.DataFrame  # quantized variants vs their parents (empty when none ran)


@dataclass
class Comparison:
    selection: Selection
    categories: list[CategoryViews]
    framework: pd.DataFrame | None
    provenance: dict[str, Any]
    parent_runs: list[str]  # the category runs the cells came from (they get a link back)

    @property
    def scope(self) -> str:
        names = [v.category for v in self.categories] + (["framework"] if self.framework is not None else [])
        return "+".join(names) or "empty"


def build(reg: Registry, sel: Selection, *, framework: bool = False, store: RunStore | None = None,
          seed: int = stats.SEED) -> Comparison:
    """Every view for the selection: per category (the selected one, or each category the
    selected runs belong to) and, if asked, the framework matrix over the same runs."""
    store, cells = select(reg, sel, store)
    if sel.parent_run and not sel.category:
        parent = store.client.get_run(sel.parent_run)
        sel_cat = parent.data.tags.get("category")
    else:
        sel_cat = sel.category
    cats = [reg.category(sel_cat).key] if sel_cat else sorted(
        {c.run.data.tags.get("category") for c in cells.values() if c.run and c.run.data.tags.get("category")}
        & set(reg.categories))
    views = []
    for cat in cats:
        mine = {k: c for k, c in cells.items() if c.run is None or c.run.data.tags.get("category") == cat}
        matrix = metric_matrix(reg, store, mine, cat, seed=seed)
        views.append(CategoryViews(cat, matrix, delta_matrix(reg, store, mine, cat, seed=seed),
                                   efficiency_table(reg, mine, matrix),
                                   quantization_table(reg, store, mine, cat, seed=seed)))
    fw = framework_matrix(reg, cells) if framework else None
    used = [c for c in cells.values() if c.run is not None]
    parents = sorted({c.run.data.tags["mlflow.parentRunId"] for c in used if "mlflow.parentRunId" in c.run.data.tags})
    return Comparison(sel, views, fw, provenance(store, used), parents)


def provenance(store: RunStore, cells: list[Cell]) -> dict[str, Any]:
    """What the tables were computed from: every run with its commit, config hash and data
    digest, the package versions the runs recorded, and this process's own."""
    runs = []
    envs: dict[str, dict[str, str]] = {}
    for c in sorted(cells, key=lambda c: (c.model, c.dataset, c.preset)):
        t = c.run.data.tags
        env = store.json_artifact(c.run, "environment.json") if c.status == FINISHED else None
        env_key = json.dumps(env, sort_keys=True) if env else ""
        if env:
            envs.setdefault(env_key, env)
        runs.append({"run_id": c.run_id, "model": c.model, "dataset": c.dataset, "preset": c.preset,
                     "status": c.status, "category": t.get("category", ""), "engine": t.get("engine", ""),
                     "git_commit": t.get("git_commit", ""), "config_hash": t.get("config_hash", ""),
                     "dataset_digest": t.get("dataset_digest", ""), "main_metric": t.get("main_metric", ""),
                     "environment": list(envs).index(env_key) if env else None})
    return {"runs": runs, "run_environments": list(envs.values()),
            "generated_by": {"git_commit": tracking.git_commit(), "packages": tracking.package_versions(),
                             "tracking_uri": tracking.tracking_uri()}}


def write(comp: Comparison, out_dir: Path, *, scale: float = 100.0, decimals: int = 1) -> list[Path]:
    """CSV, Markdown, LaTeX, PNG heatmaps and scatter plots, and summary.html into out_dir."""
    from specbench import render

    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    sections: list[render.Section] = []
    for v in comp.categories:
        sections += render.category_sections(v.category, v.matrix, v.deltas, v.efficiency, out_dir, files,
                                             scale=scale, decimals=decimals, quant=v.quantization)
    if comp.framework is not None:
        sections.append(render.framework_section(comp.framework, out_dir, files, scale=scale, decimals=decimals))
    prov = out_dir / "provenance.json"
    prov.write_text(json.dumps(comp.provenance, indent=2, sort_keys=True, default=str) + "\n")
    files.append(prov)
    html = out_dir / "summary.html"
    html.write_text(render.html_summary(f"specbench comparison: {comp.scope}", comp.selection.describe(), sections,
                                        comp.provenance))
    files.append(html)
    return files


def log_run(comp: Comparison, out_dir: Path, experiment: str | None = None) -> str:
    """Log out_dir on a ``compare`` run and tag each parent category run with its id.

    Under ``mlflow run`` (MLFLOW_RUN_ID set) the project's own run is the compare run.
    """
    tags = {KIND_TAG: "compare", "compare.scope": comp.scope, "git_commit": tracking.git_commit()}
    if len(comp.categories) == 1:
        tags["category"] = comp.categories[0].category
    with start_output_run(f"compare:{comp.scope}", tags, experiment) as run:
        mlflow.log_params({f"selection.{k}": v for k, v in comp.selection.describe().items()}
                          | {"parent_runs": ",".join(comp.parent_runs)[:6000]})
        counts: dict[str, float] = {}
        for v in comp.categories:
            for status, n in v.matrix.status.value_counts().items():
                counts[f"cells_{status}"] = counts.get(f"cells_{status}", 0.0) + float(n)
        mlflow.log_metrics(counts)
        mlflow.log_artifacts(str(out_dir))
        run_id = run.info.run_id
    client = MlflowClient(tracking.tracking_uri())
    for pid in comp.parent_runs:
        client.set_tag(pid, COMPARE_LINK_TAG, run_id)
    return run_id


def start_output_run(name: str, tags: dict[str, str], experiment: str | None) -> mlflow.ActiveRun:
    """A new run for compare/report output, or the ``mlflow run`` project run when there is one
    (setting another experiment first would make MLflow refuse to resume it)."""
    if os.environ.get("MLFLOW_RUN_ID"):
        mlflow.set_tracking_uri(tracking.tracking_uri())
        return mlflow.start_run(run_id=os.environ["MLFLOW_RUN_ID"], tags=tags | {"mlflow.runName": name})
    tracking.setup(experiment)
    return mlflow.start_run(run_name=name, tags=tags)
