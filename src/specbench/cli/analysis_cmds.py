"""`specbench compare | report`: specialist-vs-generalist tables and paper reports from tracked runs."""

from __future__ import annotations

import argparse
import json

from rich.markup import escape

from specbench.cli.common import UsageError, blank_is_none, boolean, emit, err, out, tags_arg
from specbench.redact import redact_url
from specbench.registry import Registry


def cmd_compare(reg: Registry, args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from specbench import tracking
    from specbench.analysis import compare, render
    from specbench.analysis.select import Selection

    sel = Selection(experiment=args.experiment, category=reg.category(args.category).key if args.category
                    else None, parent_run=args.parent_run, tags=args.tags)
    try:
        comp = compare.build(reg, sel, framework=args.framework)
    except tracking.TrackingError as exc:
        raise UsageError(str(exc)) from None
    if not comp.categories and comp.framework is None:
        raise UsageError(f"no cell runs match {sel.describe() or 'any experiment'} "
                         f"in {redact_url(tracking.tracking_uri())}")
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(args.output) if args.output else Path(tmp) / "compare"
        if args.output or args.log:  # figures only where they are kept
            compare.write(comp, out_dir)
        run_id = compare.log_run(comp, out_dir, args.experiment) if args.log else None
        warnings = compare.sample_warnings(comp)
        for line in warnings:  # the tables mark these cells; say it where it cannot be missed
            err.print(f"[yellow]warning[/yellow]: {escape(line)}", highlight=False, soft_wrap=True)
        if args.format == "json":
            print(json.dumps({"run_id": run_id, "output": str(out_dir) if args.output else None,
                              "warnings": warnings,
                              "categories": {v.category: {"matrix": v.matrix.to_dict("records"),
                                                          "deltas": v.deltas.to_dict("records"),
                                                          "efficiency": v.efficiency.to_dict("records"),
                                                          "quantization": v.quantization.to_dict("records")}
                                             for v in comp.categories},
                              "framework": None if comp.framework is None else comp.framework.to_dict("records")},
                             indent=2, default=str))
            return 0
    for v in comp.categories:
        d = render.matrix_display(v.matrix)
        emit(d.to_dict("records"), list(d.columns), "table", f"{v.category}: main metric, % [95% CI]")
        for base, grp in v.deltas.groupby("baseline", sort=False):
            d = render.delta_display(grp)
            emit(d.to_dict("records"), list(d.columns), "table",
                 f"{v.category}: specialist - {base}, points (* q<0.05, Benjamini-Hochberg over the table)")
            tests = render.paired_tests_display(grp)
            if len(tests):  # the finished pairs with their tests and p-values
                emit(tests.to_dict("records"), list(tests.columns), "table",
                     f"{v.category}: specialist - {base}, paired tests")
        if len(v.quantization):
            d = render.quantization_display(v.quantization)
            emit(d.to_dict("records"), list(d.columns), "table", f"{v.category}: quantized - parent, points")
    if comp.framework is not None:
        d = render.framework_display(comp.framework)
        emit(d.to_dict("records"), list(d.columns), "table", "specialization framework")
    if args.output:
        out.print(f"tables and figures in {args.output}")
    if run_id:
        out.print(f"compare run {run_id} ({redact_url(tracking.tracking_uri())})")
    return 0


def cmd_report(reg: Registry, args: argparse.Namespace) -> int:
    from pathlib import Path

    from specbench import tracking
    from specbench.analysis import report

    try:
        out_dir, run_id = report.run(reg, args.report, Path(args.output) if args.output else None, log=args.log)
    except tracking.TrackingError as exc:
        raise UsageError(str(exc)) from None
    out.print(f"report tables in {out_dir}" + (f"; report run {run_id}" if run_id else ""))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    cp = sub.add_parser("compare", help="specialist-vs-generalist matrices from MLflow runs, logged as a compare run")
    cp.add_argument("--category", type=blank_is_none, default=None, help="compare this category's runs")
    cp.add_argument("--parent-run", type=blank_is_none, default=None, help="only the cells of this category run")
    cp.add_argument("--experiment", type=blank_is_none, default=None,
                    help="only this MLflow experiment's runs, and the compare run goes there (default: runs of "
                         "every experiment, found by their tags)")
    cp.add_argument("--tags", type=tags_arg, default={}, help="only runs with these tags: key=value,key2=value2")
    cp.add_argument("--framework", type=boolean, nargs="?", const=True, default=False,
                    help="add the cross-category matrix of conf/framework.yaml")
    cp.add_argument("--output", type=blank_is_none, default=None,
                    help="also keep the tables and figures in this folder")
    cp.add_argument("--log", type=boolean, default=True, help="log them on a compare run (default true)")
    cp.add_argument("--format", choices=["table", "json"], default="table")
    cp.set_defaults(func=cmd_compare)

    rp = sub.add_parser("report", help="regenerate a paper's tables from experiments/<name>.yaml")
    rp.add_argument("report", help="a report name in experiments/ or a path to its YAML file")
    rp.add_argument("--output", type=blank_is_none, default=None,
                    help="folder for the tables (default: reports/<name>)")
    rp.add_argument("--log", type=boolean, default=True, help="also log them on a report run (default true)")
    rp.set_defaults(func=cmd_report)
