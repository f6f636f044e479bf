"""Child side of the sandbox: everything that runs inside a zygote and its forked children.

STANDARD LIBRARY ONLY and self-contained: nothing here may import specbench or a third-party package.
A zygote is ``python -I -B <this folder>/__main__.py --zygote CFG``, which loads this folder as a
package under its own name (see ``__main__.py``); the parent imports it as ``specbench.sandbox.child``
only for the definitions both sides share (``protocol``).  Modules import each other relatively, so
they work under either name.

- ``protocol``: Limits, ExecResult, status strings, length-prefixed JSON framing (shared with the parent)
- ``libc``: ctypes wrappers for mount / umount2 / prctl / capset, and kernel constants
- ``namespaces``: zygote start-up: namespaces, read-only mounts, sandbox uid, the isolation report
- ``zygote``: the request loop and each program's fresh tmpfs
- ``supervise``: fork, wall clock, output bound, verdict, process-tree kill
- ``harness``: the forked child: confinement, rlimits, the program itself, tamper checks, nonce report
"""
