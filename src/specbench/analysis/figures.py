"""Comparison figures: heatmaps of the matrices and accuracy-vs-cost scatter plots.

PNGs are written without a timestamp (``metadata={"Software": None}`` and a fixed dpi), so
a figure regenerated from the same runs is byte-identical.  matplotlib is imported when a
figure is drawn, with the Agg backend: compare runs headless.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from specbench.analysis.render import label_rows


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def heatmap(values: pd.DataFrame, text: pd.DataFrame, title: str, path: Path, *, diverging: bool = False,
            note: str = "", colorbar: str = "") -> Path:
    """A heatmap with each cell's text drawn on it; NaN cells grey (the text says why)."""
    plt = _plt()
    from matplotlib import colors

    nrows, ncols = values.shape
    fig, ax = plt.subplots(figsize=(2.2 + 1.9 * ncols, 1.3 + 0.62 * max(nrows, 1)))
    data = np.ma.masked_invalid(values.to_numpy(dtype=float))
    if diverging:
        lim = float(np.nanmax(np.abs(values.to_numpy(dtype=float)))) if data.count() else 1.0
        lim = lim if lim > 0 else 1.0
        cmap, norm = plt.get_cmap("RdBu").copy(), colors.TwoSlopeNorm(vmin=-lim, vcenter=0.0, vmax=lim)
    else:
        cmap, norm = plt.get_cmap("viridis").copy(), colors.Normalize(vmin=0.0, vmax=100.0)
    cmap.set_bad("#d9d9d9")
    im = ax.imshow(data, cmap=cmap, norm=norm, aspect="auto")
    ax.set_xticks(range(ncols), [str(c) for c in values.columns], rotation=20, ha="right")
    ax.set_yticks(range(nrows), [str(i) for i in values.index])
    for i in range(nrows):
        for j in range(ncols):
            v = data[i, j]
            if np.ma.is_masked(v):
                color = "black"
            else:
                r, g, b, _ = cmap(norm(v))
                color = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
            ax.text(j, i, str(text.iat[i, j]).replace(" [", "\n["), ha="center", va="center", fontsize=9,
                    color=color)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03, label=colorbar)
    ax.set_title(textwrap.fill(title, int(fig.get_figwidth() * 11)), fontsize=11)
    if note:
        fig.text(0.01, 0.005, note, fontsize=7, ha="left", va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.05 if note else 0, 1, 1))
    fig.savefig(path, dpi=130, metadata={"Software": None})
    plt.close(fig)
    return path


def pareto_plot(eff: pd.DataFrame, x: str, front: str, xlabel: str, title: str, path: Path, *,
                scale: float = 100.0) -> Path:
    """Accuracy against a cost or speed axis, models labelled, the Pareto front drawn."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    finite = np.isfinite(pd.to_numeric(eff[x], errors="coerce").astype(float))
    ok = eff[finite & np.isfinite(pd.to_numeric(eff.accuracy, errors="coerce").astype(float))]
    labels = label_rows(eff) if len(eff) else pd.Series(dtype=str)
    for role, marker in (("specialist", "o"), ("generalist", "s")):
        pts = ok[ok.role == role]
        if len(pts):
            ax.scatter(pts[x], pts.accuracy * scale, marker=marker, s=60, label=role, zorder=3)
    for idx, r in ok.iterrows():
        ax.annotate(labels.loc[idx], (r[x], r.accuracy * scale), textcoords="offset points", xytext=(6, 4),
                    fontsize=8)
    fr = ok[ok[front].astype(bool)].sort_values(x) if len(ok) else ok
    if len(fr):
        ax.scatter(fr[x], fr.accuracy * scale, s=190, facecolors="none", edgecolors="black", zorder=4,
                   label="Pareto front")
    if len(fr) > 1:
        ax.plot(fr[x], fr.accuracy * scale, "--", color="grey", zorder=2)
    missing = [labels.loc[i] for i in eff.index if i not in ok.index]
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy (mean main metric, %)" if scale == 100 else "accuracy (mean main metric)")
    ax.set_title(textwrap.fill(title, 70), fontsize=11)
    ax.grid(alpha=0.3)
    if len(ok):
        ax.legend(fontsize=8, loc="best")
    if missing:
        fig.text(0.01, 0.005, "not plotted (missing cells or figure): " + ", ".join(missing), fontsize=7)
    fig.tight_layout(rect=(0, 0.04 if missing else 0, 1, 1))
    fig.savefig(path, dpi=130, metadata={"Software": None})
    plt.close(fig)
    return path


__all__ = ["heatmap", "pareto_plot"]
