"""Rendering of comparison tables: CSV, Markdown, LaTeX (booktabs), PNG figures, one HTML page.

Input is always a long-form table from compare.py; output is deterministic (sorted
inputs, fixed float formats, PNGs without a timestamp), so a report regenerated from the
same runs is byte-identical.  Missing cells print as an em dash (``---`` in LaTeX),
failed ones as ``failed``: the tables never shrink to hide them.
"""

from __future__ import annotations

import base64
import html
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from specbench import stats

DASH = "—"
MARKS = {"missing": DASH, "failed": "failed", "running": "running"}
SIG_NOTE = ("* p<0.05, ** p<0.01, *** p<0.001: McNemar's exact test on paired right/wrong items, "
            "paired bootstrap for other scores; brackets: 95% bootstrap interval")


@dataclass
class Section:
    """One block of the HTML summary: a display table, its figures and a note."""

    title: str
    table: pd.DataFrame
    images: list[Path] = field(default_factory=list)
    note: str = ""


# -- numbers to text ------------------------------------------------------------------

def num(v: float, scale: float = 100.0, decimals: int = 1, sign: bool = False) -> str:
    if v is None or not np.isfinite(v):
        return DASH
    x = round(float(v) * scale, decimals) + 0.0  # + 0.0: no "-0.0"
    return f"{x:+.{decimals}f}" if sign else f"{x:.{decimals}f}"


def _label_rows(df: pd.DataFrame) -> pd.Series:
    """Row labels: the model, with its preset when it appears under more than one."""
    multi = df.groupby("model")["preset"].transform("nunique") > 1
    return df.model.where(~multi, df.model + " [" + df.preset + "]")


def matrix_display(matrix: pd.DataFrame, *, scale: float = 100.0, decimals: int = 1, ci: bool = True) -> pd.DataFrame:
    """models x datasets, 'value [low, high]' per finished cell, a mark for the others."""
    df = matrix.assign(label=_label_rows(matrix))

    def text(r: pd.Series) -> str:
        if r.status != "finished":
            return MARKS.get(r.status, r.status)
        out = num(r.value, scale, decimals)
        if ci and np.isfinite(r.ci_low):
            out += f" [{num(r.ci_low, scale, decimals)}, {num(r.ci_high, scale, decimals)}]"
        return out

    df["text"] = df.apply(text, axis=1) if len(df) else []
    wide = df.pivot(index="label", columns="dataset", values="text")
    rows = list(dict.fromkeys(df.label))
    cols = list(dict.fromkeys(df.dataset))
    wide = wide.loc[rows, cols]
    roles = df.drop_duplicates("label").set_index("label").role
    wide.insert(0, "role", roles.loc[rows])
    wide.index.name = "model"
    return wide.reset_index()


def matrix_values(matrix: pd.DataFrame, scale: float = 100.0) -> pd.DataFrame:
    df = matrix.assign(label=_label_rows(matrix))
    v = df.pivot(index="label", columns="dataset", values="value") * scale
    return v.loc[list(dict.fromkeys(df.label)), list(dict.fromkeys(df.dataset))]


def delta_text(r: pd.Series, scale: float = 100.0, decimals: int = 1, ci: bool = True) -> str:
    """One paired difference: '+d** [low, high]', or the status mark when it is not finished."""
    if r.status != "finished":
        return MARKS.get(r.status, r.status)
    out = num(r.delta, scale, decimals, sign=True) + stats.stars(r.p_value)
    if ci and np.isfinite(r.ci_low):
        out += f" [{num(r.ci_low, scale, decimals, True)}, {num(r.ci_high, scale, decimals, True)}]"
    return out


def delta_display(deltas: pd.DataFrame, *, scale: float = 100.0, decimals: int = 1, ci: bool = True) -> pd.DataFrame:
    """One baseline: specialists x datasets, '+d** [low, high]' per cell."""
    df = deltas.assign(label=_label_rows(deltas))
    df["text"] = [delta_text(r, scale, decimals, ci) for _, r in df.iterrows()]
    wide = df.pivot(index="label", columns="dataset", values="text")
    wide = wide.loc[list(dict.fromkeys(df.label)), list(dict.fromkeys(df.dataset))]
    wide.index.name = "model"
    return wide.reset_index()


def efficiency_display(eff: pd.DataFrame, *, scale: float = 100.0, decimals: int = 1) -> pd.DataFrame:
    def opt(v: float, d: int) -> str:
        return DASH if not np.isfinite(v) else f"{v:.{d}f}"

    return pd.DataFrame({
        "model": _label_rows(eff) if len(eff) else [],
        "role": eff.role,
        "accuracy": [num(v, scale, decimals) for v in eff.accuracy],
        "datasets": eff.datasets_finished,
        "output tok/s": [opt(v, 1) for v in eff.output_tokens_per_s],
        "peak memory (MB)": [opt(v, 0) for v in eff.memory_mb],
        "params (B)": [opt(v, 3) for v in eff.parameters_b],
        "accuracy / B params": [num(v, scale, decimals) for v in eff.accuracy_per_b],
        "Pareto tok/s": ["yes" if p else "" for p in eff.pareto_throughput],
        "Pareto memory": ["yes" if p else "" for p in eff.pareto_memory],
    })


def quantization_display(q: pd.DataFrame, *, scale: float = 100.0, decimals: int = 1) -> pd.DataFrame:
    """One row per variant x dataset: both scores, the paired delta with stars and interval,
    and the cost ratios (variant over parent)."""
    def ratio(v: float, simulated: bool) -> str:
        return "simulated" if simulated else DASH if not np.isfinite(v) else f"{v:.2f}x"

    return pd.DataFrame({
        # the preset only when the parent's run used another one
        "variant": q.variant + np.where((q.parent_preset != "") & (q.preset != q.parent_preset),
                                        " [" + q.preset + "]", ""),
        "parent": q.parent, "dataset": q.dataset,
        "variant score": [num(v, scale, decimals) for v in q.variant_value],
        "parent score": [num(v, scale, decimals) for v in q.parent_value],
        "delta": [delta_text(r, scale, decimals) for _, r in q.iterrows()],
        "p": ["" if not np.isfinite(p) else f"{p:.3g}" for p in q.p_value],
        "size": [ratio(v, False) for v in q.size_ratio],
        "memory": [ratio(v, s) for v, s in zip(q.memory_ratio, q.simulated, strict=True)],
        "output tok/s": [ratio(v, s) for v, s in zip(q.throughput_ratio, q.simulated, strict=True)],
    })


def framework_display(fw: pd.DataFrame, *, scale: float = 100.0, decimals: int = 1) -> pd.DataFrame:
    def text(r: pd.Series) -> str:
        if not r.model:
            return DASH
        val = num(r.value, scale, decimals) if r.status == "finished" else MARKS.get(r.status, r.status)
        return f"{r.model}: {val}"

    df = fw.assign(text=fw.apply(text, axis=1) if len(fw) else [])
    wide = df.pivot(index="task_name", columns="role", values="text")
    wide = wide.loc[list(dict.fromkeys(df.task_name)), list(dict.fromkeys(df.role))]
    wide.index.name = "primary task"
    return wide.reset_index()


# -- text formats -----------------------------------------------------------------------

def to_csv(df: pd.DataFrame, path: Path) -> Path:
    df.to_csv(path, index=False, float_format="%.6g", lineterminator="\n")
    return path


def to_markdown(df: pd.DataFrame, caption: str = "", note: str = "") -> str:
    """A GitHub pipe table (first column left-aligned, the rest right-aligned)."""
    def cell(v: object) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    cols = [str(c) for c in df.columns]
    lines = [f"**{caption}**", ""] if caption else []
    lines += ["| " + " | ".join(cell(c) for c in cols) + " |",
              "| " + " | ".join(":--" if i == 0 or c in TEXT_COLUMNS else "--:" for i, c in enumerate(cols)) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def to_latex(df: pd.DataFrame, caption: str = "", label: str = "", note: str = "") -> str:
    """A booktabs table through pandas' Styler (\\toprule, \\midrule, \\bottomrule)."""
    sty = df.style.hide(axis="index").format(escape="latex").format_index(escape="latex", axis=1)
    tex = sty.to_latex(hrules=True, caption=latex_escape(caption) or None, label=label or None,
                       position="htbp" if caption or label else None,
                       position_float="centering" if caption or label else None,
                       column_format="".join("l" if i == 0 or c in TEXT_COLUMNS else "r"
                                             for i, c in enumerate(df.columns)))
    tex = tex.replace(DASH, "---")
    if note:
        tex = tex.replace("\\end{tabular}\n", "\\end{tabular}\n\\par\\footnotesize " + latex_escape(note) + "\n", 1)
    return tex


TEXT_COLUMNS = {"model", "role", "baseline", "primary task"}


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
          "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"$<$", ">": r"$>$", DASH: "---"}


def latex_escape(text: str) -> str:
    """Captions and notes are written by people; escape what LaTeX would misread."""
    return "".join(_LATEX.get(ch, ch) for ch in text)


def _ext(stem: Path, suffix: str) -> Path:
    """stem + suffix (stems contain dots: <category>.matrix)."""
    return stem.parent / (stem.name + suffix)


def write_table(df: pd.DataFrame, long: pd.DataFrame | None, stem: Path, *, caption: str = "", label: str = "",
                note: str = "") -> list[Path]:
    """stem.csv (the long form when given: every number, unrounded), stem.md, stem.tex."""
    paths = [to_csv(long if long is not None else df, _ext(stem, ".csv"))]
    md = _ext(stem, ".md")
    md.write_text(to_markdown(df, caption, note))
    tex = _ext(stem, ".tex")
    tex.write_text(to_latex(df, caption, label, note))
    return paths + [md, tex]


# -- figures -----------------------------------------------------------------------------

def _plt():
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
    labels = _label_rows(eff) if len(eff) else pd.Series(dtype=str)
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


# -- the sections a comparison writes ------------------------------------------------

def category_sections(cat: str, matrix: pd.DataFrame, deltas: pd.DataFrame, eff: pd.DataFrame, out_dir: Path,
                      files: list[Path], *, scale: float = 100.0, decimals: int = 1,
                      quant: pd.DataFrame | None = None) -> list[Section]:
    sections = []
    disp = matrix_display(matrix, scale=scale, decimals=decimals)
    metrics = ", ".join(sorted(set(matrix.metric)))
    cap = f"{cat}: main metric ({metrics}) per model and dataset, %, with 95% bootstrap intervals"
    files += write_table(disp, matrix, out_dir / f"{cat}.matrix", caption=cap, label=f"tab:{cat}-matrix")
    text = disp.set_index("model").drop(columns="role")
    files.append(heatmap(matrix_values(matrix, scale), text, cap, out_dir / f"{cat}.matrix.png",
                         colorbar="main metric (%)", note="grey: " + DASH + " missing, failed or running"))
    sections.append(Section(f"{cat}: models x datasets", disp, [files[-1]], cap))
    for base, grp in deltas.groupby("baseline", sort=False):
        d = delta_display(grp, scale=scale, decimals=decimals)
        cap = f"{cat}: specialist minus {base} (points), paired by item"
        stem = out_dir / f"{cat}.delta_vs_{base}"
        files += write_table(d, grp, stem, caption=cap, label=f"tab:{cat}-delta-{base}", note=SIG_NOTE)
        vals = grp.assign(label=_label_rows(grp)).pivot(index="label", columns="dataset", values="delta") * scale
        vals = vals.loc[list(dict.fromkeys(_label_rows(grp))), list(dict.fromkeys(grp.dataset))]
        ptext = grp.assign(label=_label_rows(grp), ptxt=[
            "" if not np.isfinite(p) else f"\np={p:.3g}" for p in grp.p_value]).pivot(
            index="label", columns="dataset", values="ptxt").loc[vals.index, vals.columns]
        text = d.set_index("model").loc[vals.index, vals.columns]
        text = text.apply(lambda col: col.str.split(" \\[").str[0]) + ptext
        files.append(heatmap(vals, text, cap, _ext(stem, ".png"), diverging=True, colorbar="delta (points)",
                             note=SIG_NOTE))
        sections.append(Section(f"{cat}: specialists vs {base}", d, [files[-1]], cap + ". " + SIG_NOTE))
    e = efficiency_display(eff, scale=scale, decimals=decimals)
    common = eff.accuracy_datasets.iloc[0] if len(eff) else ""
    cap = (f"{cat}: accuracy (mean main metric over the datasets every model finished: {common or 'none'}) "
           "against throughput, memory and size")
    files += write_table(e, eff, out_dir / f"{cat}.efficiency", caption=cap, label=f"tab:{cat}-efficiency")
    imgs = [pareto_plot(eff, "output_tokens_per_s", "pareto_throughput", "output tokens/s (median over cells)",
                        f"{cat}: accuracy vs throughput", out_dir / f"{cat}.efficiency_throughput.png", scale=scale),
            pareto_plot(eff, "memory_mb", "pareto_memory", "peak memory, MB (" + ", ".join(
                sorted({m for m in eff.memory_metric if m})) + ")", f"{cat}: accuracy vs peak memory",
                out_dir / f"{cat}.efficiency_memory.png", scale=scale)]
    files += imgs
    sections.append(Section(f"{cat}: efficiency", e, imgs, cap))
    if quant is not None and len(quant):
        d = quantization_display(quant, scale=scale, decimals=decimals)
        cap = (f"{cat}: quantized variants minus their full-precision parents (points), paired by item; "
               "size, memory and throughput as variant/parent ratios")
        note = SIG_NOTE + ("; simulated: int4 weights unpacked to floats on a machine without AWQ kernels, "
                           "so accuracy is the quantized model's but memory and speed are not")
        files += write_table(d, quant, out_dir / f"{cat}.quantization", caption=cap, label=f"tab:{cat}-quantization",
                             note=note)
        sections.append(Section(f"{cat}: quantized vs full precision", d, [], cap + ". " + note))
    return sections


def framework_section(fw: pd.DataFrame, out_dir: Path, files: list[Path], *, scale: float = 100.0,
                      decimals: int = 1) -> Section:
    d = framework_display(fw, scale=scale, decimals=decimals)
    cap = "Specialization framework: primary task x role, mean main metric over the task's datasets (%)"
    files += write_table(d, fw, out_dir / "framework", caption=cap, label="tab:framework")
    vals = fw.pivot(index="task_name", columns="role", values="value") * scale
    vals = vals.loc[list(dict.fromkeys(fw.task_name)), list(dict.fromkeys(fw.role))]
    text = d.set_index("primary task").loc[vals.index, vals.columns].apply(lambda c: c.str.replace(": ", "\n"))
    files.append(heatmap(vals, text, cap, out_dir / "framework.png", colorbar="main metric (%)"))
    return Section("Specialization framework", d, [files[-1]], cap)


def html_summary(title: str, selection: dict[str, str], sections: list[Section], provenance: dict) -> str:
    """One self-contained page: tables, figures inlined as data URIs, provenance."""
    esc = html.escape
    parts = [
        "<!doctype html>", "<html><head><meta charset=\"utf-8\">", f"<title>{esc(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:75em}"
        "table{border-collapse:collapse;margin:.6em 0}th,td{border-bottom:1px solid #ccc;padding:.25em .6em;"
        "text-align:right}th:first-child,td:first-child{text-align:left}img{max-width:100%;margin:.4em 0}"
        ".note{color:#555;font-size:.9em}code{font-size:.85em}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        "<p>" + ", ".join(f"{esc(k)}: <code>{esc(v)}</code>" for k, v in selection.items()) + "</p>",
    ]
    for s in sections:
        parts.append(f"<h2>{esc(s.title)}</h2>")
        parts.append(s.table.to_html(index=False, escape=True, border=0))
        if s.note:
            parts.append(f"<p class=\"note\">{esc(s.note)}</p>")
        for img in s.images:
            data = base64.b64encode(Path(img).read_bytes()).decode()
            parts.append(f"<img alt=\"{esc(Path(img).name)}\" src=\"data:image/png;base64,{data}\">")
    runs = provenance.get("runs", [])
    parts.append("<h2>Provenance</h2>")
    if runs:
        prov = pd.DataFrame(runs)[["run_id", "model", "dataset", "preset", "status", "git_commit", "config_hash",
                                   "dataset_digest"]]
        prov = prov.assign(git_commit=prov.git_commit.str[:10], dataset_digest=prov.dataset_digest.str[:12])
        parts.append(prov.to_html(index=False, escape=True, border=0))
    gen = provenance.get("generated_by", {})
    parts.append(f"<p class=\"note\">generated at commit <code>{esc(str(gen.get('git_commit', '')))}</code>; "
                 "packages: " + esc(", ".join(f"{k} {v}" for k, v in sorted(gen.get("packages", {}).items())))
                 + "</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


__all__ = ["DASH", "Section", "delta_display", "efficiency_display", "framework_display", "heatmap", "html_summary",
           "matrix_display", "num", "pareto_plot", "to_latex", "to_markdown", "write_table"]
