"""`specbench quantize`: AWQ into a derived registry model, as one tracked run."""

from __future__ import annotations

import argparse
import json

from rich.table import Table

from specbench.cli.common import UsageError, blank_is_none, boolean, err, out
from specbench.registry import Registry


def cmd_quantize(reg: Registry, args: argparse.Namespace) -> int:
    from specbench import quantize, tracking

    try:
        res = quantize.quantize(reg, args.model, recipe=args.recipe, force=args.force,
                                experiment=args.experiment)
    except quantize.QuantizeError as exc:
        raise UsageError(f"cannot quantize {args.model}: {exc}") from None
    m = res.manifest
    row = {"model": res.key, "parent": res.parent, "recipe": res.recipe,
           "status": "reused" if res.reused else "quantized", "quantize_s": m["quantize_s"],
           "size_before_mb": round(m["size_before_mb"], 1), "size_after_mb": round(m["size_after_mb"], 1),
           "size_ratio": round(m["size_ratio"], 3), "calibration": f"{m['calibration']['blocks']} blocks, "
           f"digest {m['calibration']['digest']}", "checkpoint": str(res.path), "run_id": res.run_id}
    if args.format == "json":
        print(json.dumps(row, indent=2, default=str))
    else:
        table = Table(title=f"quantize {res.parent} -> {res.key}", show_header=False)
        table.add_column("field", style="bold")
        table.add_column("value")
        for k, v in row.items():
            table.add_row(k, str(v))
        out.print(table)
    for note in res.notes:
        err.print(note, highlight=False)
    if res.wrote_entry:
        out.print(f"wrote the derived model's registry entry {res.wrote_entry}", highlight=False)
    if args.format != "json":
        out.print(f"evaluate it: specbench evaluate --model {res.key} --dataset gsm8k  ({tracking.ui_command()})",
                  highlight=False)
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    qp = sub.add_parser("quantize", help="AWQ-quantize a model into its derived registry model (one MLflow run)")
    qp.add_argument("--model", required=True, help="the full-precision parent, or the derived model itself")
    qp.add_argument("--recipe", default=None, type=blank_is_none,
                    help="conf/quantization/<recipe>.yaml (default or empty: the derived model's, else awq_w4_g128)")
    qp.add_argument("--force", type=boolean, nargs="?", const=True, default=False,
                    help="quantize again even if an up-to-date checkpoint exists")
    qp.add_argument("--experiment", default=None)
    qp.add_argument("--format", choices=["table", "json"], default="table")
    qp.set_defaults(func=cmd_quantize)
