"""Schemas of paper reports (``experiments/<name>.yaml``): which tables, over which runs.

They live with the other registry schemas so that a report file is checked exactly as
``conf/`` is (``registry.load_object``: unknown keys with suggestions, one-line errors);
``specbench.analysis.report`` loads, builds and writes them.  No analysis import here: the
bootstrap seed a report defaults to is defined here and re-used by ``analysis.stats``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from specbench.registry.schema import ConfigError

BOOTSTRAP_SEED = 0  # the default seed of every interval and paired test: reports regenerate byte for byte


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
        if not 0 < self.scale < float("inf"):  # NaN and infinity refused too
            raise ConfigError("scale", f"must be a finite number > 0, got {self.scale}")


@dataclass
class ReportConfig:
    """experiments/<name>.yaml: a paper's tables and where their runs live."""

    name: str  # must equal the file name
    title: str
    tables: list[TableSpec]
    experiment: str | None = None  # MLflow experiment (default: specbench)
    seed: int = BOOTSTRAP_SEED  # bootstrap seed: fixed, so intervals regenerate exactly
    description: str = ""

    def __post_init__(self) -> None:
        if not self.tables:
            raise ConfigError("tables", "a report needs at least one table")
        if not 0 <= self.seed < 2**32:
            raise ConfigError("seed", f"must be between 0 and 2**32 - 1, got {self.seed}")
        ids = [t.id for t in self.tables]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ConfigError("tables", f"duplicate table ids: {', '.join(dup)}")


__all__ = ["BOOTSTRAP_SEED", "ReportConfig", "TableKind", "TableSpec"]
