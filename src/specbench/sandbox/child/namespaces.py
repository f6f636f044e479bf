"""Zygote start-up: new namespaces, the read-only mount tree, the sandbox uid, the isolation report.

Stdlib-only: runs inside the zygote, once, before it serves any program.  Every step that fails is
recorded in the report's "degraded" note (which the parent turns into a loud warning) rather than
aborting, so the sandbox still judges programs on machines that allow less isolation.
"""

from __future__ import annotations

import os
import re
import signal
import sys

from .libc import (
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    MS_BIND,
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_REMOUNT,
    MS_STRICTATIME,
    PR_SET_CHILD_SUBREAPER,
    PR_SET_DUMPABLE,
    PR_SET_PDEATHSIG,
    _Libc,
)

_UID_BASE = 1_500_000_000  # + zygote pid: an otherwise unused uid per zygote (root mode)


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
