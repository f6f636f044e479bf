"""Paper tables, declared in experiments/<name>.yaml and regenerated from MLflow runs.

A report file names its tables (which categories, models, datasets, metric, rounding,
captions; the schema is ``registry.reports``); ``specbench report`` rebuilds each from the
runs the comparison picks (the finished run on the most items per cell, ``select.pick_cells``)
with the comparison tables, writes CSV (every number), Markdown and
LaTeX (booktabs) per table plus ``provenance.json`` beside them (run ids, git commits,
config hashes, dataset digests, package versions).  Nothing in the output depends on the
time or the order runs come back in, so the same runs give byte-identical files; a cell
whose run is gone prints as missing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from specbench import tracking
from specbench.analysis import render, tables
from specbench.analysis.compare import provenance
from specbench.analysis.select import Cell, Cells, Selection, select_cells
from specbench.registry import Registry, RegistryError, load_object, suggest, to_plain
from specbench.registry.loader import read_yaml
from specbench.registry.reports import ReportConfig, TableKind, TableSpec


def find(name_or_path: str, root: Path | None = None) -> Path:
    """A report file from a path or a name in experiments/."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise RegistryError(f"no report file {p}")
        return p
    base = root or Path.cwd() / "experiments"
    cand = base / f"{name_or_path}.yaml"
    if cand.is_file():
        return cand
    names = [f.stem for f in base.glob("*.yaml")] if base.is_dir() else []
    raise RegistryError(f"no report '{name_or_path}' in {base}; {suggest(name_or_path, names)}")


def load(path: Path, reg: Registry) -> ReportConfig:
    """Parse and check a report file: schema (OmegaConf, as conf/ files are), then every name
    it mentions against the registry."""
    data = read_yaml(path)
    if isinstance(data, dict) and isinstance(data.get("tables"), list):  # each table on its own: errors name it
        data["tables"] = [to_plain(load_object(t, TableSpec, path, prefix=f"tables[{i}]"))
                          for i, t in enumerate(data["tables"])]
    cfg = load_object(data, ReportConfig, path)
    if cfg.name != path.stem:
        raise RegistryError(f"name '{cfg.name}' must match the file name '{path.stem}'", path, "name")
    for i, t in enumerate(cfg.tables):
        where = f"tables[{i}]"
        if t.kind == TableKind.framework and reg.framework is None:
            raise RegistryError("a framework table needs conf/framework.yaml", path, where)
        if t.category:
            try:
                reg.category(t.category)
            except RegistryError as exc:
                raise RegistryError(str(exc), path, f"{where}.category") from None
        for j, m in enumerate(t.models + ([t.baseline] if t.baseline else [])):
            if m not in reg.models:
                key = f"{where}.models[{j}]" if j < len(t.models) else f"{where}.baseline"
                raise RegistryError(f"unknown model '{m}'; {suggest(m, reg.models)}", path, key)
        for j, d in enumerate(t.datasets):
            try:
                t.datasets[j] = reg.dataset(d).key  # an alias (a seed's name) reads as the dataset's key
            except RegistryError:
                raise RegistryError(f"unknown dataset '{d}'; {suggest(d, reg.datasets)}", path,
                                    f"{where}.datasets[{j}]") from None
        if t.kind == TableKind.delta and not (t.baseline or reg.category(t.category).baselines):
            raise RegistryError(f"category {t.category} declares no baseline; name one", path, f"{where}.baseline")
    return cfg


@dataclass
class TableOut:
    spec: TableSpec
    display: pd.DataFrame  # what is printed
    long: pd.DataFrame  # every number, unrounded (the CSV)
    note: str = ""


class _Inputs:
    """The cells of each distinct selection and the metric matrices of each distinct scope,
    computed once per report: a matrix and an efficiency table over the same runs share one
    bootstrap."""

    def __init__(self, reg: Registry, cfg: ReportConfig, reader: tracking.ArtifactReader) -> None:
        self.reg, self.cfg, self.reader = reg, cfg, reader
        self._cells: dict[str, Cells] = {}
        self._matrices: dict[str, pd.DataFrame] = {}

    def cells(self, t: TableSpec) -> Cells:
        sel = Selection(experiment=self.cfg.experiment, category=None if t.kind == TableKind.framework else
                        self.reg.category(t.category).key, parent_run=t.parent_run, tags=dict(t.tags))
        key = json.dumps(sel.describe(), sort_keys=True)
        if key not in self._cells:
            self._cells[key] = _select_declared(sel)
        return self._cells[key]

    def matrix(self, t: TableSpec, **kw: Any) -> pd.DataFrame:
        key = json.dumps([t.category, t.parent_run, t.tags, kw], sort_keys=True)
        if key not in self._matrices:
            self._matrices[key] = tables.metric_matrix(self.reg, self.reader, self.cells(t), t.category,
                                                       seed=self.cfg.seed, **kw)
        return self._matrices[key]


def _select_declared(sel: Selection) -> Cells:
    """The cells of the report's experiment; when that experiment does not exist or holds none
    of the table's runs, the same selection over every experiment: a user who ran the category
    without ``--experiment-name`` has them in MLflow's Default experiment, found by their tags."""
    if sel.experiment and not sel.parent_run:
        try:
            cells = select_cells(sel)
        except tracking.TrackingError:
            cells = {}
        if cells:
            return cells
        sel = replace(sel, experiment=None)
    return select_cells(sel)


def build(reg: Registry, cfg: ReportConfig, reader: tracking.ArtifactReader | None = None,
          ) -> tuple[list[TableOut], dict]:
    """Every table of the report, and the provenance of the runs they use."""
    reader = reader or tracking.ArtifactReader()
    inputs = _Inputs(reg, cfg, reader)
    used: dict[str, Cell] = {}
    outs = []
    for t in cfg.tables:
        cells = inputs.cells(t)
        kw: dict[str, Any] = {"models": t.models or None, "datasets": t.datasets or None, "metric": t.metric}
        note = ""
        if t.kind == TableKind.framework:
            long = tables.framework_matrix(reg, cells, metric=t.metric)
            display = render.framework_display(long, scale=t.scale, decimals=t.decimals)
            ids = [r for v in long.run_ids for r in v.split(",") if r]
        elif t.kind == TableKind.quantization:
            long = tables.quantization_table(reg, reader, cells, t.category, seed=cfg.seed, **kw)
            display = render.quantization_display(long, scale=t.scale, decimals=t.decimals)
            ids = list(long.run_id) + list(long.parent_run_id)
            note = render.join_notes(render.SIG_NOTE, render.samples_note(long))
        elif t.kind == TableKind.delta:
            long = tables.delta_matrix(reg, reader, cells, t.category, baselines=[t.baseline] if t.baseline else None,
                                       seed=cfg.seed, **kw)
            display = pd.concat([render.delta_display(g, scale=t.scale, decimals=t.decimals, ci=t.ci).assign(
                baseline=b) for b, g in long.groupby("baseline", sort=False)], ignore_index=True)
            display = display[["model", "baseline", *[c for c in display.columns if c not in ("model", "baseline")]]]
            if "samples" in display:  # only the baselines compared on other sample counts have it
                display["samples"] = display["samples"].fillna("")
            ids = list(long.run_id) + list(long.baseline_run_id)
            note = render.join_notes(render.SIG_NOTE, render.samples_note(long))
        else:
            long = inputs.matrix(t, **kw)
            ids = list(long.run_id)
            if t.kind == TableKind.efficiency:
                long = tables.efficiency_table(reg, cells, long)
                display = render.efficiency_display(long, scale=t.scale, decimals=t.decimals)
            else:
                display = render.matrix_display(long, scale=t.scale, decimals=t.decimals, ci=t.ci)
                note = render.samples_note(long)
        for c in cells.values():
            if c.run_id in ids:
                used[c.run_id] = c
        outs.append(TableOut(t, display, long, note))
    return outs, provenance(reader, list(used.values()))


def write(cfg: ReportConfig, outs: list[TableOut], prov: dict, out_dir: Path) -> list[Path]:
    """<id>.csv/.md/.tex per table, report.md with all of them, provenance.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    md = [f"# {cfg.title}", ""] + ([cfg.description.strip(), ""] if cfg.description else [])
    for o in outs:
        label = o.spec.label or f"tab:{o.spec.id}"
        files += render.write_table(o.display, o.long, out_dir / o.spec.id, caption=o.spec.caption, label=label,
                                    note=o.note)
        md += [render.to_markdown(o.display, o.spec.caption or o.spec.id, o.note)]
    (out_dir / "report.md").write_text("\n".join(md))
    prov_path = out_dir / "provenance.json"
    prov_path.write_text(json.dumps({"report": cfg.name, **prov}, indent=2, sort_keys=True, default=str) + "\n")
    return files + [out_dir / "report.md", prov_path]


def run(reg: Registry, name_or_path: str, out_dir: Path | None = None, log: bool = True) -> tuple[Path, str | None]:
    """Load, build, write and (optionally) log a report; the CLI's and MLproject's `report`.

    The report run is a ``report`` run (under ``mlflow run``, the project's own run) in the
    report's experiment, tagged ``specbench.report = <name>``."""
    path = find(name_or_path)
    cfg = load(path, reg)
    out = out_dir or Path("reports") / cfg.name
    outs, prov = build(reg, cfg)
    write(cfg, outs, prov, out)
    if not log:
        return out, None
    with tracking.open_run("report", name=f"report:{cfg.name}", tags={"report": cfg.name},
                           experiment=cfg.experiment) as r:
        r.log_artifacts(str(out), artifact_path=f"report/{cfg.name}")
        r.log_artifact(str(path), artifact_path="report")
    return out, r.run_id


__all__ = ["TableOut", "build", "find", "load", "run", "write"]
