"""Categories on a Ray cluster (``--executor ray``): two local Ray nodes (``ray.cluster_utils.Cluster``,
one CPU each) and the embedded SmolLM2.

The executor must make the same runs as the local one (cells, config hashes, statuses, one parent
with a child per cell), resume, and keep a worker killed mid-cell to that cell.  Most cells use the
transformers engine (it starts in seconds); one runs vLLM inside a Ray worker, which is what the
executor is for.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import psutil
import pytest
import yaml
from mlflow.tracking import MlflowClient
from tests.conftest import CONF

from specbench import pipeline, tracking
from specbench.pipeline.executors import make_executor
from specbench.registry import load_registry
from specbench.weights import resolve

pytestmark = pytest.mark.slow

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    """conf/ with a category of SmolLM2 and two copies of it under other keys (three models: three
    actors for two CPUs, so one waits for another to give its CPU back), MATH cut to 16 new tokens; a
    cache whose models are the embedded weights; a store."""
    root = tmp_path_factory.mktemp("ray")
    conf = root / "conf"
    shutil.copytree(CONF, conf)
    math = conf / "datasets" / "math.yaml"
    math.write_text(math.read_text().replace("max_new_tokens: 256", "max_new_tokens: 16"))
    src = yaml.safe_load((conf / "models" / "smollm2_135m.yaml").read_text())
    for copy in ("smollm2_copy", "smollm2_copy2"):
        (conf / "models" / f"{copy}.yaml").write_text(yaml.safe_dump({**src, "key": copy}))
    for key, models, datasets in (("three", ["smollm2_135m", "smollm2_copy", "smollm2_copy2"], ["arc_challenge"]),
                                  ("trio", ["smollm2_135m"], ["arc_challenge", "math", "mmlu"]),
                                  ("solo", ["smollm2_135m"], ["arc_challenge"])):
        (conf / "categories" / f"{key}.yaml").write_text(yaml.safe_dump({
            "key": key, "display_name": key, "description": "test category", "models": models, "baselines": [],
            "datasets": {"primary": datasets, "secondary": []}}))
    good = Path(resolve(load_registry(CONF).model("smollm2_135m")).path)
    models = root / "cache" / "models"
    models.mkdir(parents=True)
    (models / good.name).symlink_to(good)
    for copy in ("smollm2_copy", "smollm2_copy2"):
        (models / good.name.replace("smollm2_135m", copy)).symlink_to(good)
    mp = pytest.MonkeyPatch()
    for k, v in {"SPECBENCH_CONF": str(conf), "SPECBENCH_CACHE": str(root / "cache"),
                 "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}", "HF_HUB_OFFLINE": "1",
                 "VLLM_CPU_KVCACHE_SPACE": "1"}.items():
        mp.setenv(k, v)
    yield load_registry(conf)
    mp.undo()


@pytest.fixture(scope="module")
def cluster(env):
    """Two Ray nodes of one CPU each, the driver connected to them; shut down after the module."""
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": 100 * 2**20,
                                                      "include_dashboard": False})
    c.add_node(num_cpus=1, object_store_memory=100 * 2**20)
    ray.init(address=c.address, log_to_driver=False)
    yield c
    ray.shutdown()
    c.shutdown()


def _run(reg, category: str, experiment: str, executor: str, engine: str = "transformers", samples: int = 3):
    cplan = pipeline.plan_category(reg, category, engine=engine, samples=samples)
    tracking.setup(experiment)
    return pipeline.run_category(cplan, experiment=experiment, executor=make_executor(executor), use_cache=False)


def _runs(experiment: str) -> tuple[list, list]:
    client = MlflowClient(tracking.tracking_uri())
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return [r for r in runs if r not in children], children


def test_ray_makes_the_same_runs_as_local_and_resumes(env, cluster):
    t0 = time.perf_counter()
    local = _run(env, "three", "local", "local")
    t_local = time.perf_counter() - t0
    t0 = time.perf_counter()
    on_ray = _run(env, "three", "ray", "ray")
    t_ray = time.perf_counter() - t0
    assert local.exit_code == on_ray.exit_code == 0, on_ray.rows
    shape = {}
    for exp in ("local", "ray"):
        (parent,), children = _runs(exp)
        assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
        assert parent.data.tags["specbench.kind"] == "category" and parent.info.status == "FINISHED"
        shape[exp] = sorted((c.info.run_name, c.data.tags["specbench.config_hash"], c.info.status,
                             c.data.metrics["n_samples"], c.data.params["transformers.dtype"]) for c in children)
        assert parent.data.metrics["cells_finished"] == 3
    assert shape["local"] == shape["ray"] and len(shape["ray"]) == 3
    assert [r["cell"] for r in local.rows] == [r["cell"] for r in on_ray.rows]  # cells.json in plan order
    print(f"local {t_local:.1f}s, ray {t_ray:.1f}s")  # noqa: T201 - the figure, when run with -s
    again = _run(env, "three", "ray", "ray")  # resume: every cell kept, no run added
    assert again.parent_run_id == on_ray.parent_run_id and all(r["note"] == "resumed" for r in again.rows)
    assert len(_runs("ray")[1]) == 3


def _worker_pids() -> list[int]:
    """The Ray workers running a cell now (Ray titles them ``ray::ModelWorker.run``)."""
    out = []
    for p in psutil.process_iter(["cmdline"]):
        if any("ray::ModelWorker.run" in part for part in p.info["cmdline"] or []):
            out.append(p.pid)
    return out


def test_a_worker_killed_mid_cell_fails_that_cell_only(env, cluster):
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(r=_run(env, "trio", "kill", "ray", samples=4)))
    thread.start()
    uri = tracking.tracking_uri()
    killed, deadline = None, time.time() + 90
    while killed is None and time.time() < deadline and thread.is_alive():
        exp = MlflowClient(uri).get_experiment_by_name("kill")
        running = exp and [r for r in MlflowClient(uri).search_runs([exp.experiment_id])
                           if r.info.run_name == "smollm2_135m@math" and r.info.status == "RUNNING"]
        pids = _worker_pids()
        if running and pids:
            os.kill(pids[0], 9)  # SIGKILL of the Ray worker process serving the model, mid-cell
            killed = pids[0]
        time.sleep(0.05)
    assert killed, "the math cell was never seen running"
    thread.join(timeout=180)
    assert not thread.is_alive(), "the driver hangs after its worker was killed"
    res = result["r"]
    assert res.exit_code == 1
    status = {r["cell"]: r["status"] for r in res.rows}
    assert status == {"smollm2_135m@arc_challenge": "finished", "smollm2_135m@math": "failed",
                      "smollm2_135m@mmlu": "finished"}, [(r["cell"], r["note"]) for r in res.rows]
    (parent,), children = _runs("kill")
    by_name = {c.info.run_name: c for c in children}
    assert sorted(by_name) == sorted(status) and len(children) == 3  # one run per cell
    assert by_name["smollm2_135m@math"].info.status == "FAILED"
    assert "worker lost" in by_name["smollm2_135m@math"].data.tags["specbench.error"]
    assert parent.data.metrics["cells_failed"] == 1 and parent.info.status == "FAILED"
    # the next identical invocation redoes the failed cell in its own run and keeps the others
    again = _run(env, "trio", "kill", "ray", samples=4)
    assert again.exit_code == 0 and again.parent_run_id == parent.info.run_id
    after = {c.info.run_name: c for c in _runs("kill")[1]}
    assert len(after) == 3 and after["smollm2_135m@math"].info.run_id == by_name["smollm2_135m@math"].info.run_id
    assert after["smollm2_135m@math"].info.status == "FINISHED"


def test_vllm_serves_a_category_inside_a_ray_worker(env, cluster):
    res = _run(env, "solo", "vllm", "ray", engine="vllm", samples=2)
    assert res.exit_code == 0, res.rows
    (_, children) = _runs("vllm")
    (cell,) = children
    assert cell.info.status == "FINISHED" and cell.data.params["vllm.pipeline_parallel_size"] == "1"
    assert cell.data.metrics["n_samples"] == 2 and cell.data.metrics["model_load_s"] > 0
