"""A quiet screen: third-party chatter goes to a log file, named on screen, unless --verbose.

A CPU run of vLLM, MLflow, transformers and friends prints screens of INFO lines and
deprecation warnings that scroll the plan, the progress and the summary away.  While a
command runs, :func:`quiet_screen` sends them to ``logs/specbench-<time>-<command>-<pid>.log``
(``$SPECBENCH_LOG_DIR`` overrides the folder; ``logs/`` is git-ignored) and keeps the screen for
specbench's own output:

* ``sys.stderr`` becomes the log file, so whatever writes there later (warnings, tqdm bars,
  logging handlers made by libraries imported from now on, MLflow's included) lands in it,
  while the CLI's ``err`` console keeps the real stderr;
* handlers that libraries imported earlier already bound to the real streams are swapped for
  the log file (and put back afterwards, so in-process callers such as tests are unchanged);
* vLLM's engine core is a child process that configures its own logging from the
  environment: ``VLLM_LOGGING_CONFIG_PATH`` (a dictConfig file appending to the same log) is
  set before vLLM is imported, and ``PYTHONWARNINGS`` keeps children's deprecation warnings off
  the screen (they have no log of their own to go to);
* specbench's own warnings (``logging.getLogger("specbench...")``) stay on screen too.

``--verbose`` (or ``SPECBENCH_VERBOSE=1``, e.g. under ``mlflow run``) changes nothing: every line
goes where its library sends it.  The log is named on screen when its first line arrives, so a
command that logs nothing (a one-line usage error) prints nothing more; an empty log is removed.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console

LOG_DIR_ENV = "SPECBENCH_LOG_DIR"
VERBOSE_ENV = "SPECBENCH_VERBOSE"
# Loggers that libraries configure with their own screen handlers (MLflow at import, vLLM).
_OWN_HANDLERS = ("mlflow", "sqlalchemy.engine", "alembic", "huey", "vllm", "transformers", "datasets", "optuna")
_FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"
# What children (vLLM's engine core) inherit when the user set nothing: no deprecation chatter.
_CHILD_WARNINGS = "ignore::DeprecationWarning,ignore::FutureWarning,ignore::PendingDeprecationWarning"


def command_of(argv: list[str]) -> str:
    """The subcommand's name (for the log's name): the first word that is no option or --conf's value."""
    skip = False
    for token in argv:
        if skip:
            skip = False
        elif token == "--conf":
            skip = True
        elif not token.startswith("-"):
            return "".join(c for c in token if c.isalnum() or c in "_-") or "cli"
    return "cli"


_screen: list[TextIO] = []  # the real stderr while quiet_screen is active


@contextmanager
def on_screen() -> Iterator[None]:
    """The real stderr back for a moment: for what writes to ``sys.stderr`` for the user
    (argparse's usage errors)."""
    if not _screen:
        yield
        return
    log, sys.stderr = sys.stderr, _screen[-1]
    try:
        yield
    finally:
        sys.stderr = log


def verbose_default() -> bool:
    return os.environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def log_path(command: str) -> Path:
    """logs/specbench-<UTC time>-<command>-<pid>.log under $SPECBENCH_LOG_DIR or ./logs."""
    folder = Path(os.environ.get(LOG_DIR_ENV) or "logs")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return folder / f"specbench-{stamp}-{command}-{os.getpid()}.log"


def _vllm_config(path: Path) -> str:
    """A dictConfig file for vLLM (parent and engine-core child): INFO and up appended to the
    log; a child's errors also on its screen."""
    config = {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"plain": {"format": _FORMAT}},
        "handlers": {
            "log": {"class": "logging.FileHandler", "filename": str(path.resolve()), "mode": "a",
                    "encoding": "utf-8", "formatter": "plain", "level": "INFO"},
            "screen": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "plain",
                       "level": "ERROR"},
        },
        "loggers": {"vllm": {"handlers": ["log", "screen"], "level": "INFO", "propagate": False}},
    }
    fd, name = tempfile.mkstemp(prefix="specbench-vllm-logging-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(config, f)
    return name


class _Log:
    """The log file, standing in for ``sys.stderr``: names itself on screen at its first line,
    so a command that logs nothing (a usage error) stays one line.

    Once closed it writes to the screen it stood in for: a library that kept a reference to it
    (a handler, a stream saved by ``redirect_stderr`` in a thread that outlives the command) then
    prints to the screen rather than raising on a closed file, in a process that goes on (tests).
    """

    def __init__(self, file: TextIO, announce: Callable[[], None], screen: TextIO) -> None:
        self._file, self._announce, self._screen = file, announce, screen
        self.announced = False

    def _target(self) -> TextIO:
        if not self._file.closed:
            return self._file
        return self._screen if not getattr(self._screen, "closed", False) else sys.__stderr__

    def write(self, text: str) -> int:
        if self._file.closed:
            return self._target().write(text)
        if text and not self.announced:
            self.announced = True
            self._announce()
        return self._file.write(text)

    def flush(self) -> None:
        self._target().flush()

    def close(self) -> None:
        self._file.close()

    def __getattr__(self, name: str) -> Any:  # fileno, encoding, isatty ...: the file's (the screen's once closed)
        return getattr(self._target(), name)


@contextmanager
def quiet_screen(command: str, console: Console, verbose: bool) -> Iterator[Path | None]:
    """Run the body with third-party output in a log file (its path is yielded; None when verbose).

    ``console`` is the CLI's stderr console: it is pointed at the real stderr for the duration.
    The log is named on screen when its first line arrives (or at the end, when only vLLM's own
    handlers wrote to it); an empty log is removed.
    """
    if verbose:
        yield None
        return
    path = log_path(command).absolute()  # the command may change directory before the log is checked
    path.parent.mkdir(parents=True, exist_ok=True)
    screen, screen_out = sys.stderr, sys.stdout
    console_file = console._file  # None: rich follows sys.stderr; pin it to the real one meanwhile
    console.file = screen

    def announce() -> None:
        console.print(f"[dim]library logs and warnings: {path} (--verbose shows them here)[/dim]",
                      highlight=False, soft_wrap=True)

    log = _Log(open(path, "a", buffering=1, encoding="utf-8"), announce, screen)  # noqa: SIM115 - closed in finally
    saved_env = {k: os.environ.get(k) for k in ("VLLM_LOGGING_CONFIG_PATH", "VLLM_CONFIGURE_LOGGING",
                                                "PYTHONWARNINGS")}
    vllm_conf = _vllm_config(path)
    os.environ["VLLM_LOGGING_CONFIG_PATH"] = vllm_conf
    os.environ["VLLM_CONFIGURE_LOGGING"] = "1"
    os.environ.setdefault("PYTHONWARNINGS", _CHILD_WARNINGS)

    file_handler = logging.StreamHandler(log)  # type: ignore[arg-type]
    file_handler.setFormatter(logging.Formatter(_FORMAT))
    swapped: list[tuple[logging.Logger, list[logging.Handler]]] = []
    for name in _OWN_HANDLERS:  # handlers bound to the real streams before we started
        lg = logging.getLogger(name)
        if any(isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) in (screen, screen_out)
               for h in lg.handlers):
            swapped.append((lg, lg.handlers))
            lg.handlers = [file_handler if isinstance(h, logging.StreamHandler)
                           and getattr(h, "stream", None) in (screen, screen_out) else h for h in lg.handlers]
    root, own, vllm = logging.getLogger(), logging.getLogger("specbench"), logging.getLogger("vllm")
    root_level, own_state = root.level, (own.handlers, own.propagate, own.level)
    vllm_state = (list(vllm.handlers), vllm.propagate, vllm.level)  # vLLM may configure it from our file
    root.addHandler(file_handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)  # MLflow's INFO lines reach the log when MLflow left logging to us
    on_screen = logging.StreamHandler(screen)
    on_screen.setFormatter(logging.Formatter("%(message)s"))
    on_screen.setLevel(logging.WARNING)
    own.handlers, own.propagate = [on_screen, file_handler], False
    if own.level == logging.NOTSET:
        own.setLevel(logging.INFO)
    sys.stderr = log  # type: ignore[assignment]
    _screen.append(screen)
    try:
        yield path
    finally:
        _screen.pop()
        sys.stderr = screen
        try:
            _restore(file_handler, root_level, own_state, vllm_state, swapped, saved_env)
            _rebind(log, screen)
            Path(vllm_conf).unlink(missing_ok=True)
            log.close()
            if path.stat().st_size == 0:  # nothing to read: no file
                path.unlink(missing_ok=True)
            elif not log.announced:
                announce()
        finally:  # whatever failed above, the CLI's console follows the process's stderr again
            console._file = console_file


def _restore(file_handler: logging.Handler, root_level: int, own_state: tuple, vllm_state: tuple,
             swapped: list[tuple[logging.Logger, list[logging.Handler]]], saved_env: dict[str, str | None]) -> None:
    """Logging and environment as they were before quiet_screen."""
    root, own, vllm = logging.getLogger(), logging.getLogger("specbench"), logging.getLogger("vllm")
    root.removeHandler(file_handler)
    root.setLevel(root_level)
    own.handlers, own.propagate, own.level = own_state
    for h in vllm.handlers:
        if h not in vllm_state[0]:
            h.close()
    vllm.handlers, vllm.propagate, vllm.level = vllm_state
    for lg, handlers in swapped:
        lg.handlers = handlers
    for k, v in saved_env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _rebind(log: object, screen: object) -> None:
    """Handlers that libraries imported meanwhile bound to the log file (MLflow's) write to the
    screen again once it is closed, so a process that goes on (a test) never logs to a closed file."""
    for lg in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        for h in getattr(lg, "handlers", []):
            if isinstance(h, logging.StreamHandler) and h.stream is log:
                h.setStream(screen)  # type: ignore[arg-type]
