"""Per-cell MLflow logging cost: params, metrics, tags, two dicts and a 1,000-row table.

    python benchmarks/bench_tracking.py --rows 1000 --reps 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{tempfile.mkdtemp()}/bench.db")
    from specbench import tracking

    tracking.setup("bench-tracking")
    rows = [{"id": f"gsm8k/{i}", "prompt": "Question: " + "x" * 600, "output": "y" * 300, "extracted": "42",
             "reference": "42", "score.exact_match_flexible": float(i % 2)} for i in range(args.rows)]
    params = {f"vllm.p{i}": i for i in range(20)} | {f"model.m{i}": "v" for i in range(10)}
    metrics = {f"metric_{i}": float(i) for i in range(20)}
    times = []
    for _ in range(args.reps):
        with tracking.open_run("cell", name="bench") as run:  # what pipeline.cell writes, through the same API
            t0 = time.perf_counter()
            run.log_params(params)
            run.set_tags({"model": "m", "dataset": "d", "config_hash": "x" * 16})
            run.log_dict({"config": params}, "config.json")
            run.log_dict(tracking.package_versions(), "environment.json")
            run.log_metrics(metrics)
            run.log_table(rows)
            times.append(time.perf_counter() - t0)
    print("| rows | median per-cell logging (s) | max (s) |")
    print("|---|---|---|")
    print(f"| {args.rows} | {statistics.median(times):.3f} | {max(times):.3f} |")


if __name__ == "__main__":
    main()
