"""Parent side: one memory cgroup per zygote, so that a program and all its children share one bound.

RLIMIT_AS bounds each process's address space; a program that forks ten children may use ten times
as much.  Where the caller may create a memory cgroup (cgroup v2 with the memory controller enabled
for its cgroup's children, or a writable cgroup v1 memory hierarchy, typically as root), each zygote
gets its own cgroup, joins it once at start-up (so no per-program migration, which costs ~1 ms), and
every program it forks inherits it.  The parent sets the limit before each program (``memory_mb``
plus a fixed headroom for the zygote itself, which protects itself with ``oom_score_adj -1000``) and
reads the cgroup's OOM-kill counter afterwards: a kill means ``memory_limit``.  Elsewhere ``open_cgroup``
returns None with the reason, and memory stays bounded per process only.
"""

from __future__ import annotations

import os
import time

ZYGOTE_HEADROOM_MB = 64  # the zygote's own resident memory and page cache, counted in the same cgroup
_MB = 1024 * 1024


def _mounts() -> list[tuple[str, str, list[str]]]:
    """(mount point, fstype, super options) of every cgroup mount."""
    out = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype, _src, sopts = (right.split() + ["", "", ""])[:3]
            if fstype in ("cgroup", "cgroup2"):
                out.append((left.split()[4], fstype, sopts.split(",")))
    return out


def _own_paths() -> dict[str, str]:
    """This process's cgroup path per hierarchy: "0" for v2, controller names for v1."""
    out = {}
    with open("/proc/self/cgroup", encoding="utf-8") as f:
        for line in f:
            hid, ctrls, path = line.rstrip("\n").split(":", 2)
            out["0" if hid == "0" else ctrls] = path
    return out


class MemoryCgroup:
    """A cgroup this process created; ``procs`` is the file a process writes "0" to, to join it."""

    def __init__(self, path: str, version: int) -> None:
        self.path, self.version = path, version
        self.procs = os.path.join(path, "cgroup.procs")
        names = ("memory.max", "memory.swap.max", "memory.events") if version == 2 else (
            "memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.oom_control")
        self._limit, swap, self._events = (os.path.join(path, n) for n in names)
        self._swap = swap if os.path.exists(swap) else None
        self._mb: int | None = None

    def set_limit(self, memory_mb: int) -> None:
        """Bound the zygote and its current program together (before each program, when it changes)."""
        if memory_mb == self._mb:
            return
        limit = str((memory_mb + ZYGOTE_HEADROOM_MB) * _MB)
        if self.version == 2:
            files = [(self._limit, limit)] + ([(self._swap, "0")] if self._swap else [])
        else:  # v1: memsw (memory + swap) must never be below the memory limit while changing them
            files = [(self._limit, limit)] + ([(self._swap, limit)] if self._swap else [])
            if self._mb is not None and memory_mb > self._mb:
                files.reverse()
        for path, value in files:
            with open(path, "w", encoding="ascii") as f:
                f.write(value)
        self._mb = memory_mb

    def oom_kills(self) -> int:
        """How many processes the kernel has killed in this cgroup for exceeding its limit."""
        try:
            with open(self._events, encoding="ascii") as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def remove(self) -> None:
        """rmdir once the zygote's processes are gone (they may take a moment to leave)."""
        for _ in range(50):
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.01)


def open_cgroup(name: str) -> tuple[MemoryCgroup | None, str]:
    """Create a memory cgroup named ``name`` below this process's own; (cgroup, "") or (None, why not)."""
    try:
        own = _own_paths()
        mounts = _mounts()
    except OSError as exc:
        return None, f"cannot read the cgroup setup ({exc.strerror})"
    for mp, fstype, _sopts in mounts:  # cgroup v2 first: one bound, properly hierarchical
        if fstype != "cgroup2" or "0" not in own:
            continue
        parent = os.path.join(mp, own["0"].lstrip("/"))
        try:
            with open(os.path.join(parent, "cgroup.subtree_control"), encoding="ascii") as f:
                enabled = f.read().split()
        except OSError:
            continue
        if "memory" in enabled:
            return _make(os.path.join(parent, name), 2)
    for mp, fstype, sopts in mounts:
        if fstype == "cgroup" and "memory" in sopts:
            key = next((k for k in own if "memory" in k.split(",")), None)
            if key is not None:
                return _make(os.path.join(mp, own[key].lstrip("/"), name), 1)
    return None, ("no memory cgroup available (cgroup v2 without the memory controller delegated to this "
                  "process's children, and no writable cgroup v1 memory hierarchy)")


def _make(path: str, version: int) -> tuple[MemoryCgroup | None, str]:
    try:
        os.mkdir(path, 0o755)
    except OSError as exc:
        return None, f"cannot create a memory cgroup at {path} ({exc.strerror})"
    cg = MemoryCgroup(path, version)
    try:
        cg.set_limit(1024)
    except OSError as exc:
        cg.remove()
        return None, f"cannot set a memory limit in {path} ({exc.strerror})"
    return cg, ""
