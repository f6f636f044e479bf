"""What the parent and the zygote agree on: limits, results, status strings, and the wire format.

Stdlib-only, like the rest of this package: the parent imports it as
``specbench.sandbox.child.protocol``, the zygote under its own package name (see ``__main__.py``), so
each definition exists once for both sides.
"""

from __future__ import annotations

import json
import os
import select
import struct
import time
from dataclasses import dataclass

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

_TAIL_MAX = 64 * 1024  # stdout / stderr tails kept per program (ExecResult.stdout / .stderr)


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
    """The verdict on one program; the zygote sends exactly these fields back as a JSON object."""

    passed: bool
    status: str  # passed | failed | timeout | memory_limit | output_limit | early_exit | killed | tampered | error
    returncode: int | None  # exit status, or -signal number; None when unknown
    stdout: str  # tail, at most 64 KiB (or max_output_bytes if smaller)
    stderr: str  # tail, same bound
    wall_s: float
    detail: str = ""  # human-readable reason for the status


# Requests and answers are length-prefixed JSON frames over the zygote's stdin / stdout.
_FRAME = struct.Struct(">Q")


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
