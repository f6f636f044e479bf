"""Paper tables, declared in experiments/<name>.yaml and regenerated from MLflow runs.

A report file names its tables (which categories, models, datasets, metric, rounding,
captions); ``specbench report`` rebuilds each from the latest finished runs with
compare.py, writes CSV (every number), Markdown and LaTeX (booktabs) per table plus
``provenance.json`` beside them (run ids, git commits, config hashes, dataset digests,
package versions).  Nothing in the output depends on the time or the order runs come
back in, so the same runs give byte-identical files; a cell whose run is gone prints as
missing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import OmegaConf

from specbench import compare, render, stats
from specbench.registry.schema import ConfigError, to_plain
from specbench.registry import Registry, RegistryError, load_object, suggest


class TableKind(str, Enum):
    matrix = "matrix"  # models x datasets of the metric, with intervals
    delta = "delta"  # specialists minus a baseline, with paired tests
    efficiency = "efficiency"  # accuracy vs throughput, memory, size
    framework = "framework"  # conf/framework.yaml's task x role matrix
    quantization = "quantization"  # quantized variants (models: which) vs their parents: paired delta, cost ratios


@dataclass
class TableSpec:
    """One table of a paper."""

    id: str  # file stem of its outputs
    kind: TableKind
    caption: str = ""
    label: str | None = None  # LaTeX label; default tab:<id>
    category: str | None = None  # required except for framework tables
    models: list[str] = field(default_factory=list)  # default: the category's models and baselines
    datasets: list[str] = field(default_factory=list)  # default: the category's primary datasets (+ ones with runs)
    baseline: str | None = None  # delta: one baseline (default: every declared one)
    metric: str | None = None  # default: each dataset's main metric
    scale: float = 100.0  # 100: percentages
    decimals: int = 1
    ci: bool = True  # print the 95% intervals
    parent_run: str | None = None  # read only this category invocation's runs
    tags: dict[str, str] = field(default_factory=dict)  # and only runs with these tags

    def __post_init__(self) -> None:
        if self.kind != TableKind.framework and not self.category:
            raise ConfigError("category", f"a {self.kind.value} table needs a category")
        if not 0 <= self.decimals <= 6:
            raise ConfigError("decimals", f"must be between 0 and 6, got {self.decimals}")
        if self.scale <= 0:
            raise ConfigError("scale", f"must be > 0, got {self.scale}")


@dataclass
class ReportConfig:
    """experiments/<name>.yaml: a paper's tables and where their runs live."""

    name: str  # must equal the file name
    title: str
    tables: list[TableSpec]
    experiment: str | None = None  # MLflow experiment (default: specbench)
    seed: int = stats.SEED  # bootstrap seed: fixed, so intervals regenerate exactly
    description: str = ""

    def __post_init__(self) -> None:
        if not self.tables:
            raise ConfigError("tables", "a report needs at least one table")
        ids = [t.id for t in self.tables]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ConfigError("tables", f"duplicate table ids: {', '.join(dup)}")


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
    data = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
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
            if d not in reg.datasets:
                raise RegistryError(f"unknown dataset '{d}'; {suggest(d, reg.datasets)}", path,
                                    f"{where}.datasets[{j}]")
        if t.kind == TableKind.delta and not (t.baseline or reg.category(t.category).baselines):
            raise RegistryError(f"category {t.category} declares no baseline; name one", path, f"{where}.baseline")
    return cfg


@dataclass
class TableOut:
    spec: TableSpec
    display: pd.DataFrame  # what is printed
    long: pd.DataFrame  # every number, unrounded (the CSV)
    note: str = ""


def build(reg: Registry, cfg: ReportConfig, store: compare.RunStore | None = None) -> tuple[list[TableOut], dict]:
    """Every table of the report, and the provenance of the runs they use."""
    store = store or compare.RunStore()
    selections: dict[str, dict] = {}
    used: dict[str, compare.Cell] = {}
    outs = []
    for t in cfg.tables:
        sel = compare.Selection(experiment=cfg.experiment, category=None if t.kind == TableKind.framework else
                                reg.category(t.category).key, parent_run=t.parent_run, tags=dict(t.tags))
        key = json.dumps(sel.describe(), sort_keys=True)
        if key not in selections:
            selections[key] = compare.latest_cells(store.search(sel))
        cells = selections[key]
        kw: dict[str, Any] = {"models": t.models or None, "datasets": t.datasets or None, "metric": t.metric}
        note = ""
        if t.kind == TableKind.framework:
            long = compare.framework_matrix(reg, cells, metric=t.metric)
            display = render.framework_display(long, scale=t.scale, decimals=t.decimals)
            ids = [r for v in long.run_ids for r in v.split(",") if r]
        elif t.kind == TableKind.quantization:
            long = compare.quantization_table(reg, store, cells, t.category, seed=cfg.seed, **kw)
            display = render.quantization_display(long, scale=t.scale, decimals=t.decimals)
            ids = list(long.run_id) + list(long.parent_run_id)
            note = render.SIG_NOTE
        elif t.kind == TableKind.delta:
            long = compare.delta_matrix(reg, store, cells, t.category, baselines=[t.baseline] if t.baseline else None,
                                        seed=cfg.seed, **kw)
            display = pd.concat([render.delta_display(g, scale=t.scale, decimals=t.decimals, ci=t.ci).assign(
                baseline=b) for b, g in long.groupby("baseline", sort=False)], ignore_index=True)
            display = display[["model", "baseline", *[c for c in display.columns if c not in ("model", "baseline")]]]
            ids = list(long.run_id) + list(long.baseline_run_id)
            note = render.SIG_NOTE
        else:
            long = compare.metric_matrix(reg, store, cells, t.category, seed=cfg.seed, **kw)
            ids = list(long.run_id)
            if t.kind == TableKind.efficiency:
                long = compare.efficiency_table(reg, cells, long)
                display = render.efficiency_display(long, scale=t.scale, decimals=t.decimals)
            else:
                display = render.matrix_display(long, scale=t.scale, decimals=t.decimals, ci=t.ci)
        for c in cells.values():
            if c.run_id in ids:
                used[c.run_id] = c
        outs.append(TableOut(t, display, long, note))
    return outs, compare.provenance(store, list(used.values()))


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
    """Load, build, write and (optionally) log a report; the CLI's and MLproject's `report`."""
    import mlflow

    path = find(name_or_path)
    cfg = load(path, reg)
    out = out_dir or Path("reports") / cfg.name
    outs, prov = build(reg, cfg)
    write(cfg, outs, prov, out)
    run_id = None
    if log:
        tags = {compare.KIND_TAG: "report", "report": cfg.name}
        with compare.start_output_run(f"report:{cfg.name}", tags, cfg.experiment) as r:
            mlflow.log_artifacts(str(out), artifact_path=f"report/{cfg.name}")
            mlflow.log_artifact(str(path), artifact_path="report")
            run_id = r.info.run_id
    return out, run_id
