"""Zygote start-up: new namespaces, the read-only mount tree, the sandbox uid, the isolation report.

Stdlib-only: runs inside the zygote, once, before it serves any program.  Every step that fails is
recorded in the report's "degraded" note (which the parent turns into a loud warning) rather than
aborting, so the sandbox still judges programs on machines that allow less isolation.
"""

from __future__ import annotations

import errno
import os
import re
import signal

from .filesystem import _interpreter_paths, cover_dirs, home_of, private_dev, private_dirs
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
from .syscalls import install_socket_filter

_UID_BASE = 1_500_000_000  # + zygote pid: an otherwise unused uid per zygote (root mode)


def _mountinfo() -> list[tuple[str, list[str]]]:
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            mp = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), fields[4])
            out.append((mp, fields[5].split(",")))
    return out


def _remount_readonly(libc: _Libc, hidden: list[str]) -> list[str]:
    """Remount every mount of this (private) mount namespace read-only; returns failures.

    Mounts under ``hidden`` (covered by a private tmpfs) that are no longer reachable fail with EINVAL
    and do not count: nothing can reach them."""
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
            if not (exc.errno in (errno.EINVAL, errno.ENOENT) and any(mp.startswith(h + "/") for h in hidden)):
                failed.append(f"{mp}: {exc.strerror}")
    return failed


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
        self.home: str | None = None  # the user's home directory, hidden from programs
        self.oom_protected = False  # we set oom_score_adj -1000: children must reset theirs to 0


def _zygote_setup(cfg: dict, keep_fds: tuple[int, int]) -> _Ctx:
    ctx = _Ctx()
    ctx.mount_dir = cfg["mount_dir"]
    libc = ctx.libc
    notes: list[str] = []
    euid, egid = os.geteuid(), os.getegid()
    host_pid = os.getpid()  # unique among live processes: names this zygote's sandbox uid
    ns = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    mapped_uid = euid  # host uid of the programs in userns mode
    ctx.home = home_of(euid)
    if cfg.get("cgroup_procs"):
        _join_cgroup(ctx, cfg["cgroup_procs"], notes)
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
            _private_filesystem(ctx, notes)
            if ctx.tmpfs:  # only then is there somewhere writable left for the programs
                hidden = ["/dev"] + [d for d in str(ctx.report.get("private_dirs", "")).split(":") if d]
                failed = _remount_readonly(libc, hidden)
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
    seccomp_problem = install_socket_filter()  # after _if_names(): it needs a netlink socket
    if seccomp_problem:
        notes.append(f"{seccomp_problem}: Unix, netlink and packet sockets are NOT refused")
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
            "seccomp": not seccomp_problem,
            "isolation_level": ("none" if ctx.mode == "none" else
                                "full" if netns and not seccomp_problem else "namespaces"),
            "degraded": "; ".join(notes),
        }
    )
    ctx.report.setdefault("readonly_filesystem", False)
    ctx.report.setdefault("private_proc", False)
    ctx.report.setdefault("memory_cgroup", False)
    return ctx


def _join_cgroup(ctx: _Ctx, procs: str, notes: list[str]) -> None:
    """Join the memory cgroup the parent made for us; every program we fork inherits it (see ../cgroup.py).

    The OOM killer must pick the program, never us: as root we opt out (children opt back in)."""
    try:
        with open(procs, "w", encoding="ascii") as f:
            f.write("0")
        ctx.report["memory_cgroup"] = True
    except OSError as exc:
        notes.append(f"could not join the memory cgroup ({exc.strerror})")
        return
    try:
        with open("/proc/self/oom_score_adj", "w", encoding="ascii") as f:
            f.write("-1000")
        ctx.oom_protected = True
    except OSError:
        pass


def _private_filesystem(ctx: _Ctx, notes: list[str]) -> None:
    """Hide host IPC paths (/tmp, /run, homes) and /dev behind private tmpfs mounts; test tmpfs mounts."""
    libc = ctx.libc
    try:
        covered = private_dirs(root_mode=ctx.uid is not None, home=ctx.home)
        exposed = cover_dirs(libc, covered, _interpreter_paths(), [ctx.mount_dir])
        ctx.report["private_dirs"] = ":".join(covered)
        if exposed:
            ctx.report["exposed_paths"] = ":".join(exposed)
    except OSError as exc:
        notes.append(f"could not hide /tmp, /run and home directories ({exc})")
    try:
        private_dev(libc)
        ctx.report["private_dev"] = True
    except OSError as exc:
        notes.append(f"could not reduce /dev ({exc})")
    try:
        os.makedirs(ctx.mount_dir, mode=0o755, exist_ok=True)
        libc.mount("tmpfs", ctx.mount_dir, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m")
        libc.umount(ctx.mount_dir)
        ctx.tmpfs = True
    except OSError as exc:
        notes.append(f"tmpfs mounts unavailable ({exc.strerror})")


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
