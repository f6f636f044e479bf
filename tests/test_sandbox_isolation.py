"""Sandbox isolation beyond the verdict: host IPC, fail-closed, the memory cgroup, infrastructure errors.

Real subprocesses and sockets, no mocks.  The fail-closed test runs a real non-root process that cannot
create user namespaces (a seccomp filter refuses CLONE_NEWUSER) and drives the public API from it.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

if not sys.platform.startswith("linux"):
    pytest.skip("the sandbox is Linux-only", allow_module_level=True)

from specbench.sandbox import (  # noqa: E402
    ExecResult,
    Limits,
    SandboxError,
    SandboxPool,
    isolation_report,
    run_program,
)

FAST = Limits(wall_s=5.0, cpu_s=5.0, memory_mb=512, max_procs=32)


@pytest.fixture(scope="module")
def iso() -> dict:
    return isolation_report()


class _Listener:
    """A host Unix-domain server (path or abstract name) that records whether anyone connected."""

    def __init__(self, address: str | bytes) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(address)
        self.sock.listen(4)
        self.sock.settimeout(0.2)
        self.connected = threading.Event()
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connected.set()
            conn.close()

    def close(self) -> None:
        self._stop = True
        self.thread.join()
        self.sock.close()


def _connect_program(path: str, abstract: str) -> str:
    return textwrap.dedent(
        f"""\
        import socket
        for addr in ({path!r}, b"\\0" + {abstract!r}.encode()):
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(2)
                s.connect(addr)
                print("CONNECTED", addr)
            except OSError as exc:
                print("refused", addr, exc.errno)
        """
    )


def test_host_unix_sockets_are_unreachable(iso):
    if iso["isolation_level"] == "none":
        pytest.skip("no namespaces here: " + str(iso["degraded"]))
    tag = uuid.uuid4().hex[:12]
    path = f"/tmp/specbench-host-{tag}.sock"
    listeners = [_Listener(path), _Listener(b"\0specbench-abstract-" + tag.encode())]
    try:
        assert_reachable = socket.socket(socket.AF_UNIX)  # the servers really accept from the host
        assert_reachable.connect(path)
        assert_reachable.close()
        assert listeners[0].connected.wait(2)
        listeners[0].connected.clear()
        r = run_program(_connect_program(path, f"specbench-abstract-{tag}"), FAST)
        assert r.passed, r
        assert "CONNECTED" not in r.stdout and r.stdout.count("refused") == 2, r.stdout
        if iso["seccomp"]:  # refused at socket(): EAFNOSUPPORT, an ordinary error
            assert r.stdout.count(" 97") == 2, r.stdout
        time.sleep(0.3)
        assert not any(lst.connected.is_set() for lst in listeners)
    finally:
        for lst in listeners:
            lst.close()
        os.unlink(path)


def test_network_namespace_alone_covers_abstract_sockets():
    # the kernel premise behind the table in docs/sandbox.md: abstract names are per network namespace
    name = b"\0specbench-netns-" + uuid.uuid4().hex.encode()
    lst = _Listener(name)
    try:
        pid = os.fork()
        if pid == 0:
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                if libc.unshare(0x40000000) != 0:  # CLONE_NEWNET
                    os._exit(3)
                s = socket.socket(socket.AF_UNIX)
                try:
                    s.connect(name)
                    os._exit(1)
                except ConnectionRefusedError:
                    os._exit(0)
            finally:
                os._exit(2)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code == 3:
            pytest.skip("cannot unshare a network namespace here")
        assert code == 0 and not lst.connected.is_set()
    finally:
        lst.close()


def test_private_tmp_run_home_and_minimal_dev(iso, tmp_path):
    if not iso.get("private_dev"):
        pytest.skip("no private mounts here: " + str(iso["degraded"]))
    planted = [str(tmp_path / "host-secret.txt")]
    for d in ("/run", os.path.expanduser("~")):  # where the user may write (root: both)
        if os.access(d, os.W_OK):
            planted.append(os.path.join(d, f".specbench-host-{uuid.uuid4().hex[:8]}"))
    for p in planted:
        with open(p, "w") as f:
            f.write("secret")
    try:
        program = textwrap.dedent(
            f"""\
            import os, sys, json, asyncio, subprocess, threading, multiprocessing
            for p in {planted!r}:
                assert not os.path.exists(p), p
            assert sorted(os.listdir("/dev")) == ["fd", "full", "null", "random", "shm", "stderr", "stdin",
                                                  "stdout", "urandom", "zero"], os.listdir("/dev")
            assert os.urandom(4) and open("/dev/urandom", "rb").read(4)
            open("/dev/null", "w").write("x")
            open("data.txt", "w").write("cwd is writable")
            assert open("data.txt").read() == "cwd is writable"
            out = []
            t = threading.Thread(target=out.append, args=(1,)); t.start(); t.join()
            assert out == [1]
            r = subprocess.run([sys.executable, "-c", "import json; print(json.dumps([2]))"],
                               capture_output=True, text=True, timeout=20)
            assert r.stdout.strip() == "[2]", r
            assert asyncio.run(asyncio.sleep(0, result=3)) == 3   # socketpair(AF_UNIX, SOCK_STREAM)
            a, b = multiprocessing.Pipe()
            a.send(4); assert b.recv() == 4
            print("ok")
            """
        )
        r = run_program(program, Limits(wall_s=20, cpu_s=20, memory_mb=1024, max_procs=32))
        assert r.passed, r
    finally:
        for p in planted:
            os.unlink(p)


def test_one_memory_bound_for_a_program_and_its_children(iso):
    if not iso.get("memory_cgroup"):
        pytest.skip("memory is bounded per process only here: " + str(iso.get("memory_bound")))
    # four children of 80 MB each: every process stays under its own 136 MB RLIMIT_AS, the tree does not
    program = textwrap.dedent(
        """\
        import os, time
        kids = []
        for _ in range(4):
            pid = os.fork()
            if pid == 0:
                b = bytearray(80 * 2**20)
                for j in range(0, len(b), 4096):
                    b[j] = 1
                time.sleep(0.5)
                os._exit(0)
            kids.append(pid)
        for k in kids:
            os.waitpid(k, 0)
        """
    )
    r = run_program(program, Limits(wall_s=20, memory_mb=136))  # tree bound: memory_mb + 64 MB zygote headroom
    assert not r.passed and r.status == "memory_limit", r
    assert "children" in r.detail
    assert run_program(program, Limits(wall_s=20, memory_mb=1024)).passed  # the same tree fits in 1 GiB


def _zygote_server_pid(z) -> int:
    """The process that serves requests: pid 1 of the zygote's PID namespace, or the zygote itself."""
    import psutil

    kids = psutil.Process(z.proc.pid).children()
    return kids[0].pid if kids else z.proc.pid


def test_dead_zygote_between_programs_is_replaced():
    with SandboxPool(workers=1) as pool:
        assert pool.run(["pass"], FAST)[0].passed
        pool._all[0].proc.kill()
        pool._all[0].proc.wait()
        assert pool.run(["print('fresh')"], FAST)[0].stdout == "fresh\n"


def test_zygote_killed_mid_program_is_retried_on_a_fresh_one():
    with SandboxPool(workers=1) as pool:
        pool.run(["pass"], FAST)
        first = pool._all[0]
        threading.Timer(0.4, first.proc.kill).start()
        r = pool.run(["import time\ntime.sleep(1)\nprint('done')"], FAST)[0]
        assert r.passed and r.stdout == "done\n", r  # the retry ran it; the model is not blamed
        assert first not in pool._all


def test_silent_zygote_is_retried_then_the_cell_fails(monkeypatch):
    import signal

    import specbench.sandbox.pool as sandbox_pool

    monkeypatch.setattr(sandbox_pool, "_RESULT_GRACE_S", 0.5)
    stop = threading.Event()

    def freeze_every_zygote(pool: SandboxPool) -> None:  # each zygote stops answering once started
        seen: set[int] = set()
        while not stop.is_set():
            for z in list(pool._all):
                if z.proc.pid not in seen:
                    seen.add(z.proc.pid)
                    os.kill(_zygote_server_pid(z), signal.SIGSTOP)
            time.sleep(0.05)

    with SandboxPool(workers=1) as pool:
        pool.run(["pass"], FAST)
        watcher = threading.Thread(target=freeze_every_zygote, args=(pool,), daemon=True)
        watcher.start()
        try:
            with pytest.raises(SandboxError, match="failed twice"):
                pool.run(["import time\ntime.sleep(0.8)"], Limits(wall_s=1.5))
        finally:
            stop.set()
            watcher.join()


# ---- forging a pass from inside the program: each attack worked before the harness closed it ----

PROMPT = 'def add(a: int, b: int) -> int:\n    """Add two numbers."""\n'
TEST = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n    return True\n"
WRONG = "    return a - b\n"
SKIP_ASSERTS = textwrap.dedent(
    """\
    import linecache
    def _skip(frame, event, arg):
        if event == "return" and frame.f_code.co_name == "check":
            _real(None)          # leave no tracer behind for the final check
            return None
        if event == "line" and frame.f_code.co_filename == "<program>":
            n = frame.f_lineno
            while linecache.getline("<program>", n).strip().startswith("assert"):
                n += 1
            if n != frame.f_lineno:
                frame.f_lineno = n
        return _skip
    _real(_skip)
    """
)
ATTACKS = {
    # the harness' reporter function, found among all objects, called directly
    "gc_get_objects": "import gc, os\nfor _o in gc.get_objects():\n"
                      "    if type(_o).__name__ == 'function' and _o.__name__ in ('report', 'hook'):\n"
                      "        _o('ok') if _o.__name__ == 'report' else _o('specbench.report', ('ok',))\n"
                      "os._exit(0)\n",
    # ... or from os.write up: the closure cell holding it, the closure, the reporter
    "gc_get_referrers": "import gc, os\nfor _c in gc.get_referrers(os.write):\n"
                        "    for _t in (gc.get_referrers(_c) if type(_c).__name__ == 'cell' else ()):\n"
                        "        for _f in (gc.get_referrers(_t) if isinstance(_t, tuple) else ()):\n"
                        "            if getattr(_f, '__name__', '') == 'report':\n"
                        "                _f('ok')\n                os._exit(0)\n",
    # the real settrace out of the guard's closure cell
    "settrace_closure": "import sys\n_real = next(c.cell_contents for c in sys.settrace.__closure__\n"
                        "             if getattr(c.cell_contents, '__name__', '') == 'settrace')\n" + SKIP_ASSERTS,
    # the C API behind sys.settrace, through ctypes
    "pyeval_settrace": "import ctypes\n_real = lambda f: ctypes.pythonapi.PyEval_SetTrace(None, None)\n" + SKIP_ASSERTS,
    # the reporter or the nonce in a caller's frame
    "frame_walk": "import sys, os\n_f = sys._getframe()\nwhile _f is not None:\n"
                  "    for _k in ('report', 'nonce', 'hook'):\n"
                  "        if _k in _f.f_locals:\n"
                  "            _v = _f.f_locals[_k]\n"
                  "            os.write(3, f'{_v} {os.getpid()} ok\\n'.encode()) if isinstance(_v, str) else _v('ok')\n"
                  "            os._exit(0)\n"
                  "    _f = _f.f_back\n",
    # the harness' own report event, raised by the program
    "audit_event": "import sys, os\nsys.audit('specbench.report', 'ok')\nos._exit(0)\n",
    # many guesses of the nonce on the report pipe
    "nonce_spray": "import os\nfor _ in range(60):\n"
                   "    os.write(3, f'{os.urandom(16).hex()} {os.getpid()} ok\\n'.encode())\nos._exit(0)\n",
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_forging_a_pass_from_inside_the_program_fails(name):
    r: ExecResult = run_program(PROMPT + WRONG + ATTACKS[name] + "\n" + TEST + "\ncheck(add)\n", FAST)
    assert not r.passed and r.status != "passed", r
    if name == "settrace_closure":  # the guard has no closure any more: the attack itself fails
        assert r.status == "failed" and "NoneType" in r.stderr, r
    elif name != "frame_walk":  # frame_walk finds nothing to call now: it just fails its asserts
        assert r.status == "tampered", r


# ---- fail closed: a non-root user without user namespaces ----

_LAUNCHER = textwrap.dedent(
    """\
    import errno, json, os, sys
    import pyseccomp as sc
    from specbench.sandbox.child.filesystem import _blocked_ancestor, _interpreter_paths, cover_dirs
    from specbench.sandbox.child.libc import CLONE_NEWNS, CLONE_NEWUSER, MS_PRIVATE, MS_REC, _Libc

    # As root: let uid 65534 reach this interpreter (it may live under a 0700 /root), in a private mount ns.
    libc = _Libc()
    libc.call("unshare", CLONE_NEWNS)
    libc.mount(None, "/", None, MS_REC | MS_PRIVATE, None)
    blocked = sorted({a for a in map(_blocked_ancestor, _interpreter_paths()) if a})
    cover_dirs(libc, blocked, _interpreter_paths(), [])
    # No user namespaces for this process and everything it starts (inherited across exec).
    flt = sc.SyscallFilter(sc.ALLOW)
    for call in ("unshare", "clone"):
        flt.add_rule(sc.ERRNO(errno.EPERM), call, sc.Arg(0, sc.MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER))
    flt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")  # flags live in a struct: glibc falls back to clone
    flt.load()
    os.setgroups([])
    os.setresgid(65534, 65534, 65534)
    os.setresuid(65534, 65534, 65534)

    import specbench.sandbox as sb
    from specbench.data import ADAPTERS, SLICES_DIR
    from specbench.scoring.code import pass_at_k

    out = {"euid": os.geteuid()}
    try:
        out["run_program"] = sb.run_program("print('ran')").status
    except sb.SandboxUnavailable as exc:
        out["refused"] = str(exc)
    with open(SLICES_DIR / "humaneval.test.jsonl", encoding="utf-8") as f:
        problem = json.loads(f.readline())
    item = ADAPTERS["humaneval"].normalize(problem, 0, "test")
    try:
        out["scored"] = pass_at_k([item], [[problem["canonical_solution"]]])[0][1]
    except sb.SandboxUnavailable as exc:
        out["scorer_raised"] = type(exc).__name__
    out["level"] = sb.isolation_level()
    os.environ[sb.ALLOW_UNISOLATED_ENV] = "1"
    r = sb.run_program("print('ran')")
    out["opted_in"] = [r.status, r.stdout]
    out["level_opted_in"] = sb.isolation_level()
    out["scored_opted_in"] = pass_at_k([item], [[problem["canonical_solution"]]])[0][1]
    # A logged code score says which isolation it ran under: here, opted in, none.
    from mlflow import MlflowClient
    from specbench.pipeline.rescore import rescore
    from specbench.registry import load_registry

    preds = os.path.join(os.environ["SB_WORK"], "preds.jsonl")
    with open(preds, "w", encoding="utf-8") as f:
        f.write(json.dumps({"id": item.id, "outputs": [problem["canonical_solution"]]}) + "\\n")
    rescore(load_registry(os.environ["SB_CONF"]), "humaneval", preds, log=True)
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    out["logged_tags"] = [r.data.tags.get("specbench.sandbox.isolation") for r in runs]
    print("RESULT " + json.dumps(out))
    """
)


def test_non_root_without_user_namespaces_fails_closed_unless_opted_in():
    if os.geteuid() != 0:
        pytest.skip("the launcher needs root to drop to uid 65534 (run as non-root, the pool tests cover userns)")
    env = {k: v for k, v in os.environ.items() if k != "SPECBENCH_SANDBOX_ALLOW_UNISOLATED"}
    work = tempfile.mkdtemp(prefix="sb-userns-", dir="/tmp")  # uid 65534 writes its store and caches here
    os.chmod(work, 0o777)
    env.update(HOME="/tmp", SB_WORK=work, SB_CONF=str(Path(__file__).resolve().parents[1] / "conf"),
               MLFLOW_TRACKING_URI=f"sqlite:///{work}/mlflow.db", SPECBENCH_CACHE=f"{work}/cache",
               HF_HOME=f"{work}/hf", HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1")
    p = subprocess.run([sys.executable, "-c", _LAUNCHER], capture_output=True, text=True, timeout=120, env=env,
                       cwd=work)
    shutil.rmtree(work, ignore_errors=True)
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line is not None, (p.returncode, p.stdout[-2000:], p.stderr[-3000:])
    out = json.loads(line[len("RESULT "):])
    assert out["euid"] == 65534
    assert "run_program" not in out, out  # no code ran
    refusal = out["refused"]
    assert "\n" not in refusal and "user namespaces unavailable" in refusal, refusal
    assert "SPECBENCH_SANDBOX_ALLOW_UNISOLATED=1" in refusal, refusal
    assert out["scorer_raised"] == "SandboxUnavailable" and "scored" not in out  # the cell fails, no 0 scores
    assert out["level"] == "none"
    assert out["opted_in"] == ["passed", "ran\n"] and out["level_opted_in"] == "none"
    assert out["scored_opted_in"] == {"pass_at_1": 1.0}
    assert out["logged_tags"] == ["none"]  # the run of that score is tagged with its isolation
