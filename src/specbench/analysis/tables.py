"""The long-form tables of a comparison: one row per cell, every number unrounded.

- :func:`metric_matrix`: models x datasets of the main metric with a bootstrap interval over
  the run's per-item scores (its ``samples.json``);
- :func:`delta_matrix`: specialist minus each declared baseline, paired by item id, with
  McNemar's exact test for right/wrong scores and the paired bootstrap otherwise, and the
  table's p-values adjusted for the false discovery rate (Benjamini-Hochberg, ``p_adjusted``);
- :func:`efficiency_table`: accuracy against output tokens/s and peak memory (Pareto fronts)
  and accuracy per billion parameters;
- :func:`quantization_table`: each quantized variant against its full-precision parent
  (paired delta and test, size, memory and throughput ratios);
- :func:`framework_matrix`: conf/framework.yaml's primary task x role matrix.

Cells compared with each other on different numbers of items (a smoke run beside a full
one) are flagged (``mixed_samples``).  Every rendering (render.py, figures.py) is made from
these, and the CSVs are these.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from specbench import tracking
from specbench.analysis import stats
from specbench.analysis.select import (
    FAILED,
    FINISHED,
    MISSING,
    RUNNING,
    Cell,
    Cells,
    best_any_preset,
    cell_at,
    datasets_of,
    main_metric,
    mixed_counts,
    rows_of,
)
from specbench.registry import Registry

MATRIX_COLUMNS = ["category", "model", "preset", "role", "dataset", "metric", "status", "value", "ci_low", "ci_high",
                  "n", "mixed_samples", "ci_method", "run_id"]
DELTA_COLUMNS = ["category", "model", "preset", "baseline", "baseline_preset", "dataset", "metric", "status",
                 "delta", "ci_low", "ci_high", "p_value", "p_adjusted", "test", "n_paired", "b", "c", "model_n",
                 "baseline_n", "mixed_samples", "model_value", "baseline_value", "run_id", "baseline_run_id"]
EFFICIENCY_COLUMNS = ["model", "preset", "role", "accuracy", "accuracy_datasets", "datasets_finished",
                      "output_tokens_per_s", "memory_mb", "memory_metric", "parameters_b", "accuracy_per_b"]
QUANT_COLUMNS = ["category", "variant", "parent", "preset", "parent_preset", "dataset", "metric", "status",
                 "simulated", "variant_value", "parent_value", "delta", "ci_low", "ci_high", "p_value", "p_adjusted",
                 "test", "n_paired", "b", "c", "variant_n", "parent_n", "mixed_samples", "size_ratio", "memory_ratio",
                 "memory_metric", "throughput_ratio", "run_id", "parent_run_id"]
MEMORY_METRICS = ("gpu_peak_mb", "gpu_used_mb", "peak_rss_mb")  # first present wins: GPU when there is one


def corpus_reduce(metric: str, columns: Any) -> tuple[str, stats.Reduce] | None:
    """For a corpus metric (F1 over all items): the per-sample column of the items' statistics and the
    function recomputing the metric from their sums (the scorer's own ``Corpus.reduce``), or None."""
    from specbench.scoring import COUNTS_PREFIX, load_scorers

    for info in load_scorers().values():
        if info.corpus is not None and metric in info.corpus.metrics and f"{COUNTS_PREFIX}{info.name}" in columns:
            return f"{COUNTS_PREFIX}{info.name}", info.corpus.reduce
    return None


def scores(reader: tracking.ArtifactReader, cell: Cell, metric: str) -> pd.Series | None:
    """Per-item scores of a finished cell, indexed by item id (the pairing key); for a corpus
    metric, each item's statistics (arrays: see :func:`corpus_reduce`)."""
    if cell.run is None or cell.status != FINISHED:
        return None
    rows = reader.table(cell.run_id)
    col = f"score.{metric}"
    if rows and col not in rows[0] and (corpus := corpus_reduce(metric, rows[0])):
        s = pd.Series({str(r["id"]): np.asarray(r[corpus[0]], dtype=float) for r in rows}, dtype=object)
        s = s[~s.index.duplicated(keep="first")]
        s.attrs["reduce"] = corpus[1]  # how to recompute the metric over any subset of the items
        return s
    if not rows or col not in rows[0]:
        return None
    s = pd.Series({str(r["id"]): r[col] for r in rows}, dtype=float)
    return s[~s.index.duplicated(keep="first")].dropna()


def metric_matrix(reg: Registry, reader: tracking.ArtifactReader, cells: Cells, category: str, *,
                  models: list[str] | None = None, datasets: list[str] | None = None, metric: str | None = None,
                  seed: int = stats.SEED) -> pd.DataFrame:
    """One row per model x preset x dataset: value, bootstrap interval, n, status, run id."""
    out = []
    for model, preset, role in rows_of(reg, category, cells, models):
        for ds in datasets_of(reg, category, cells, datasets):
            c = cell_at(cells, model, ds, preset)
            m = metric or main_metric(reg, ds, c)
            row = {"category": category, "model": model, "preset": preset, "role": role, "dataset": ds, "metric": m,
                   "status": c.status, "value": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n": 0,
                   "ci_method": "", "run_id": c.run_id}
            value = c.metric(m)
            if c.status == FINISHED and not np.isfinite(value):
                row["status"] = MISSING  # the run does not have this metric
            s = scores(reader, c, m)
            if row["status"] == FINISHED and s is not None and len(s):
                reduce = s.attrs.get("reduce")
                iv = (stats.bootstrap_corpus(np.stack(s.to_numpy()), reduce, m, seed=seed) if reduce
                      else stats.bootstrap_mean(s.to_numpy(), seed=seed))
                row.update(value=value, ci_low=iv.low, ci_high=iv.high, n=iv.n, ci_method="bootstrap")
            elif row["status"] == FINISHED:  # no per-item table: normal interval from the logged stderr
                se = c.metric(f"{m}_stderr")
                row.update(value=value, ci_low=value - 1.96 * se, ci_high=value + 1.96 * se,
                           n=int(c.metric("n_samples")) if np.isfinite(c.metric("n_samples")) else 0,
                           ci_method="stderr" if np.isfinite(se) else "")
            out.append(row)
    df = pd.DataFrame(out, columns=MATRIX_COLUMNS)
    # Cells of one dataset column are compared with each other: flag them all when their runs
    # were evaluated on different numbers of items (a smoke run beside a full one).
    done = df[df.status == FINISHED]
    mixed = {ds for ds, g in done.groupby("dataset", sort=False) if mixed_counts([int(n) or None for n in g.n])}
    df["mixed_samples"] = (df.status == FINISHED) & df.dataset.isin(mixed)
    return df


def pair_scores(a: pd.Series, b: pd.Series) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The items both runs answered, aligned by id (sorted, so the result is deterministic)."""
    ids = sorted(set(a.index) & set(b.index))
    return a.loc[ids].to_numpy(), b.loc[ids].to_numpy(), ids


def paired(reader: tracking.ArtifactReader, a: Cell, b: Cell, metric: str, seed: int = stats.SEED) -> dict[str, Any]:
    """Cell a minus cell b on the items both answered: status, delta, its interval, the paired
    test (McNemar for right/wrong scores, else the paired bootstrap) and McNemar's counts."""
    out: dict[str, Any] = {"status": FINISHED, "delta": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                           "p_value": np.nan, "test": "", "n_paired": 0, "b": np.nan, "c": np.nan,
                           "mixed_samples": False}
    if a.status != FINISHED or b.status != FINISHED:
        out["status"] = next(st for st in (FAILED, RUNNING, MISSING) if st in (a.status, b.status))
        return out
    sa, sb = scores(reader, a, metric), scores(reader, b, metric)
    if sa is None or sb is None:
        return out | {"status": MISSING, "test": "no per-item scores"}
    x, y, ids = pair_scores(sa, sb)
    out["mixed_samples"] = mixed_counts([a.n_samples, b.n_samples])
    reduce = sa.attrs.get("reduce") if sb.attrs.get("reduce") else None
    res = (stats.paired_corpus(np.stack(x), np.stack(y), reduce, metric, seed=seed) if reduce and ids
           else stats.paired_test(x, y, seed=seed))
    out.update(delta=res.delta, ci_low=res.low, ci_high=res.high, p_value=res.p_value, test=res.test,
               n_paired=res.n, b=res.b if res.b is not None else np.nan, c=res.c if res.c is not None else np.nan)
    if not ids:
        out["status"] = MISSING
    return out


def delta_matrix(reg: Registry, reader: tracking.ArtifactReader, cells: Cells, category: str, *,
                 baselines: list[str] | None = None, models: list[str] | None = None,
                 datasets: list[str] | None = None, metric: str | None = None, seed: int = stats.SEED) -> pd.DataFrame:
    """Specialist minus baseline per dataset, for each declared baseline, on paired items."""
    cat = reg.category(category)
    rows = rows_of(reg, category, cells, models)
    out = []
    for base in baselines or cat.baselines:
        base_rows = rows_of(reg, category, cells, [base])
        for model, preset, _ in rows:
            if model == base or (not models and model not in cat.models):
                continue
            for _, bpreset, _ in base_rows:
                for ds in datasets_of(reg, category, cells, datasets):
                    s, g = cell_at(cells, model, ds, preset), cell_at(cells, base, ds, bpreset)
                    m = metric or main_metric(reg, ds, s)
                    out.append({
                        "category": category, "model": model, "preset": preset, "baseline": base,
                        "baseline_preset": bpreset, "dataset": ds, "metric": m, "model_value": s.metric(m),
                        "baseline_value": g.metric(m), "run_id": s.run_id, "baseline_run_id": g.run_id,
                        "model_n": _count(s), "baseline_n": _count(g), **paired(reader, s, g, m, seed)})
    return with_fdr(pd.DataFrame(out, columns=DELTA_COLUMNS))


def _count(c: Cell) -> float:
    """Items a finished cell was evaluated on (NaN: not finished, or its run does not say)."""
    return float(c.n_samples) if c.status == FINISHED and c.n_samples is not None else np.nan


def with_fdr(df: pd.DataFrame) -> pd.DataFrame:
    """``p_adjusted``: Benjamini-Hochberg over every p-value of the table (one family: all its
    specialists, baselines and datasets), which the significance marks use."""
    df["p_adjusted"] = stats.adjust_pvalues(df.p_value.to_numpy(dtype=float)) if len(df) else []
    return df


def _memory(cells: list[Cell]) -> tuple[list[float], str]:
    """Peak memory of the cells under the best metric any of them logged (GPU before RSS)."""
    for name in MEMORY_METRICS:
        values = [c.metric(name) for c in cells if np.isfinite(c.metric(name))]
        if values:
            return values, name
    return [], ""


def efficiency_table(reg: Registry, cells: Cells, matrix: pd.DataFrame) -> pd.DataFrame:
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
        finished = [c for c in (cells.get((model, ds, preset)) for ds in grp.dataset)
                    if c is not None and c.status == FINISHED]
        tps = [c.metric("output_tokens_per_s") for c in finished if np.isfinite(c.metric("output_tokens_per_s"))]
        mem, source = _memory(finished)
        params_b = np.nan
        for c in finished:  # the size the runs logged (the resolved checkpoint's), else the registry's
            try:
                params_b = float(c.run.params.get("model.parameters_b", params_b))
            except (TypeError, ValueError):
                pass
        if not np.isfinite(params_b) and model in reg.models:
            params_b = reg.models[model].parameters_b or np.nan  # None: an API model of unpublished size
        out.append({"model": model, "preset": preset, "role": grp.role.iloc[0], "accuracy": acc,
                    "accuracy_datasets": ",".join(common), "datasets_finished": f"{len(done)}/{len(grp)}",
                    "output_tokens_per_s": float(np.median(tps)) if tps else np.nan,
                    "memory_mb": float(max(mem)) if mem else np.nan, "memory_metric": source,
                    "parameters_b": params_b, "accuracy_per_b": acc / params_b if params_b else np.nan})
    df = pd.DataFrame(out, columns=EFFICIENCY_COLUMNS)
    df["pareto_throughput"] = stats.pareto_front(df.output_tokens_per_s, df.accuracy)
    df["pareto_memory"] = stats.pareto_front(df.memory_mb, df.accuracy, maximize_x=False)
    return df


def _ratio(a: Cell, b: Cell, names: tuple[str, ...]) -> tuple[float, str]:
    """a's metric over b's for the first of names both cells logged (nan, '' when none)."""
    for name in names:
        x, y = a.metric(name), b.metric(name)
        if np.isfinite(x) and np.isfinite(y) and y:
            return x / y, name
    return np.nan, ""


def quantization_table(reg: Registry, reader: tracking.ArtifactReader, cells: Cells, category: str, *,
                       models: list[str] | None = None, datasets: list[str] | None = None,
                       metric: str | None = None, seed: int = stats.SEED) -> pd.DataFrame:
    """Each quantized variant that has runs here beside its full-precision parent, per dataset
    and preset: paired accuracy delta with its test, weights-on-disk ratio, and memory and
    throughput ratios, which stay empty when either run is simulated (unpacked int4 weights
    on a machine without AWQ kernels: its speed and memory are not AWQ's)."""
    from specbench.quantize import quantized_pairs, size_ratio  # the registry's variants; imported when asked

    out = []
    for variant, parent in quantized_pairs(reg):
        if models and variant not in models:
            continue
        for preset in sorted({p for (m, _, p) in cells if m == variant}):
            for ds in datasets_of(reg, category, {k: c for k, c in cells.items() if k[0] == variant}, datasets):
                v = cell_at(cells, variant, ds, preset)
                p = cells.get((parent, ds, preset)) or best_any_preset(reg, cells, parent, ds)
                m = metric or main_metric(reg, ds, v)
                simulated = any(c.tag("perf_representative") == "false" for c in (v, p))
                mem, mem_name = _ratio(v, p, MEMORY_METRICS)
                tps, _ = _ratio(v, p, ("output_tokens_per_s",))
                out.append({
                    "category": category, "variant": variant, "parent": parent, "preset": preset,
                    "parent_preset": p.preset, "dataset": ds, "metric": m, "simulated": simulated,
                    "variant_value": v.metric(m), "parent_value": p.metric(m), "size_ratio": size_ratio(reg, variant),
                    "memory_ratio": np.nan if simulated else mem, "memory_metric": "" if simulated else mem_name,
                    "throughput_ratio": np.nan if simulated else tps, "run_id": v.run_id,
                    "parent_run_id": p.run_id, "variant_n": _count(v), "parent_n": _count(p),
                    **paired(reader, v, p, m, seed)})
    return with_fdr(pd.DataFrame(out, columns=QUANT_COLUMNS))


def framework_matrix(reg: Registry, cells: Cells, metric: str | None = None) -> pd.DataFrame:
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
                picks = [best_any_preset(reg, cells, model, d) for d in dsets]
                vals = [c.metric(metric or main_metric(reg, d, c)) for c, d in zip(picks, dsets, strict=True)]
                ok = [np.isfinite(v) for v in vals]
                row.update(n_finished=sum(ok), run_ids=",".join(c.run_id for c in picks if c.run_id))
                if all(ok) and dsets:
                    row.update(status=FINISHED, value=float(np.mean(vals)))
                elif any(c.status == FAILED for c in picks):
                    row["status"] = FAILED
            out.append(row)
    return pd.DataFrame(out)


__all__ = ["DELTA_COLUMNS", "EFFICIENCY_COLUMNS", "MATRIX_COLUMNS", "MEMORY_METRICS", "QUANT_COLUMNS",
           "delta_matrix", "efficiency_table", "framework_matrix", "metric_matrix", "pair_scores", "paired",
           "quantization_table", "scores", "with_fdr"]
