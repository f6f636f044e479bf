"""Comparison tables as text: display tables, CSV, Markdown and LaTeX (booktabs).

Input is always a long-form table from tables.py; output is deterministic (rows and
columns in first-seen order, fixed float formats), so a report regenerated from the same
runs is byte-identical.  Missing cells print as an em dash (``---`` in LaTeX), failed ones
as ``failed``: the tables never shrink to hide them.  Figures are in figures.py, the HTML
page and the sections of a compare run in summary.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from specbench.analysis import stats

DASH = "—"
MIXED = "†"  # a cell compared with others that were evaluated on a different number of items
MARKS = {"missing": DASH, "failed": "failed", "running": "running"}
SIG_NOTE = ("* q<0.05, ** q<0.01, *** q<0.001: p-values adjusted for the false discovery rate "
            "(Benjamini-Hochberg over all paired tests of the matrix: every model, baseline and dataset) of "
            "McNemar's exact test on paired "
            "right/wrong items, paired bootstrap for other scores; brackets: 95% bootstrap interval")
MIXED_NOTE = (MIXED + " sample counts differ: cells compared here were evaluated on different numbers of items "
              "(column samples; a smoke run beside a full one?), so their intervals and tests are not like for like")
TEXT_COLUMNS = {"model", "role", "baseline", "primary task", "samples"}


# -- numbers to text ------------------------------------------------------------------

def num(v: float, scale: float = 100.0, decimals: int = 1, sign: bool = False) -> str:
    if v is None or not np.isfinite(v):
        return DASH
    x = round(float(v) * scale, decimals) + 0.0  # + 0.0: no "-0.0"
    return f"{x:+.{decimals}f}" if sign else f"{x:.{decimals}f}"


def label_rows(df: pd.DataFrame) -> pd.Series:
    """Row labels: the model, with its preset when it appears under more than one."""
    multi = df.groupby("model")["preset"].transform("nunique") > 1
    return df.model.where(~multi, df.model + " [" + df.preset + "]")


def wide(df: pd.DataFrame, values: str, *, index: str = "label", columns: str = "dataset") -> pd.DataFrame:
    """A long table pivoted to index x columns, both in first-seen order: the one pivot of
    every display table and heatmap, so a figure's cells line up with its table's.  The
    ``label`` index (model, with its preset where needed) is added when absent."""
    if index == "label" and "label" not in df:
        df = df.assign(label=label_rows(df) if len(df) else [])
    out = df.pivot(index=index, columns=columns, values=values)
    return out.loc[list(dict.fromkeys(df[index])), list(dict.fromkeys(df[columns]))]


def _mixed(r: pd.Series) -> str:
    return MIXED if bool(r.get("mixed_samples", False)) else ""


def adjusted_p(r: pd.Series) -> float:
    """The p-value significance marks use: the table's adjusted one (a bare p only in tables
    made without adjustment)."""
    return r.p_adjusted if "p_adjusted" in r.index else r.p_value


def matrix_text(r: pd.Series, scale: float = 100.0, decimals: int = 1, ci: bool = True) -> str:
    """One cell of the metric matrix: 'value [low, high]', or its status mark."""
    if r.status != "finished":
        return MARKS.get(r.status, r.status)
    out = num(r.value, scale, decimals) + _mixed(r)
    if ci and np.isfinite(r.ci_low):
        out += f" [{num(r.ci_low, scale, decimals)}, {num(r.ci_high, scale, decimals)}]"
    return out


def delta_text(r: pd.Series, scale: float = 100.0, decimals: int = 1, ci: bool = True) -> str:
    """One paired difference: '+d** [low, high]', or the status mark when it is not finished."""
    if r.status != "finished":
        return MARKS.get(r.status, r.status)
    out = num(r.delta, scale, decimals, sign=True) + stats.stars(adjusted_p(r)) + _mixed(r)
    if ci and np.isfinite(r.ci_low):
        out += f" [{num(r.ci_low, scale, decimals, True)}, {num(r.ci_high, scale, decimals, True)}]"
    return out


def framework_text(r: pd.Series, scale: float = 100.0, decimals: int = 1) -> str:
    """One framework cell: 'model: value' (or its status mark); a dash where no model is declared."""
    if not r.model:
        return DASH
    val = num(r.value, scale, decimals) if r.status == "finished" else MARKS.get(r.status, r.status)
    return f"{r.model}: {val}"


# -- display tables -----------------------------------------------------------------------

def matrix_display(matrix: pd.DataFrame, *, scale: float = 100.0, decimals: int = 1, ci: bool = True) -> pd.DataFrame:
    """models x datasets, 'value [low, high]' per finished cell, a mark for the others."""
    df = matrix.assign(label=label_rows(matrix) if len(matrix) else [],
                       text=[matrix_text(r, scale, decimals, ci) for _, r in matrix.iterrows()])
    out = wide(df, "text")
    roles = df.drop_duplicates("label").set_index("label").role
    out.insert(0, "role", roles.loc[out.index])
    if is_mixed(matrix):
        done = df[df.status == "finished"]
        out["samples"] = [_counts(done[done.label == lab].n) for lab in out.index]
    out.index.name = "model"
    return out.reset_index()


def delta_display(deltas: pd.DataFrame, *, scale: float = 100.0, decimals: int = 1, ci: bool = True) -> pd.DataFrame:
    """One baseline: specialists x datasets, '+d** [low, high]' per cell (marks from the
    adjusted p-values); a ``samples`` column (model vs baseline items) when counts differ."""
    df = deltas.assign(label=label_rows(deltas) if len(deltas) else [],
                       text=[delta_text(r, scale, decimals, ci) for _, r in deltas.iterrows()])
    out = wide(df, "text")
    if is_mixed(deltas):
        out["samples"] = [_pairs(df[df.label == lab], "model_n", "baseline_n") for lab in out.index]
    out.index.name = "model"
    return out.reset_index()


def paired_tests_display(deltas: pd.DataFrame, *, scale: float = 100.0, decimals: int = 1) -> pd.DataFrame:
    """The finished cells of a delta table one per row: both scores, the paired delta with its
    interval, the test, how many items it paired, and its raw and adjusted p-values (the wide
    table shows only the stars)."""
    d = deltas[deltas.status == "finished"]
    return pd.DataFrame({
        "model": label_rows(d) if len(d) else [], "baseline": d.baseline, "dataset": d.dataset,
        "model score": [num(v, scale, decimals) for v in d.model_value],
        "baseline score": [num(v, scale, decimals) for v in d.baseline_value],
        "delta [95% CI]": [delta_text(r, scale, decimals) for _, r in d.iterrows()],
        "test": d.test, "paired": [_count_text(v) for v in d.n_paired],
        "p": ["" if not np.isfinite(p) else f"{p:.3g}" for p in d.p_value],
        "q (BH)": ["" if not np.isfinite(p) else f"{p:.3g}" for p in d.p_adjusted],
    })


def is_mixed(df: pd.DataFrame) -> bool:
    """Whether a long table compares cells evaluated on different numbers of items."""
    return "mixed_samples" in df and bool(df.mixed_samples.fillna(False).astype(bool).any())


def samples_note(*frames: pd.DataFrame) -> str:
    """The note a rendered table gets when it compares cells on different numbers of items."""
    return MIXED_NOTE if any(is_mixed(f) for f in frames) else ""


def join_notes(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def _count_text(v: float) -> str:
    return DASH if v is None or not np.isfinite(v) or not v else str(int(v))


def _counts(values: pd.Series) -> str:
    """A row's distinct sample counts, smallest first ('4 / 50')."""
    return " / ".join(_count_text(v) for v in sorted({float(v) for v in values if np.isfinite(v) and v}))


def _pairs(rows: pd.DataFrame, a: str, b: str) -> str:
    """A row's distinct 'a vs b' sample counts of the finished comparisons."""
    done = rows[rows.status == "finished"]
    return ", ".join(dict.fromkeys(f"{_count_text(x)} vs {_count_text(y)}" for x, y in zip(done[a], done[b],
                                                                                           strict=True)))


def efficiency_display(eff: pd.DataFrame, *, scale: float = 100.0, decimals: int = 1) -> pd.DataFrame:
    def opt(v: float, d: int) -> str:
        return DASH if not np.isfinite(v) else f"{v:.{d}f}"

    return pd.DataFrame({
        "model": label_rows(eff) if len(eff) else [],
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
        "q (BH)": ["" if not np.isfinite(p) else f"{p:.3g}" for p in q.p_adjusted],
        "size": [ratio(v, False) for v in q.size_ratio],
        "memory": [ratio(v, s) for v, s in zip(q.memory_ratio, q.simulated, strict=True)],
        "output tok/s": [ratio(v, s) for v, s in zip(q.throughput_ratio, q.simulated, strict=True)],
    } | ({"samples": [_pairs(q.iloc[[i]], "variant_n", "parent_n") for i in range(len(q))]} if is_mixed(q) else {}))


def framework_display(fw: pd.DataFrame, *, scale: float = 100.0, decimals: int = 1) -> pd.DataFrame:
    """Primary task x role, 'model: value' per cell."""
    df = fw.assign(text=[framework_text(r, scale, decimals) for _, r in fw.iterrows()])
    out = wide(df, "text", index="task_name", columns="role")
    out.index.name = "primary task"
    return out.reset_index()


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
    tex = tex.replace(DASH, "---").replace(MIXED, "$^\\dagger$")
    if note:
        tex = tex.replace("\\end{tabular}\n", "\\end{tabular}\n\\par\\footnotesize " + latex_escape(note) + "\n", 1)
    return tex


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
          "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"$<$", ">": r"$>$", DASH: "---",
          MIXED: r"$^\dagger$"}


def latex_escape(text: str) -> str:
    """Captions and notes are written by people; escape what LaTeX would misread."""
    return "".join(_LATEX.get(ch, ch) for ch in text)


def with_suffix(stem: Path, suffix: str) -> Path:
    """stem + suffix (stems contain dots: <category>.matrix, so Path.with_suffix would cut them)."""
    return stem.parent / (stem.name + suffix)


def write_table(df: pd.DataFrame, long: pd.DataFrame | None, stem: Path, *, caption: str = "", label: str = "",
                note: str = "") -> list[Path]:
    """stem.csv (the long form when given: every number, unrounded), stem.md, stem.tex."""
    paths = [to_csv(long if long is not None else df, with_suffix(stem, ".csv"))]
    md = with_suffix(stem, ".md")
    md.write_text(to_markdown(df, caption, note))
    tex = with_suffix(stem, ".tex")
    tex.write_text(to_latex(df, caption, label, note))
    return paths + [md, tex]


__all__ = ["DASH", "MARKS", "MIXED", "MIXED_NOTE", "SIG_NOTE", "TEXT_COLUMNS", "adjusted_p", "delta_display",
           "delta_text", "efficiency_display", "framework_display", "framework_text", "is_mixed", "join_notes",
           "label_rows", "latex_escape", "matrix_display", "matrix_text", "num", "quantization_display",
           "samples_note", "to_csv", "to_latex", "to_markdown", "wide", "with_suffix", "write_table"]
