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

from specbench import settings
from specbench.progress import progress

from .cgroup import MemoryCgroup, open_cgroup
from .child.protocol import ERROR, MEMORY, ExecResult, Limits, _read_frame, _write_frame

log = logging.getLogger(__name__)

_ZYGOTE_START_TIMEOUT_S = 60.0
_RESULT_GRACE_S = 30.0  # beyond wall_s, before the parent gives up on a zygote
# Started as a script in a fresh isolated interpreter, not imported: see child/__main__.py.
_ZYGOTE_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "child", "__main__.py")
_warned = False  # the weaker-isolation warning is given once per process
_warn_lock = threading.Lock()
ALLOW_UNISOLATED_ENV = settings.ALLOW_UNISOLATED.name
_zygote_seq = itertools.count()


class SandboxError(RuntimeError):
    """The sandbox itself failed (a zygote died or stopped answering twice in a row): not the program's fault.

    Scorers let it propagate, so the cell fails with this reason instead of scoring the items 0."""


class SandboxUnavailable(SandboxError):
    """No isolation can be had here and the user did not opt in to running generated code without it."""


def _opted_in_by_env() -> bool:
    return settings.ALLOW_UNISOLATED.get() == "1"


def _refusal(report: dict) -> str:
    notes = [n for n in str(report.get("degraded", "")).split("; ") if n]
    missing = [n for n in notes if "unavailable" in n or "failed" in n or "disabled" in n] or notes[:1]
    return (f"specbench sandbox: refusing to run generated code without isolation "
            f"({'; '.join(missing) or 'no namespaces'}); to run it unisolated anyway, set "
            f"{ALLOW_UNISOLATED_ENV}=1 or pass SandboxPool(allow_unisolated=True)")


def _clean_env() -> dict[str, str]:
    """The zygote's whole environment: nothing of the caller's (PYTHON*, LD_*, secrets) leaks in."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/"}


def _warn_degraded(report: dict) -> None:
    """Warn once per process (log and RuntimeWarning) that the sandbox runs with weaker isolation."""
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

    def __init__(self, namespaces: bool = True, cgroup: bool = True) -> None:
        self.mount_dir = tempfile.mkdtemp(prefix="specbench-sandbox-")
        os.chmod(self.mount_dir, 0o755)  # the sandbox uid must be able to reach its mount point
        self._err = tempfile.TemporaryFile()
        self.cgroup: MemoryCgroup | None = None
        why_not = "disabled by the caller"
        if cgroup:
            self.cgroup, why_not = open_cgroup(f"specbench-sandbox-{os.getpid()}-{next(_zygote_seq)}")
        cfg = {"mount_dir": self.mount_dir, "namespaces": namespaces,
               "cgroup_procs": self.cgroup.procs if self.cgroup else None}
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
            raise SandboxError(f"sandbox zygote failed to start: {exc}; stderr: {tail}") from exc
        self.isolation: dict = hello["isolation"]  # type: ignore[index]
        if self.isolation.get("memory_cgroup"):
            self.isolation["memory_bound"] = f"cgroup v{self.cgroup.version}: program and children together"
        else:
            self.isolation["memory_bound"] = f"RLIMIT_AS per process only ({why_not})"
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
            cg = self.cgroup if self.isolation.get("memory_cgroup") else None
            if cg is not None:
                try:
                    cg.set_limit(limits.memory_mb)
                    kills = cg.oom_kills()
                except OSError as exc:  # e.g. EBUSY below the current usage: RLIMIT_AS still bounds each process
                    log.warning("sandbox: could not set the memory cgroup limit (%s); per-process bound only", exc)
                    cg = None
            _write_frame(self.proc.stdin.fileno(), {"program": program, "limits": asdict(limits)})
            res = ExecResult(**_read_frame(self.proc.stdout.fileno(), t0 + limits.wall_s + _RESULT_GRACE_S))
            if cg is not None and cg.oom_kills() > kills:  # the kernel killed part of the program's tree
                res.passed, res.status = False, MEMORY
                res.detail = (f"the program and its children exceeded {limits.memory_mb} MB together "
                              f"(cgroup OOM kill); {res.detail}".rstrip("; "))
            return res
        except (EOFError, TimeoutError, OSError, ValueError, TypeError) as exc:
            tail = self.stderr_tail()  # before close(), which closes the file it reads
            self.close(kill=True)  # it failed us: no grace period for a zygote that may be stuck
            return ExecResult(
                passed=False,
                status=ERROR,
                returncode=None,
                stdout="",
                stderr=tail,
                wall_s=time.monotonic() - t0,
                detail=f"sandbox zygote failed: {type(exc).__name__}: {exc}",
            )

    def close(self, kill: bool = False) -> None:
        """Stop the zygote: EOF on its stdin (it exits, its PID namespace and all in it die), or SIGKILL."""
        self.alive = False
        proc = getattr(self, "proc", None)
        if proc is not None and proc.poll() is None:
            try:
                if kill:
                    raise OSError("kill requested")
                proc.stdin.close()
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
        if self.cgroup is not None:
            self.cgroup.remove()
        try:
            self._err.close()
        except OSError:
            pass


class SandboxPool:
    """A set of warm zygotes, reused across calls; thread-safe.  Use as a context manager or close().

    Fails closed: where no namespaces can be had (isolation level "none"), running a program raises
    :class:`SandboxUnavailable` unless ``allow_unisolated`` (or ``SPECBENCH_SANDBOX_ALLOW_UNISOLATED=1``)
    says otherwise; ``namespaces=False`` is such an opt-in.  ``cgroup`` puts each zygote (and so every
    program and its children) in its own memory cgroup where the machine allows it."""

    def __init__(self, workers: int | None = None, namespaces: bool = True, allow_unisolated: bool | None = None,
                 cgroup: bool = True) -> None:
        self.workers = max(1, workers or _cpu_count())
        self.namespaces = namespaces
        self.allow_unisolated = allow_unisolated
        self.cgroup = cgroup
        self._free: list[_Zygote] = []
        self._all: list[_Zygote] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._closed = False

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _may_run_unisolated(self) -> bool:
        if self.allow_unisolated is not None:
            return self.allow_unisolated
        return not self.namespaces or _opted_in_by_env()

    def _acquire(self, check: bool = True) -> _Zygote:
        z = None
        with self._lock:
            if self._closed:
                raise RuntimeError("SandboxPool is closed")
            while self._free:
                cand = self._free.pop()
                if cand.alive and cand.proc.poll() is None:
                    z = cand
                    break
                cand.close()
        if z is None:
            z = _Zygote(self.namespaces, self.cgroup)
            with self._lock:
                self._all.append(z)
        if check and z.isolation.get("isolation_level") == "none" and not self._may_run_unisolated():
            self._release(z)  # harmless (it ran nothing); kept for isolation() and a later opt-in
            raise SandboxUnavailable(_refusal(z.isolation))
        _warn_degraded(z.isolation)
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
        """The isolation report of a live zygote (starting one if needed; it runs no program)."""
        z = self._acquire(check=False)
        try:
            return dict(z.isolation)
        finally:
            self._release(z)

    def isolation_level(self) -> str:
        """"full" (namespaces + seccomp socket filter), "namespaces" (no seccomp) or "none"."""
        return str(self.isolation().get("isolation_level", "none"))

    def _run_one(self, z: _Zygote | None, program: str, limits: Limits) -> tuple[_Zygote | None, ExecResult]:
        """Run on z (acquired if None); an infrastructure error is retried once on a fresh zygote."""
        for attempt in (1, 2):
            if z is None:
                z = self._acquire()
            res = z.run(program, limits)
            if res.status != ERROR:
                return z, res
            log.warning("sandbox infrastructure error (attempt %d of 2): %s", attempt, res.detail)
            z.close(kill=True)  # whatever went wrong, this zygote is not trusted again
            self._release(z)
            z = None
        raise SandboxError(f"the sandbox failed twice on the same program, last: {res.detail}; "
                           f"stderr tail: {res.stderr[-300:]!r}")

    def run(self, programs: list[str], limits: Limits = Limits(), workers: int | None = None) -> list[ExecResult]:
        """Run programs (results in input order).  Raises SandboxUnavailable / SandboxError, never scores
        the sandbox's own failures as the programs' failures."""
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
                    z, results[i] = self._run_one(z, programs[i], limits)
                    advance()
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


def isolation_level() -> str:
    """The isolation generated code gets here: "full", "namespaces" or "none" (see docs/sandbox.md).

    Starts (or reuses) a zygote of the default pool but runs nothing; never raises SandboxUnavailable."""
    return _pool().isolation_level()
