"""The zygote's request loop: one program at a time, each in a fresh tmpfs working directory.

Stdlib-only: runs in ``python -I -B __main__.py --zygote CFG`` (see ``__main__.py``).
"""

from __future__ import annotations

import importlib
import json
import os
import tempfile
import traceback

from .libc import MS_NODEV, MS_NOSUID
from .namespaces import _Ctx, _zygote_setup
from .protocol import _TAIL_MAX, ERROR, Limits, _read_frame, _write_frame
from .supervise import _supervise

# Loaded in every zygote although the harness does not use them: when the sandbox was one module, its
# parent-side imports came along, and programs rely on finding them in memory: warm after the fork,
# and importable at all where the sandbox uid cannot read the installation (degraded mode as root).
_PRELOAD = ("atexit", "logging", "subprocess", "threading")


def main(argv: list[str]) -> None:
    """Set up isolation, say hello with the isolation report, then serve requests until stdin closes."""
    for name in _PRELOAD:
        importlib.import_module(name)
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


def _run_one(ctx: _Ctx, program: str, limits: Limits) -> dict:
    """Give the program a fresh working dir (and /dev/shm), supervise it, and remove them again."""
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
