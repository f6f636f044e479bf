"""`specbench quantize`: AWQ into a derived registry model, as one tracked run."""

from __future__ import annotations

import argparse

from specbench.cli.common import UsageError, add_derive_args, print_derived
from specbench.registry import Registry


def cmd_quantize(reg: Registry, args: argparse.Namespace) -> int:
    from specbench import quantize

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
    print_derived(res, row, f"quantize {res.parent} -> {res.key}", args.format, "gsm8k")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    qp = sub.add_parser("quantize", help="AWQ-quantize a model into its derived registry model (one MLflow run)")
    add_derive_args(qp, "the full-precision parent, or the derived model itself",
                    "conf/quantization/<recipe>.yaml (default or empty: the derived model's, else awq_w4_g128)",
                    "quantize again even if an up-to-date checkpoint exists")
    qp.set_defaults(func=cmd_quantize)
