"""A seccomp filter for the zygote and everything it forks: no socket families but AF_INET/AF_INET6.

Runs inside the zygote.  The empty network namespace makes IP sockets useless, and it also covers
abstract Unix sockets, but not Unix sockets bound to a path, netlink or packet sockets: those are
refused here at ``socket()``, with EAFNOSUPPORT (an ordinary error a program can handle, not a kill).
``socketpair`` stays allowed for SOCK_STREAM only (asyncio's self-pipe and ``multiprocessing.Pipe`` use
it; a connected stream pair cannot be connected anywhere else, a datagram pair could ``sendto`` a path).
io_uring is refused as a whole, since IORING_OP_SOCKET creates sockets without the socket() call.

The filter is built with pyseccomp (ctypes over the system libseccomp), the one import here from
outside the standard library: it is a single module in the interpreter's site-packages, which ``-I``
keeps on sys.path.  When it cannot load, the caller records why and the isolation level drops to
"namespaces".
"""

from __future__ import annotations

import errno

AF_INET, AF_INET6 = 2, 10
SOCK_STREAM, SOCK_TYPE_MASK = 1, 0xF


def install_socket_filter() -> str:
    """Load the filter into this process (inherited by every child); '' on success, else why not."""
    try:
        import pyseccomp as sc
    except Exception as exc:  # noqa: BLE001 - ImportError, or OSError when libseccomp is missing
        return f"pyseccomp (libseccomp) unavailable: {type(exc).__name__}: {exc}"
    try:
        flt = sc.SyscallFilter(sc.ALLOW)
        refuse = sc.ERRNO(errno.EAFNOSUPPORT)
        for family in [f for f in range(AF_INET6) if f != AF_INET]:  # AF_UNSPEC, AF_UNIX, AF_AX25, ...
            flt.add_rule(refuse, "socket", sc.Arg(0, sc.EQ, family))
        flt.add_rule(refuse, "socket", sc.Arg(0, sc.GT, AF_INET6))  # AF_NETLINK, AF_PACKET, ...
        for typ in range(SOCK_TYPE_MASK + 1):
            if typ != SOCK_STREAM:
                flt.add_rule(refuse, "socketpair", sc.Arg(1, sc.MASKED_EQ, SOCK_TYPE_MASK, typ))
        for name in ("io_uring_setup", "io_uring_enter", "io_uring_register"):
            try:
                flt.add_rule(sc.ERRNO(errno.EPERM), name)
            except (OSError, ValueError):  # unknown to this libseccomp / architecture: nothing to refuse
                pass
        flt.load()
    except Exception as exc:  # noqa: BLE001 - any failure means: no filter, say so
        return f"seccomp filter could not be installed: {type(exc).__name__}: {exc}"
    return ""
