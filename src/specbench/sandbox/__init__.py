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
:func:`isolation_report`, :func:`isolation_level`, :class:`SandboxPool` for callers that want their own
worker pool, and two exceptions that scorers let propagate (the cell fails with their one-line reason):
:class:`SandboxError` (the sandbox itself failed twice) and :class:`SandboxUnavailable` (no isolation
here and no opt-in; it fails closed).  The private /tmp, /run, home and /dev, the seccomp socket filter,
the memory cgroup and the isolation levels are described in docs/sandbox.md.

Layout: ``pool`` is the parent side (zygote handles, the pool, the default pool); ``child`` is the
stdlib-only code that runs inside the zygote (``protocol`` holds what both sides share).
"""

from __future__ import annotations

from .child.protocol import ExecResult, Limits
from .pool import (
    ALLOW_UNISOLATED_ENV,
    SandboxError,
    SandboxPool,
    SandboxUnavailable,
    isolation_level,
    isolation_report,
    run_program,
    run_programs,
)

__all__ = [
    "ALLOW_UNISOLATED_ENV",
    "ExecResult",
    "SandboxError",
    "SandboxUnavailable",
    "isolation_level",
    "Limits",
    "SandboxPool",
    "isolation_report",
    "run_program",
    "run_programs",
]
