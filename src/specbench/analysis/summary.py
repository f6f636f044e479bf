"""What a compare run writes per category and for the framework: tables, their heatmaps and
plots, and one self-contained HTML page (figures inlined as data URIs, provenance).

Each section's files are appended to the caller's list, in a fixed order, so the artifacts
of a compare run are the same from one invocation to the next.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from specbench.analysis.figures import heatmap, pareto_plot
from specbench.analysis.render import (
    DASH,
    SIG_NOTE,
    adjusted_p,
    delta_display,
    delta_text,
    efficiency_display,
    framework_display,
    framework_text,
    join_notes,
    matrix_display,
    matrix_text,
    quantization_display,
    samples_note,
    wide,
    with_suffix,
    write_table,
)


@dataclass
class Section:
    """One block of the HTML summary: a display table, its figures and a note."""

    title: str
    table: pd.DataFrame
    images: list[Path] = field(default_factory=list)
    note: str = ""


def heat_frames(long: pd.DataFrame, values: str, text: list[str], scale: float, *, index: str = "label",
                columns: str = "dataset") -> tuple[pd.DataFrame, pd.DataFrame]:
    """What a heatmap colours (``values`` x scale) and the text it prints per cell, pivoted
    alike (render.wide), so numbers and labels cannot drift apart."""
    df = long.assign(heat_text=text)
    return wide(df, values, index=index, columns=columns) * scale, wide(df, "heat_text", index=index, columns=columns)


def category_sections(cat: str, matrix: pd.DataFrame, deltas: pd.DataFrame, eff: pd.DataFrame, out_dir: Path,
                      files: list[Path], *, scale: float = 100.0, decimals: int = 1,
                      quant: pd.DataFrame | None = None) -> list[Section]:
    """The matrix, one delta table per baseline, the efficiency table and (when a quantized
    variant ran) the quantization table of one category, with their figures."""
    sections = []
    disp = matrix_display(matrix, scale=scale, decimals=decimals)
    metrics = ", ".join(sorted(set(matrix.metric)))
    cap = f"{cat}: main metric ({metrics}) per model and dataset, %, with 95% bootstrap intervals"
    note = samples_note(matrix)
    files += write_table(disp, matrix, out_dir / f"{cat}.matrix", caption=cap, label=f"tab:{cat}-matrix", note=note)
    vals, text = heat_frames(matrix, "value", [matrix_text(r, scale, decimals) for _, r in matrix.iterrows()], scale)
    files.append(heatmap(vals, text, cap, out_dir / f"{cat}.matrix.png", colorbar="main metric (%)",
                         note=join_notes("grey: " + DASH + " missing, failed or running", note)))
    sections.append(Section(f"{cat}: models x datasets", disp, [files[-1]], join_notes(cap, note)))
    # The delta tables of all baselines are one family of tests: the adjustment is over all of them.
    for base, grp in deltas.groupby("baseline", sort=False):
        d = delta_display(grp, scale=scale, decimals=decimals)
        cap = f"{cat}: specialist minus {base} (points), paired by item"
        stem = out_dir / f"{cat}.delta_vs_{base}"
        note = join_notes(SIG_NOTE, samples_note(grp))
        files += write_table(d, grp, stem, caption=cap, label=f"tab:{cat}-delta-{base}", note=note)
        vals, text = heat_frames(grp, "delta", [
            delta_text(r, scale, decimals, ci=False) + ("" if not np.isfinite(adjusted_p(r))
                                                        else f"\nq={adjusted_p(r):.3g}")
            for _, r in grp.iterrows()], scale)
        files.append(heatmap(vals, text, cap, with_suffix(stem, ".png"), diverging=True, colorbar="delta (points)",
                             note=note))
        sections.append(Section(f"{cat}: specialists vs {base}", d, [files[-1]], cap + ". " + note))
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
        note = join_notes(SIG_NOTE + ("; simulated: int4 weights unpacked to floats on a machine without AWQ "
                                      "kernels, so accuracy is the quantized model's but memory and speed are not"),
                          samples_note(quant))
        files += write_table(d, quant, out_dir / f"{cat}.quantization", caption=cap, label=f"tab:{cat}-quantization",
                             note=note)
        sections.append(Section(f"{cat}: quantized vs full precision", d, [], cap + ". " + note))
    return sections


def framework_section(fw: pd.DataFrame, out_dir: Path, files: list[Path], *, scale: float = 100.0,
                      decimals: int = 1) -> Section:
    """conf/framework.yaml's task x role matrix: table and heatmap."""
    d = framework_display(fw, scale=scale, decimals=decimals)
    cap = "Specialization framework: primary task x role, mean main metric over the task's datasets (%)"
    files += write_table(d, fw, out_dir / "framework", caption=cap, label="tab:framework")
    vals, text = heat_frames(fw, "value", [framework_text(r, scale, decimals).replace(": ", "\n")
                                           for _, r in fw.iterrows()], scale, index="task_name", columns="role")
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


__all__ = ["Section", "category_sections", "framework_section", "heat_frames", "html_summary"]
