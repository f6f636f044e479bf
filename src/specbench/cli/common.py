"""What every command module shares: the consoles, one-line usage errors, tables, argument types.

Every user error ends as one line on stderr and exit code 2 (``UsageError``, or a
``RegistryError`` from the layers below); argument types accept what ``mlflow run`` passes for
an unset parameter (an empty string) as "not given".
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

# Piped output (logs, CI, `mlflow run`) gets a wide console rather than rich's 80 columns.
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)

USAGE_ERROR = 2


class UsageError(Exception):
    """Bad input from the command line; printed as one line, exit 2."""


def emit(rows: list[dict[str, Any]], columns: list[str], fmt: str, title: str) -> None:
    if fmt == "json":
        print(json.dumps(rows, indent=2, default=str))
        return
    table = Table(title=title, show_lines=False)
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*("" if r.get(c) is None else str(r.get(c)) for c in columns))
    out.print(table)


def samples_arg(text: str) -> int | None:
    """--samples N (N >= 1), or 0/all for every item."""
    if text in ("0", "all", ""):
        return None
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got '{text}'")
    return n


def print_metrics(title: str, metrics: dict[str, float], main: str | None = None) -> None:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k in sorted(metrics, key=lambda k: (k != main, k.endswith("_stderr"), k)):
        table.add_row(f"[bold]{k}[/bold]" if k == main else k, f"{metrics[k]:.4g}")
    out.print(table)


def blank_is_none(text: str) -> str | None:
    """An empty value (what `mlflow run` passes for an unset parameter) means the default."""
    return text.strip() or None


def csv_list(text: str) -> list[str] | None:
    names = [t.strip() for t in text.split(",") if t.strip()]
    return names or None


def boolean(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got '{text}'")


def optional(kind: type, minimum: float | None = None, above: float | None = None):
    """An argparse type where '' means "not given"; numbers must be finite (no NaN or inf) and at
    least ``minimum`` / greater than ``above`` when given, so a negative timeout or a NaN seed is one
    usage line, not a failure deep inside a run."""
    def parse(text: str):
        if not text.strip():
            return None
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {_kind_name(kind, minimum, above)}, got '{text}'") from None
        bad = value != value or value in (float("inf"), float("-inf"))  # NaN or infinite
        bad = bad or (minimum is not None and value < minimum) or (above is not None and value <= above)
        if bad:
            raise argparse.ArgumentTypeError(f"expected a {_kind_name(kind, minimum, above)}, got '{text}'")
        return value
    return parse


def _kind_name(kind: type, minimum: float | None, above: float | None) -> str:
    name = {"int": "whole number", "float": "number"}.get(kind.__name__, kind.__name__)
    if above == 0:
        return f"positive {name}"
    if minimum == 0:
        return f"non-negative {name}"
    if minimum is not None:
        return f"{name} >= {minimum:g}"
    if above is not None:
        return f"{name} > {above:g}"
    return f"finite {name}" if kind is float else name


def seed_arg(text: str) -> int | None:
    """--seed N: a non-negative whole number below 2**32 (what numpy, torch and vLLM accept alike)."""
    value = optional(int, minimum=0)(text)
    if value is not None and value >= 2**32:
        raise argparse.ArgumentTypeError(f"expected a non-negative whole number below 2**32, got '{text}'")
    return value


def tags_arg(text: str) -> dict[str, str]:
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(f"expected key=value pairs separated by commas, got '{part}'")
        out[key.strip()] = value.strip()
    return out


def add_endpoint_args(parser: argparse.ArgumentParser) -> None:
    """An OpenAI-compatible endpoint's options (``--engine openai``); empty: the environment's."""
    g = parser.add_argument_group("endpoint (--engine openai; docs/endpoints.md)")
    g.add_argument("--base-url", type=blank_is_none, default=None,
                   help="the endpoint, e.g. http://host:8000/v1 (default: $OPENAI_BASE_URL)")
    g.add_argument("--api-key-env", type=blank_is_none, default=None,
                   help="environment variable holding the API key (default: OPENAI_API_KEY; the key is never logged)")
    g.add_argument("--served-name", type=blank_is_none, default=None,
                   help="model name sent to the endpoint (default: the registry entry's served_name, else hf_id)")
    g.add_argument("--concurrency", type=optional(int, minimum=1), default=None,
                   help="requests in flight (default 8)")
    g.add_argument("--timeout", type=optional(float, above=0), default=None,
                   help="seconds per attempt of a request (default 600)")
    g.add_argument("--retries", type=optional(int, minimum=0), default=None,
                   help="retries of a failed request, each with --timeout (default 2); a request "
                        "that still fails fails the cell, its answered siblings stay cached")
    g.add_argument("--multiple-choice", type=blank_is_none, default=None, metavar="{loglikelihood,generate}",
                   help="answer multiple choice by choice log-likelihoods, or generate the letter (chat-only "
                        "endpoints; default: the model's registry entry)")


def endpoint_options(args: argparse.Namespace):
    """The endpoint options of a command line, checked against its engine (UsageError)."""
    from specbench.pipeline.endpoint import EndpointOptions, check

    opts = EndpointOptions(base_url=args.base_url, api_key_env=args.api_key_env, served_name=args.served_name,
                           concurrency=args.concurrency, timeout_s=args.timeout, max_retries=args.retries,
                           multiple_choice=args.multiple_choice,
                           judge_base_url=getattr(args, "judge_base_url", None),
                           judge_api_key_env=getattr(args, "judge_api_key_env", None))
    try:
        check(opts, args.engine)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return opts


def add_derive_args(parser: argparse.ArgumentParser, model_help: str, recipe_help: str, force_help: str) -> None:
    """The arguments every command that derives a registry model (quantize, finetune) takes."""
    parser.add_argument("--model", required=True, help=model_help)
    parser.add_argument("--recipe", default=None, type=blank_is_none, help=recipe_help)
    parser.add_argument("--force", type=boolean, nargs="?", const=True, default=False, help=force_help)
    parser.add_argument("--experiment", default=None)
    parser.add_argument("--format", choices=["table", "json"], default="table")


def print_derived(res: Any, row: dict[str, Any], title: str, fmt: str, dataset: str) -> None:
    """A derive command's result (``weights.DerivedResult``): its row, its notes, the entry it wrote
    and the command that evaluates it."""
    from specbench import tracking

    if fmt == "json":
        print(json.dumps(row, indent=2, default=str))
    else:
        table = Table(title=title, show_header=False)
        table.add_column("field", style="bold")
        table.add_column("value")
        for k, v in row.items():
            table.add_row(k, str(v))
        out.print(table)
    for note in res.notes:
        err.print(note, highlight=False)
    if res.wrote_entry:
        out.print(f"wrote the derived model's registry entry {res.wrote_entry}", highlight=False)
    if fmt != "json":
        out.print(f"evaluate it: specbench evaluate --model {res.key} --dataset {dataset}  "
                  f"({tracking.ui_command()})", highlight=False)
