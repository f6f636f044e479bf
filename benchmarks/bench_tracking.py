"""Per-cell MLflow logging cost: params, metrics, tags, two dicts, a 1,000-row table and the
same rows as MLflow evaluation records (one trace per sample with its assessments).

The records are built in the cell and stored by a background thread (tracking.traces), so the
cell's cost is the hand-over; the store's own time is measured after the cell (``wait_for_traces``).

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
    from specbench.tracking.traces import wait_for_traces

    rows = [{"id": f"gsm8k/{i}", "prompt": "Question: " + "x" * 600, "output": "y" * 300, "extracted": "42",
             "reference": "42", "score.exact_match_strict": float(i % 3 == 0),
             "score.exact_match_flexible": float(i % 2)} for i in range(args.rows)]
    details = [{"lenient_by": "last number"} if i % 2 else {} for i in range(args.rows)]
    params = {f"vllm.p{i}": i for i in range(20)} | {f"model.m{i}": "v" for i in range(10)}
    metrics = {f"metric_{i}": float(i) for i in range(20)}
    times, stored = [], []
    for _ in range(args.reps):
        with tracking.open_run("cell", name="bench") as run:  # what pipeline.cell writes, through the same API
            t0 = time.perf_counter()
            run.log_params(params)
            run.set_tags({"model": "m", "dataset": "d", "config_hash": "x" * 16})
            run.log_dict({"config": params}, "config.json")
            run.log_dict(tracking.package_versions(), "environment.json")
            run.log_metrics(metrics)
            run.log_table(rows)
            run.log_sample_traces(rows, details)
            times.append(time.perf_counter() - t0)
        errors = wait_for_traces()
        stored.append(time.perf_counter() - t0)  # from the cell's start until its records are stored
        assert not errors, errors
    print("| rows | median per-cell logging (s) | max (s) | records stored after (median s, background) |")
    print("|---|---|---|---|")
    print(f"| {args.rows} | {statistics.median(times):.3f} | {max(times):.3f} | {statistics.median(stored):.2f} |")


if __name__ == "__main__":
    main()
