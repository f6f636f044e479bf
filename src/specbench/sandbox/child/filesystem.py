"""Zygote start-up, filesystem side: private /tmp, /run, home; a minimal /dev; the interpreter kept visible.

Stdlib-only: runs inside the zygote's new mount namespace, before every mount is remounted read-only.
The network namespace does not cover filesystem objects: a Unix socket or FIFO that a host process
created in /tmp, /run or a home directory stays reachable through its path.  So those directories are
covered with an empty tmpfs (hidden, not just read-only), except for the directories Python itself
needs (the interpreter may live under /root/.pyenv, a venv under /tmp), which are bind-mounted back at
their own paths.  /dev is replaced by a tmpfs holding bind mounts of the few devices Python uses.
"""

from __future__ import annotations

import os
import pwd
import sys

from .libc import MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_REC, _Libc

# Where host processes put sockets, FIFOs, agents and session buses (and users keep secrets).
PRIVATE_DIRS = ("/tmp", "/var/tmp", "/run", "/var/run", "/var/lock", "/home", "/root")
DEVICES = ("null", "zero", "full", "random", "urandom")
_DEV_LINKS = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
              "stderr": "/proc/self/fd/2"}


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


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def home_of(uid: int) -> str | None:
    """The user's home (asked before unshare: inside a user namespace our uid reads as 0)."""
    try:
        return pwd.getpwuid(uid).pw_dir
    except KeyError:
        return None


def private_dirs(root_mode: bool, home: str | None) -> list[str]:
    """The directories to cover: PRIVATE_DIRS, the user's home, and (root mode) 0700 ancestors of Python."""
    dirs = list(PRIVATE_DIRS) + ([home] if home else [])
    if root_mode:  # the sandbox uid could not traverse e.g. /root on the way to /root/.pyenv
        dirs += [a for a in map(_blocked_ancestor, _interpreter_paths()) if a is not None]
    real = []
    for d in dirs:
        r = os.path.realpath(d)
        if r != "/" and os.path.isdir(r) and r not in real:
            real.append(r)
    return sorted(r for r in real if not any(r != o and _under(r, o) for o in real))


def cover_dirs(libc: _Libc, dirs: list[str], keep: list[str], recreate: list[str]) -> list[str]:
    """Mount an empty tmpfs over each of dirs, bind back the kept paths under it; returns those exposed.

    ``recreate`` are paths (the per-program mount point) that must exist again as empty directories."""
    exposed = []
    for top in dirs:
        under = sorted({p for p in keep if _under(p, top) and p != top})
        under = [p for p in under if not any(p != q and _under(p, q) for q in under)]
        if any(p == top for p in keep):  # Python lives right there: nothing to hide safely
            continue
        fds = [os.open(p, os.O_PATH | os.O_DIRECTORY) for p in under]
        try:
            mode = "1777" if top in ("/tmp", "/var/tmp") else "0755"
            libc.mount("tmpfs", top, "tmpfs", MS_NOSUID | MS_NODEV, f"size=1m,nr_inodes=4096,mode={mode}")
            for p, fd in zip(under, fds, strict=True):
                os.makedirs(p, mode=0o755, exist_ok=True)
                libc.mount(f"/proc/self/fd/{fd}", p, None, MS_BIND | MS_REC, None)
                exposed.append(p)
        finally:
            for fd in fds:
                os.close(fd)
        for p in recreate:
            if _under(p, top):
                os.makedirs(p, mode=0o755, exist_ok=True)
    return exposed


def private_dev(libc: _Libc) -> None:
    """Replace /dev by a tmpfs with only null, zero, full, random, urandom (bind mounts), shm and fd links."""
    fds = {}
    try:
        for name in DEVICES:
            try:
                fds[name] = os.open(f"/dev/{name}", os.O_PATH)
            except OSError:
                pass
        libc.mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,nr_inodes=64,mode=0755")
        for name, fd in fds.items():
            path = f"/dev/{name}"
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o666))
            libc.mount(f"/proc/self/fd/{fd}", path, None, MS_BIND, None)
        os.mkdir("/dev/shm", 0o1777)
        os.chmod("/dev/shm", 0o1777)
        for name, target in _DEV_LINKS.items():
            os.symlink(target, f"/dev/{name}")
    finally:
        for fd in fds.values():
            os.close(fd)
