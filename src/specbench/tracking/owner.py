"""Who holds an open run: its owner (host, pid, a start token) and a heartbeat.

Two invocations of the same category (two terminals, two Ray drivers) must not adopt each
other's RUNNING runs, and a run whose process died must not stay unresumable.  Every run
:func:`~specbench.tracking.runs.open_run` opens is tagged with its owner and a heartbeat
(``specbench.owner.heartbeat``, seconds since the epoch) that one daemon thread per process
refreshes every ``SPECBENCH_HEARTBEAT_S`` seconds (default 30: one small MLflow write per open
run and interval).  A RUNNING run is held (:func:`holder`) while its heartbeat is fresh (younger
than ``STALE_BEATS`` intervals) or its owner is a live process on this host; a run whose owner is
a dead pid on this host, or whose heartbeat went stale, can be taken over, and the new owner
records whom it took over from (``specbench.owner.taken_over_from``).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from specbench import settings
from specbench.tracking.naming import tag

HOST, PID, TOKEN, BEAT, INTERVAL, TAKEN_OVER, STARTED = (
    "owner.host", "owner.pid", "owner.token", "owner.heartbeat", "owner.interval", "owner.taken_over_from",
    "owner.process_start")
STALE_BEATS = 3  # a heartbeat older than this many intervals is stale (a missed write or two is not death)


def interval() -> float:
    """Seconds between heartbeats: $SPECBENCH_HEARTBEAT_S, default 30."""
    return settings.HEARTBEAT_S.get()


def owner_tags(token: str) -> dict[str, str]:
    """This process as the owner of a run opened now (token: one per opened run)."""
    return {HOST: socket.gethostname(), PID: str(os.getpid()), TOKEN: token, BEAT: f"{time.time():.0f}",
            INTERVAL: f"{interval():g}", STARTED: _process_start(os.getpid()) or ""}


def _process_start(pid: int) -> str | None:
    """When a process started (Linux: clock ticks since boot, /proc/<pid>/stat field 22): a pid
    alive now but started later is another process that reused the number.  None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def new_token() -> str:
    return uuid.uuid4().hex[:12]


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    token: str
    age_s: float | None  # of its last heartbeat

    def describe(self) -> str:
        age = "" if self.age_s is None else f", heartbeat {self.age_s:.0f} s ago"
        return f"pid {self.pid} on {self.host}{age}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def holder(status: str, tags: dict[str, str], now: float | None = None) -> Owner | None:
    """The live owner of a run, or None when nobody holds it: the run is not RUNNING, has no owner
    tags (written before owners existed), is this process's own, or its owner is gone (a dead pid on
    this host, or a heartbeat from elsewhere older than ``STALE_BEATS`` intervals).  ``tags``: as
    stored (prefixed) or as ``RunRecord.tags`` reads them (not)."""
    def get(name: str, default: str = "") -> str:
        return tags.get(tag(name), tags.get(name, default))

    if status != "RUNNING" or not get(PID):
        return None
    try:
        pid, beat, every = int(get(PID)), float(get(BEAT, "0")), float(get(INTERVAL, "30"))
    except ValueError:
        return None
    host = get(HOST)
    if host == socket.gethostname() and pid == os.getpid():
        return None  # ours (an earlier run of this process, e.g. a test): nothing to wait for
    age = (now or time.time()) - beat
    who = Owner(host, pid, get(TOKEN), age)
    if host == socket.gethostname():
        started, now_started = get(STARTED), _process_start(pid)
        reused = bool(started and now_started and started != now_started)
        return who if _pid_alive(pid) and not reused else None  # same host: the process table decides at once
    return who if age <= STALE_BEATS * every else None


class _Heartbeat:
    """One daemon thread per process refreshing every open run's heartbeat tag.  Writes that fail
    (the store down) are skipped silently: the next beat tries again, and a dead store is the
    spool's concern, not the heartbeat's."""

    def __init__(self) -> None:
        self._runs: dict[str, Callable[[str, str], None]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, run_id: str, write: Callable[[str, str], None]) -> None:
        with self._lock:
            self._runs[run_id] = write
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="specbench-heartbeat", daemon=True)
                self._thread.start()

    def remove(self, run_id: str) -> None:
        with self._lock:
            self._runs.pop(run_id, None)

    def _loop(self) -> None:
        while True:
            self._wake.wait(interval())
            with self._lock:
                runs = list(self._runs.items())
            for run_id, write in runs:
                try:
                    write(run_id, f"{time.time():.0f}")
                except Exception:  # noqa: BLE001 - see the class docstring
                    continue


HEARTBEAT = _Heartbeat()
