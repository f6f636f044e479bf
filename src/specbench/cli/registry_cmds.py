"""`specbench list | show | mapping | validate`: what the registries hold (the answers come
from ``specbench.registry.queries``)."""

from __future__ import annotations

import argparse
import json

from rich.table import Table

from specbench.cli.common import emit, out
from specbench.registry import Registry, queries, to_plain


def cmd_list(reg: Registry, args: argparse.Namespace) -> int:
    what = args.what
    if what == "models":
        models = queries.find_models(reg, category=args.category, baselines=args.baselines, size=args.size,
                                     license=args.license)
        rows = [{
            "key": m.key, "name": m.display_name, "hf_id": m.hf_id or "(api only)",
            "params_b": m.parameters_b, "size_gb": m.size_gb, "license": m.license,
            "category": m.category, "tp": m.tensor_parallel_size, "gated": m.gated,
            "quantization": m.quantization.value, "priority": m.priority.value,
        } for m in models]
        if args.format == "json":
            rows = [to_plain(m) for m in models]
        emit(rows, ["key", "name", "hf_id", "params_b", "license", "category", "tp", "gated",
                     "quantization"], args.format, f"{len(rows)} models")
    elif what == "datasets":
        dsets = queries.find_datasets(reg, category=args.category, license=args.license)
        rows = [{
            "key": d.key, "hub_path": d.hub_path, "task_type": d.task_type.value,
            "samples": d.samples, "status": d.status.value, "main_metric": d.main_metric,
            "license": d.license, "offline": "yes" if d.offline_slice else "", "aliases": ", ".join(d.aliases),
        } for d in dsets]
        if args.format == "json":
            rows = [to_plain(d) for d in dsets]
        emit(rows, ["key", "hub_path", "task_type", "samples", "status", "main_metric", "license",
                     "offline", "aliases"], args.format, f"{len(rows)} datasets")
    else:
        cats = list(reg.categories.values())
        rows = [{
            "key": c.key, "name": c.display_name, "group": c.group, "models": len(c.models),
            "baselines": ", ".join(c.baselines), "primary": ", ".join(c.datasets.primary),
            "aliases": ", ".join(c.aliases),
        } for c in cats]
        if args.format == "json":
            rows = [to_plain(c) for c in cats]
        emit(rows, ["key", "name", "group", "models", "baselines", "primary", "aliases"], args.format,
              f"{len(rows)} categories")
    return 0


def cmd_show(reg: Registry, args: argparse.Namespace) -> int:
    obj = {"model": reg.model, "dataset": reg.dataset, "category": reg.category}[args.what](args.name)
    data = to_plain(obj)
    if args.what == "model":
        data["can_generate"] = obj.can_generate
        data["member_of"] = reg.categories_of(obj.key)
        if obj.recipe is not None:  # a derived model: is its checkpoint there yet?
            from specbench.weights import derive_command, derived_dir, derived_manifest, is_finetuned

            made = derived_manifest(obj)
            kind = "lora" if is_finetuned(obj) else "awq"
            data["checkpoint"] = (f"{derived_dir(obj)} ({kind}:{made['digest']}"
                                  + (f", trained in run {made['run_id']})" if kind == "lora" else ")") if made else
                                  f"none yet: run `{derive_command(obj)}`")
    if args.format == "json":
        print(json.dumps(data, indent=2, default=str))
        return 0
    table = Table(title=f"{args.what} {obj.key}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for k, v in data.items():
        table.add_row(k, json.dumps(v) if isinstance(v, (dict, list)) else str(v))
    out.print(table)
    return 0


def cmd_mapping(reg: Registry, args: argparse.Namespace) -> int:
    if args.format == "json":
        print(json.dumps(queries.mapping_rows(reg), indent=2))
        return 0
    from rich.tree import Tree

    tree = Tree("[bold]category -> models -> datasets[/bold]")
    for c in reg.categories.values():
        ready = [d for d in c.datasets.primary + c.datasets.secondary if reg.datasets[d].status.value == "ready"]
        node = tree.add(f"[bold]{c.key}[/bold] ({c.display_name}; {len(c.models)} models, "
                        f"{len(ready)} ready datasets)")
        node.add("models: " + ", ".join(c.models))
        if c.baselines:
            node.add("baselines: " + ", ".join(c.baselines))
        for tier in ("primary", "secondary"):
            names = getattr(c.datasets, tier)
            if not names:
                continue
            t = node.add(tier)
            total = 0
            for dk in names:
                d = reg.datasets[dk]
                mark = "[green]ready[/green]" if d.status.value == "ready" else "[yellow]planned[/yellow]"
                t.add(f"{dk}: {d.samples:,} samples, {mark}")
                total += d.samples
            t.label = f"{tier} ({total:,} samples)"
    out.print(tree)
    return 0


def cmd_validate(reg: Registry, args: argparse.Namespace) -> int:
    from specbench import extensions

    extensions.check(reg)  # main() ran it already; said here so validate says what it checks
    out.print(f"[green]ok[/green]: {len(reg.models)} models, {len(reg.datasets)} datasets, "
              f"{len(reg.categories)} categories, {len(reg.presets)} presets in {reg.root}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:

    lp = sub.add_parser("list", help="list models, datasets or categories")
    lp.add_argument("what", choices=["models", "datasets", "categories"])
    lp.add_argument("--category", help="only members of this category")
    lp.add_argument("--baselines", action="store_true", help="with --category: include its baselines")
    lp.add_argument("--size", help="parameters in billions: 7, <=8, >30, 3-8")
    lp.add_argument("--license", help="substring of the licence, e.g. apache")
    lp.add_argument("--format", choices=["table", "json"], default="table")
    lp.set_defaults(func=cmd_list)

    sp = sub.add_parser("show", help="show one model, dataset or category")
    sp.add_argument("what", choices=["model", "dataset", "category"])
    sp.add_argument("name")
    sp.add_argument("--format", choices=["table", "json"], default="table")
    sp.set_defaults(func=cmd_show)

    mp = sub.add_parser("mapping", help="category -> models -> datasets, with sample counts")
    mp.add_argument("--format", choices=["table", "json"], default="table")
    mp.set_defaults(func=cmd_mapping)

    vp = sub.add_parser("validate", help="validate every file under conf/")
    vp.set_defaults(func=cmd_validate)

