"""A whole comparison: every table of a selection, written to files and logged as a run.

:func:`build` selects the cell runs (select.py), keeps per model, dataset and preset the
finished run on the most items (the newest of those), and computes per category the matrix, deltas, efficiency and
quantization tables (tables.py) and, if asked, the framework matrix.  :func:`write` renders
them (CSV, Markdown, LaTeX, PNG, summary.html, provenance.json); :func:`log_run` records
the folder on a ``compare`` run and links it from the category runs the cells came from
(tag ``specbench.compare_run``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from specbench import tracking
from specbench.analysis import stats, summary
from specbench.analysis.select import FINISHED, Cell, Selection, select_cells, selection_category
from specbench.analysis.tables import (
    delta_matrix,
    efficiency_table,
    framework_matrix,
    metric_matrix,
    quantization_table,
)
from specbench.registry import Registry

COMPARE_LINK = "compare_run"  # the tag (specbench.compare_run) a category run gets: its latest comparison
COMPARE_LINK_TAG = tracking.tag(COMPARE_LINK)


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


def build(reg: Registry, sel: Selection, *, framework: bool = False, reader: tracking.ArtifactReader | None = None,
          seed: int = stats.SEED) -> Comparison:
    """Every view for the selection: per category (the selected one, or each category the
    selected runs belong to) and, if asked, the framework matrix over the same runs.  A
    selection that names nothing raises tracking.TrackingError."""
    reader = reader or tracking.ArtifactReader()
    cells = select_cells(sel)
    sel_cat = selection_category(sel)
    cats = [reg.category(sel_cat).key] if sel_cat else sorted(
        {c.tag("category") for c in cells.values() if c.tag("category")} & set(reg.categories))
    views = []
    for cat in cats:
        mine = {k: c for k, c in cells.items() if c.run is None or c.tag("category") == cat}
        matrix = metric_matrix(reg, reader, mine, cat, seed=seed)
        views.append(CategoryViews(cat, matrix, delta_matrix(reg, reader, mine, cat, seed=seed),
                                   efficiency_table(reg, mine, matrix),
                                   quantization_table(reg, reader, mine, cat, seed=seed)))
    fw = framework_matrix(reg, cells) if framework else None
    used = [c for c in cells.values() if c.run is not None]
    parents = sorted({c.run.parent_id for c in used if c.run.parent_id})
    return Comparison(sel, views, fw, provenance(reader, used), parents)


def provenance(reader: tracking.ArtifactReader, cells: list[Cell]) -> dict[str, Any]:
    """What the tables were computed from: every run with its commit, config hash and data
    digest, the package versions the runs recorded, and this process's own."""
    runs = []
    envs: dict[str, dict[str, str]] = {}
    for c in sorted(cells, key=lambda c: (c.model, c.dataset, c.preset)):
        env = reader.json_artifact(c.run_id, "environment.json") if c.status == FINISHED else None
        env_key = json.dumps(env, sort_keys=True) if env else ""
        if env:
            envs.setdefault(env_key, env)
        runs.append({"run_id": c.run_id, "model": c.model, "dataset": c.dataset, "preset": c.preset,
                     "status": c.status, "category": c.tag("category"), "engine": c.tag("engine"),
                     "git_commit": c.run.git_commit if c.run else "", "config_hash": c.tag("config_hash"),
                     "dataset_digest": c.tag("dataset_digest"), "main_metric": c.tag("main_metric"),
                     "n_samples": c.n_samples,
                     "environment": list(envs).index(env_key) if env else None})
    return {"runs": runs, "run_environments": list(envs.values()),
            "generated_by": {"git_commit": tracking.git_commit(), "packages": tracking.package_versions(),
                             "tracking_uri": tracking.tracking_uri()}}


def sample_warnings(comp: Comparison) -> list[str]:
    """One line per table that compares cells evaluated on different numbers of items (the
    tables mark them; the CLI prints these lines)."""
    out = []
    for v in comp.categories:
        done = v.matrix[v.matrix.status == FINISHED]
        for ds, g in done[done.mixed_samples].groupby("dataset", sort=False):
            counts = ", ".join(f"{m} {int(n)}" for m, n in zip(g.model, g.n, strict=True))
            out.append(f"{v.category}: {ds} compares cells on different numbers of items ({counts})")
        for name, df, a, b in (("delta", v.deltas, "model", "baseline"), ("quantization", v.quantization,
                                                                          "variant", "parent")):
            for _, r in df[df.mixed_samples.astype(bool)].iterrows():
                out.append(f"{v.category} {name}: {r[a]} ({_n(r[a + '_n'])}) vs {r[b]} ({_n(r[b + '_n'])}) "
                           f"on {r.dataset}: paired on {int(r.n_paired)} items")
    return out


def _n(v: float) -> str:
    return "?" if pd.isna(v) else f"{int(v)} items"


def write(comp: Comparison, out_dir: Path, *, scale: float = 100.0, decimals: int = 1) -> list[Path]:
    """CSV, Markdown, LaTeX, PNG heatmaps and scatter plots, and summary.html into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    sections: list[summary.Section] = []
    for v in comp.categories:
        sections += summary.category_sections(v.category, v.matrix, v.deltas, v.efficiency, out_dir, files,
                                              scale=scale, decimals=decimals, quant=v.quantization)
    if comp.framework is not None:
        sections.append(summary.framework_section(comp.framework, out_dir, files, scale=scale, decimals=decimals))
    prov = out_dir / "provenance.json"
    prov.write_text(json.dumps(comp.provenance, indent=2, sort_keys=True, default=str) + "\n")
    files.append(prov)
    html = out_dir / "summary.html"
    html.write_text(summary.html_summary(f"specbench comparison: {comp.scope}", comp.selection.describe(), sections,
                                         comp.provenance))
    files.append(html)
    return files


def log_run(comp: Comparison, out_dir: Path, experiment: str | None = None) -> str:
    """Log out_dir on a ``compare`` run and tag each parent category run with its id.

    Under ``mlflow run`` the project's own run is the compare run (open_run adopts it).
    """
    tags = {"compare.scope": comp.scope}
    if len(comp.categories) == 1:
        tags["category"] = comp.categories[0].category
    params = ({f"selection.{k}": v for k, v in comp.selection.describe().items()}
              | {"parent_runs": ",".join(comp.parent_runs)[:6000]})
    with tracking.open_run("compare", name=f"compare:{comp.scope}", tags=tags, params=params,
                           experiment=experiment) as run:
        counts: dict[str, float] = {}
        for v in comp.categories:
            for status, n in v.matrix.status.value_counts().items():
                counts[f"cells_{status}"] = counts.get(f"cells_{status}", 0.0) + float(n)
            counts["cells_mixed_samples"] = counts.get("cells_mixed_samples", 0.0) + float(v.matrix.mixed_samples.sum())
        run.log_metrics(counts)
        run.log_artifacts(str(out_dir))
        run_id = run.run_id
    for pid in comp.parent_runs:
        tracking.set_tags_on(pid, {COMPARE_LINK: run_id})
    return run_id


__all__ = ["COMPARE_LINK", "COMPARE_LINK_TAG", "CategoryViews", "Comparison", "build", "log_run", "provenance",
           "sample_warnings", "write"]
