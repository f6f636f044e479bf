"""`specbench finetune`: LoRA into a derived registry model, as one tracked run."""

from __future__ import annotations

import argparse
import json

from rich.table import Table

from specbench.cli.common import UsageError, blank_is_none, boolean, err, out
from specbench.registry import Registry


def cmd_finetune(reg: Registry, args: argparse.Namespace) -> int:
    from specbench import finetune, tracking

    try:
        res = finetune.finetune(reg, args.model, recipe=args.recipe, force=args.force, experiment=args.experiment)
    except finetune.FinetuneError as exc:
        raise UsageError(f"cannot fine-tune {args.model}: {exc}") from None
    m = res.manifest
    row = {"model": res.key, "parent": res.parent, "recipe": res.recipe,
           "status": "reused" if res.reused else "trained", "train_s": m["train_s"],
           "tokens_per_s": round(m["tokens_per_s"] or 0, 1), "steps": m["recipe"]["steps"],
           "loss": f"{m['loss_first']:.3f} -> {m['loss_last']:.3f} (mean of the last 10: {m['loss_last_10_mean']:.3f})",
           "data": f"{m['data']['items']} items of {m['data']['dataset']}:{m['data']['split']}, "
                   f"digest {m['data']['digest']}",
           "checkpoint": str(res.path), "trained_in_run": m["run_id"], "run_id": res.run_id}
    if args.format == "json":
        print(json.dumps(row, indent=2, default=str))
    else:
        table = Table(title=f"finetune {res.parent} -> {res.key}", show_header=False)
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
        ds = m["data"]["dataset"]
        out.print(f"evaluate it: specbench evaluate --model {res.key} --dataset {ds}  ({tracking.ui_command()})",
                  highlight=False)
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    fp = sub.add_parser("finetune", help="LoRA-train a model into its derived registry model (one MLflow run)")
    fp.add_argument("--model", required=True, help="the base model, or the derived model itself")
    fp.add_argument("--recipe", default=None, type=blank_is_none,
                    help="conf/finetune/<recipe>.yaml (default or empty: the derived model's)")
    fp.add_argument("--force", type=boolean, nargs="?", const=True, default=False,
                    help="train again even if an up-to-date checkpoint exists")
    fp.add_argument("--experiment", default=None)
    fp.add_argument("--format", choices=["table", "json"], default="table")
    fp.set_defaults(func=cmd_finetune)
