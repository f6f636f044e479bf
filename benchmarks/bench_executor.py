"""Categories on Ray vs the local executor: scheduling overhead per cell, and cells/hour with two
local Ray nodes vs one on the same plan (``pipeline.executors``).

- Overhead: one model x 3 datasets answered from the generation cache (no engine starts, so a
  cell is data, scoring and logging only); overhead = the driver's wall time minus the cells' own
  run durations (MLflow start/end), per cell, for the local executor and a one-node Ray cluster.
  Ray's includes the model's actor start (a worker process importing specbench), amortized.
- Throughput: two models x 2 datasets, transformers on SmolLM2, no cache: one Ray node of one CPU
  (models one after another) vs two nodes of one CPU each (both models at once).

    python benchmarks/bench_executor.py            # ~3 min on 2 cores; run under the heavy lock
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def setup(samples: int) -> Path:
    """A scratch conf/ (SmolLM2 and a copy of it under another key, two small categories), a cache
    whose models are the embedded weights, and a store; returns the scratch folder."""
    from specbench.registry import load_registry
    from specbench.weights import resolve

    tmp = Path(tempfile.mkdtemp(prefix="bench-executor-"))
    conf = tmp / "conf"
    shutil.copytree(ROOT / "conf", conf)
    math = conf / "datasets" / "math.yaml"
    math.write_text(math.read_text().replace("max_new_tokens: 256", "max_new_tokens: 16"))
    src = yaml.safe_load((conf / "models" / "smollm2_135m.yaml").read_text())
    (conf / "models" / "smollm2_copy.yaml").write_text(yaml.safe_dump({**src, "key": "smollm2_copy"}))
    for key, models, datasets in (("one", ["smollm2_135m"], ["arc_challenge", "math", "mmlu"]),
                                  ("two", ["smollm2_135m", "smollm2_copy"], ["math", "arc_challenge"])):
        (conf / "categories" / f"{key}.yaml").write_text(yaml.safe_dump({
            "key": key, "display_name": key, "description": "benchmark", "models": models, "baselines": [],
            "datasets": {"primary": datasets, "secondary": []}}))
    good = Path(resolve(load_registry(ROOT / "conf").model("smollm2_135m")).path)
    models = tmp / "cache" / "models"
    models.mkdir(parents=True)
    (models / good.name).symlink_to(good)
    (models / good.name.replace("smollm2_135m", "smollm2_copy")).symlink_to(good)
    os.environ.update({"SPECBENCH_CONF": str(conf), "SPECBENCH_CACHE": str(tmp / "cache"), "HF_HUB_OFFLINE": "1",
                       "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}"})
    return tmp


def run(category: str, experiment: str, executor: str, samples: int, cache: bool) -> tuple[float, float, int]:
    """The category once; returns (driver wall seconds, sum of its cells' run durations, cells)."""
    from specbench import pipeline, tracking
    from specbench.pipeline.executors import make_executor
    from specbench.registry import load_registry

    cplan = pipeline.plan_category(load_registry(), category, engine="transformers", samples=samples)
    tracking.setup(experiment)
    t0 = time.perf_counter()
    res = pipeline.run_category(cplan, experiment=experiment, executor=make_executor(executor), use_cache=cache)
    wall = time.perf_counter() - t0
    assert res.exit_code == 0, res.rows
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking.tracking_uri())
    cells = [client.get_run(r["run_id"]).info for r in res.rows]
    busy = sum((c.end_time - c.start_time) / 1000 for c in cells)
    return wall, busy, len(cells)


def cluster(nodes: int):
    import ray
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": 100 * 2**20,
                                                      "include_dashboard": False})
    for _ in range(nodes - 1):
        c.add_node(num_cpus=1, object_store_memory=100 * 2**20)
    ray.init(address=c.address, log_to_driver=False)
    return c


def stop(c) -> None:
    import ray

    ray.shutdown()
    c.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=4)
    args = ap.parse_args()
    tmp = setup(args.samples)
    out: list[str] = []
    try:
        run("one", "warm", "local", args.samples, cache=True)  # fills the generation cache
        wall, busy, n = run("one", "local-cached", "local", args.samples, cache=True)
        local_oh = (wall - busy) / n
        c = cluster(1)
        try:
            wall, busy, n = run("one", "ray-cached", "ray", args.samples, cache=True)
            ray_oh = (wall - busy) / n
            ray_first = wall
            wall2, busy2, _ = run("one", "ray-cached-2", "ray", args.samples, cache=True)  # workers warm
            ray_oh_warm = (wall2 - busy2) / n
            one_wall, _, cells = run("two", "ray-1node", "ray", args.samples, cache=False)
        finally:
            stop(c)
        c = cluster(2)
        try:
            two_wall, _, _ = run("two", "ray-2nodes", "ray", args.samples, cache=False)
        finally:
            stop(c)
        local_wall, _, _ = run("two", "local-nocache", "local", args.samples, cache=False)
        out += [f"scheduling overhead per cell (cached cells, {n} per run): local {local_oh:.2f} s, "
                f"ray {ray_oh:.2f} s (first run, actor start included; {ray_first:.1f} s wall), "
                f"ray {ray_oh_warm:.2f} s (second run)",
                f"cells/hour, 2 models x 2 datasets, transformers, {args.samples} samples, no cache: "
                f"ray 1 node {3600 * cells / one_wall:.0f} ({one_wall:.1f} s), "
                f"ray 2 nodes {3600 * cells / two_wall:.0f} ({two_wall:.1f} s), ratio {one_wall / two_wall:.2f}; "
                f"local executor {3600 * cells / local_wall:.0f} ({local_wall:.1f} s)"]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n".join(out))  # noqa: T201


if __name__ == "__main__":
    sys.exit(main())
