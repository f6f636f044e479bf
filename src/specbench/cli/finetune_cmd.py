"""`specbench finetune`: LoRA into a derived registry model, as one tracked run."""

from __future__ import annotations

import argparse

from specbench.cli.common import UsageError, add_derive_args, print_derived
from specbench.registry import Registry


def cmd_finetune(reg: Registry, args: argparse.Namespace) -> int:
    from specbench import finetune

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
    print_derived(res, row, f"finetune {res.parent} -> {res.key}", args.format, m["data"]["dataset"])
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    fp = sub.add_parser("finetune", help="LoRA-train a model into its derived registry model (one MLflow run)")
    add_derive_args(fp, "the base model, or the derived model itself",
                    "conf/finetune/<recipe>.yaml (default or empty: the derived model's)",
                    "train again even if an up-to-date checkpoint exists")
    fp.set_defaults(func=cmd_finetune)
