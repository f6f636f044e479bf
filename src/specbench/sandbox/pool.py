"""Parent side of the sandbox: zygote processes, the worker pool, and the public entry points.

Runs in the caller's process.  Everything the zygote needs is in the stdlib-only ``child`` package,
which this module starts as a separate isolated interpreter and talks to over length-prefixed JSON.
"""

from __future__ import annotations

import atexit
import itertools
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import asdict

from specbench.progress import progress

from .child.protocol import ERROR, ExecResult, Limits, _read_frame, _write_frame

log = logging.getLogger(__name__)

_ZYGOTE_START_TIMEOUT_S = 60.0
_RESULT_GRACE_S = 30.0  # beyond wall_s, before the parent gives up on a zygote
# Started as a script in a fresh isolated interpreter, not imported: see child/__main__.py.
_ZYGOTE_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "child", "__main__.py")
_warned = False  # the weaker-isolation warning is given once per process
_warn_lock = threading.Lock()


def _clean_env() -> dict[str, str]:
    """The zygote's whole environment: nothing of the caller's (PYTHON*, LD_*, secrets) leaks in."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/"}


def _warn_degraded(report: dict) -> None:
    global _warned
    problems = report.get("degraded", "")
    if not problems:
        return
    with _warn_lock:
        if _warned:
            return
        _warned = True
    msg = f"specbench sandbox runs with WEAKER ISOLATION here: {problems}"
    log.warning(msg)
    warnings.warn(msg, RuntimeWarning, stacklevel=3)


class _Zygote:
    """One warm server process; runs one program at a time."""

    def __init__(self, namespaces: bool = True) -> None:
        self.mount_dir = tempfile.mkdtemp(prefix="specbench-sandbox-")
        os.chmod(self.mount_dir, 0o755)  # the sandbox uid must be able to reach its mount point
        self._err = tempfile.TemporaryFile()
        cfg = {"mount_dir": self.mount_dir, "namespaces": namespaces}
        cmd = [sys.executable, "-I", "-B", _ZYGOTE_SCRIPT, "--zygote", json.dumps(cfg)]
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._err,
            env=_clean_env(),
            cwd="/",
            close_fds=True,
            start_new_session=True,  # terminal signals (Ctrl-C) go to the caller, not here
            bufsize=0,
        )
        try:
            hello = _read_frame(self.proc.stdout.fileno(), time.monotonic() + _ZYGOTE_START_TIMEOUT_S)
        except (EOFError, TimeoutError, OSError, ValueError) as exc:
            tail = self.stderr_tail()
            self.close()
            raise RuntimeError(f"sandbox zygote failed to start: {exc}; stderr: {tail}") from exc
        self.isolation: dict = hello["isolation"]  # type: ignore[index]
        self.alive = True

    def stderr_tail(self, n: int = 4000) -> str:
        try:
            self._err.seek(0, os.SEEK_END)
            size = self._err.tell()
            self._err.seek(max(0, size - n))
            return self._err.read().decode(errors="replace")
        except (OSError, ValueError):
            return ""

    def run(self, program: str, limits: Limits) -> ExecResult:
        t0 = time.monotonic()
        try:
            _write_frame(self.proc.stdin.fileno(), {"program": program, "limits": asdict(limits)})
            res = _read_frame(self.proc.stdout.fileno(), t0 + limits.wall_s + _RESULT_GRACE_S)
            return ExecResult(**res)  # type: ignore[arg-type]
        except (EOFError, TimeoutError, OSError, ValueError, TypeError) as exc:
            tail = self.stderr_tail()  # before close(), which closes the file it reads
            self.close()
            return ExecResult(
                passed=False,
                status=ERROR,
                returncode=None,
                stdout="",
                stderr=tail,
                wall_s=time.monotonic() - t0,
                detail=f"sandbox zygote failed: {type(exc).__name__}: {exc}",
            )

    def close(self) -> None:
        self.alive = False
        proc = getattr(self, "proc", None)
        if proc is not None and proc.poll() is None:
            try:
                proc.stdin.close()  # EOF: the zygote exits, its PID namespace (and all in it) dies
                proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
        if proc is not None:
            for f in (proc.stdin, proc.stdout):
                try:
                    f.close()
                except OSError:
                    pass
        try:
            os.rmdir(self.mount_dir)
        except OSError:
            pass
        try:
            self._err.close()
        except OSError:
            pass


class SandboxPool:
    """A set of warm zygotes, reused across calls; thread-safe.  Use as a context manager or close()."""

    def __init__(self, workers: int | None = None, namespaces: bool = True) -> None:
        self.workers = max(1, workers or _cpu_count())
        self.namespaces = namespaces
        self._free: list[_Zygote] = []
        self._all: list[_Zygote] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._closed = False

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _acquire(self) -> _Zygote:
        with self._lock:
            if self._closed:
                raise RuntimeError("SandboxPool is closed")
            while self._free:
                z = self._free.pop()
                if z.alive and z.proc.poll() is None:
                    return z
                z.close()
        z = _Zygote(self.namespaces)
        _warn_degraded(z.isolation)
        with self._lock:
            self._all.append(z)
        return z

    def _release(self, z: _Zygote) -> None:
        with self._lock:
            if z.alive and not self._closed:
                self._free.append(z)
                return
            if z in self._all:
                self._all.remove(z)
        z.close()

    def isolation(self) -> dict[str, bool | str]:
        z = self._acquire()
        try:
            return dict(z.isolation)
        finally:
            self._release(z)

    def run(self, programs: list[str], limits: Limits = Limits(), workers: int | None = None) -> list[ExecResult]:
        results: list[ExecResult | None] = [None] * len(programs)
        if not programs:
            return []
        n = max(1, min(workers or self.workers, len(programs)))
        counter = itertools.count()
        errors: list[BaseException] = []

        def work() -> None:
            z: _Zygote | None = None
            try:
                while not errors:
                    i = next(counter)
                    if i >= len(programs):
                        break
                    if z is None:
                        z = self._acquire()
                    results[i] = z.run(programs[i], limits)
                    advance()
                    if not z.alive:  # a dead zygote is replaced for the next program
                        self._release(z)
                        z = None
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller below
                errors.append(exc)
            finally:
                if z is not None:
                    self._release(z)

        with progress("sandbox: running programs", len(programs)) as advance:
            if n == 1:
                work()
            else:
                threads = [threading.Thread(target=work, daemon=True) for _ in range(n)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
        if errors:
            raise errors[0]
        return results  # type: ignore[return-value]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            zygotes, self._all, self._free = self._all, [], []
        for z in zygotes:
            z.close()


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


_default_pool: SandboxPool | None = None
_default_lock = threading.Lock()


def _pool() -> SandboxPool:
    global _default_pool
    with _default_lock:
        if _default_pool is None or _default_pool._pid != os.getpid() or _default_pool._closed:
            _default_pool = SandboxPool()
        return _default_pool


@atexit.register
def _shutdown() -> None:
    if _default_pool is not None and _default_pool._pid == os.getpid():
        _default_pool.close()


def run_program(program: str, limits: Limits = Limits()) -> ExecResult:
    """Run one program in the sandbox."""
    return _pool().run([program], limits, workers=1)[0]


def run_programs(programs: list[str], limits: Limits = Limits(), workers: int | None = None) -> list[ExecResult]:
    """Run programs in parallel (default: one worker per usable core); results keep the input order."""
    return _pool().run(list(programs), limits, workers=workers or _cpu_count())


def isolation_report() -> dict[str, bool | str]:
    """Which protections are active on this machine (asks a live zygote)."""
    return _pool().isolation()
