"""The study's figures on its parent run: optimization history, parameter importances, and
throughput against memory with the Pareto front (PNGs, through ``RunHandle.log_figure``)."""

from __future__ import annotations

import json
import logging
import warnings
from typing import Any

from specbench import tracking

log = logging.getLogger(__name__)


def pareto_front(points: list[tuple[float, float, int]]) -> list[tuple[float, float, int]]:
    """Non-dominated (memory, throughput, id) points: no other point has less or equal memory
    and more or equal throughput (one strictly better)."""
    front = []
    for m, v, i in points:
        if not any((m2 <= m and v2 >= v) and (m2 < m or v2 > v) for m2, v2, _ in points):
            front.append((m, v, i))
    return sorted(front)


def log_plots(run: tracking.RunHandle, study: Any, rows: list[dict[str, Any]]) -> list[str]:
    """Draw and log the figures; a figure that cannot be drawn gets a ``plot.<name>`` tag saying why."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    import optuna.visualization.matplotlib as ovm

    logged = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        plots = {"optimization_history.png": lambda: ovm.plot_optimization_history(
                     study, target_name="output tokens/s"),
                 "param_importances.png": lambda: ovm.plot_param_importances(study, target_name="output tokens/s")}
        distinct = {json.dumps(r["params"], sort_keys=True) for r in rows
                    if r["state"] == "COMPLETE" and r.get("params")}
        if len(distinct) < 3:  # Optuna would draw equal bars: say why there is no figure instead
            plots.pop("param_importances.png")
            run.set_tags({"plot.param_importances.png":
                          f"not drawn: {len(distinct)} distinct completed configurations (3 needed)"})
        for name, make in plots.items():
            try:
                ax = make()
                fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
                fig.set_size_inches(8, 5)
                fig.tight_layout()
                run.log_figure(fig, name)
                plt.close(fig)
                logged.append(name)
            except Exception as exc:  # too few trials for importances, one knob, ...
                log.warning("%s not drawn: %s", name, exc)
                run.set_tags({f"plot.{name}": f"not drawn: {str(exc)[:200]}"})
    done = [r for r in rows if r["state"] == "COMPLETE" and r["peak_rss_mb"] is not None
            and r["output_tokens_per_s"] is not None and r["duplicate_of"] is None]
    if done:
        fig = pareto_figure(study.study_name, done)
        run.log_figure(fig, "pareto_front.png")
        plt.close(fig)
        logged.append("pareto_front.png")
    return logged


def pareto_figure(study_name: str, done: list[dict[str, Any]]) -> Any:
    """Throughput against peak memory of the completed trials: constraint violations marked,
    the feasible non-dominated ones joined."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    feas = [r for r in done if r["feasible"] is not False]
    infeas = [r for r in done if r["feasible"] is False]
    ax.scatter([r["peak_rss_mb"] for r in feas], [r["output_tokens_per_s"] for r in feas],
               c="tab:blue", label="trial")
    if infeas:
        ax.scatter([r["peak_rss_mb"] for r in infeas], [r["output_tokens_per_s"] for r in infeas],
                   c="tab:red", marker="x", label="accuracy constraint violated")
    front = pareto_front([(r["peak_rss_mb"], r["output_tokens_per_s"], r["trial"]) for r in feas])
    if front:
        ax.step([p[0] for p in front], [p[1] for p in front], where="post", c="tab:orange",
                label="Pareto front")
    for r in done:
        label = f"{r['trial']}" + (" (ref)" if r["role"] == "reference" else "")
        ax.annotate(label, (r["peak_rss_mb"], r["output_tokens_per_s"]), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
    ax.set_xlabel("peak memory, MB (RSS of the process tree; GPU runs: see gpu_used_mb)")
    ax.set_ylabel("output tokens/s on the probe")
    ax.set_title(f"{study_name}: throughput vs memory")
    ax.legend()
    fig.tight_layout()
    return fig
