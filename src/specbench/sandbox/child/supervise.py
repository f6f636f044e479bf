"""Per program, in the zygote: fork the child, enforce the wall clock and output bound, judge it.

Stdlib-only: runs inside the zygote.  The verdict comes from the harness' nonce report on its own
pipe, never from the exit status alone; afterwards everything the program started is killed, whatever
session or process group it moved to.
"""

from __future__ import annotations

import os
import select
import signal
import time

from .harness import _child
from .namespaces import _Ctx
from .protocol import (
    _TAIL_MAX,
    EARLY_EXIT,
    ERROR,
    FAILED,
    KILLED,
    MEMORY,
    OUTPUT,
    PASSED,
    TAMPERED,
    TIMEOUT,
    Limits,
)

_REPORT_MAX = 4096


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


def _supervise(ctx: _Ctx, program: str, limits: Limits, workdir: str) -> dict:
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    rep_r, rep_w = os.pipe()
    # The nonce never becomes a local of this frame: the child inherits this frame (a program can walk
    # up to it), so the child empties the box in its own memory; the zygote's copy is untouched.
    # An int, not a hex string: 32 hex digits would be easy to spot by scanning /proc/self/mem.
    box = [int.from_bytes(os.urandom(16), "big")]
    extra_nproc = 0
    if ctx.mode == "userns":
        extra_nproc = 2  # both zygote processes count under the same (user namespace, uid)
    elif ctx.mode == "none" and ctx.uid is None:
        extra_nproc = _count_user_processes(os.getuid())  # the limit is per real user here
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            _child(ctx, program, limits, workdir, out_w, err_w, rep_w, box, extra_nproc)
        finally:
            os._exit(70)
    for fd in (out_w, err_w, rep_w):
        os.close(fd)
    nonce = f"{box[0]:032x}"

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

    kind = _verdict_line(bytes(report), nonce, pid)
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


def _verdict_line(report: bytes, nonce: str, pid: int) -> str:
    """The child's last report, unless any line shows tampering.

    Every line the harness writes carries the nonce; a line without it was written by the program
    (forging or guessing), which is tampering.  Taint lines ("tampered: used gc.get_objects") count from
    any process of the program; the verdict line only from the child itself (not from a forked copy)."""
    kind = tampered = ""
    for line in report.decode("ascii", errors="replace").splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[0] == nonce:
            if parts[2].startswith("tampered") and not tampered:
                tampered = parts[2]
            if parts[1] == str(pid):
                kind = parts[2]
        else:
            return "tampered: wrote a line on the report pipe without the nonce (forgery)"
    return tampered or kind


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
