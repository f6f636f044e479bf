"""`specbench` command line: a thin shell over the packages below it, one module per command group
(``registry_cmds``, ``eval_cmds``, ``sweep_cmd``, ``quantize_cmd``, ``finetune_cmd``,
``analysis_cmds``).

Every user error ends as one line on stderr and exit code 2; nothing here holds logic that
another module should own.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from rich.markup import escape

from specbench import progress, settings
from specbench.cli import analysis_cmds, eval_cmds, finetune_cmd, quantize_cmd, quiet, registry_cmds, sweep_cmd
from specbench.cli.common import USAGE_ERROR, UsageError, err
from specbench.registry import RegistryError, load_registry

__all__ = ["USAGE_ERROR", "UsageError", "build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """argparse with bad arguments reported as the one line every other user error is (what, where,
    what would be valid) and a pointer to ``--help``, instead of the whole usage block; exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="specbench",
                                description="Specialist-vs-generalist LLM evaluation, tracked in MLflow.")
    p.add_argument("--conf", help="conf/ directory (default: ./conf, or $SPECBENCH_CONF)")
    p.add_argument("--verbose", action="store_true",
                   help="show library logs and warnings here instead of in logs/*.log (or SPECBENCH_VERBOSE=1)")
    sub = p.add_subparsers(dest="cmd", required=True)
    for group in (registry_cmds, eval_cmds, quantize_cmd, finetune_cmd, sweep_cmd, analysis_cmds):
        group.add_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in argv or quiet.verbose_default()  # known before plugins import anything
    command = quiet.command_of(argv)
    with quiet.quiet_screen(command, err, verbose):
        progress.use(err)  # batches, programs, trials and quantization steps, on the real screen
        try:
            return _main([a for a in argv if a != "--verbose"])
        finally:
            progress.use(None)


def _main(argv: list[str]) -> int:
    from specbench import extensions

    try:
        extensions.load_plugins()  # before the parser: plugin engines are --engine choices
    except RegistryError as exc:
        err.print(f"[red]error[/red]: {escape(str(exc))}", highlight=False, soft_wrap=True)
        return USAGE_ERROR
    with quiet.on_screen():  # usage errors and --help are for the user
        args = build_parser().parse_args(argv)
    try:
        settings.check()  # a bad SPECBENCH_* value: one line now, not a default or a traceback later
        reg = load_registry(args.conf)
        extensions.check(reg)  # names conf/ uses that no engine, scorer or adapter registers
        return int(args.func(reg, args) or 0)
    except (RegistryError, UsageError, settings.SettingError) as exc:
        err.print(f"[red]error[/red]: {escape(str(exc))}", highlight=False, soft_wrap=True)
        return USAGE_ERROR
    except Exception as exc:
        from specbench import tracking  # only now: importing it imports MLflow

        # another live invocation owns these runs: the user's to resolve (one line, exit 2); a store
        # that cannot be reached: a fault, not bad input (one line, exit 1); anything else: a bug, shown whole
        if not isinstance(exc, (tracking.RunInUse, tracking.TrackingUnavailable)):
            raise
        err.print(f"[red]error[/red]: {escape(str(exc))}", highlight=False, soft_wrap=True)
        return USAGE_ERROR if isinstance(exc, tracking.RunInUse) else 1


if __name__ == "__main__":
    sys.exit(main())
