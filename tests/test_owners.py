"""Two invocations of one category at once: a run has an owner (host, pid, token) and a heartbeat; a
live owner's runs are never adopted (the second `specbench run category` is one line, exit 2, naming
the owner), a dead owner's are taken over and say so.  Real processes, a real sqlite store; the
holding process opens the category's parent and one cell run exactly as `run category` plans them,
then waits (no engine is started by anybody)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient
from tests.conftest import ROOT

from specbench import tracking
from specbench.pipeline.category import existing_runs

ARGS = ["run", "category", "tiny_owned", "--engine", "transformers", "--samples", "2"]
# The holder: the category plan as `run category` makes it (same parser, same planning calls), its
# parent run and its first cell's run opened, then a wait until killed.
HOLDER = """
import sys, time
from specbench import pipeline, tracking
from specbench.cli import build_parser
from specbench.cli.common import endpoint_options
from specbench.pipeline.endpoint import configure_category
from specbench.registry import load_registry
args = build_parser().parse_args(sys.argv[1:])
reg = load_registry(args.conf)
cplan = pipeline.plan_category(reg, args.name, preset=args.preset, engine=args.engine, samples=args.samples,
                               seed=args.seed, models=args.models, datasets=args.datasets,
                               baselines=args.baselines, secondary=args.secondary,
                               slice_policy=args.slice_policy, judge=args.judge, judge_engine=args.judge_engine)
cplan = configure_category(cplan, endpoint_options(args))
tracking.setup(args.experiment)
digest = cplan.digest()
with tracking.open_run("category", name="category:tiny_owned",
                       tags={"category": cplan.category, "plan_digest": digest}) as parent:
    plan = cplan.runnable[0].plan
    with tracking.open_run("cell", name=plan.name, parent=parent.run_id,
                           tags={"config_hash": plan.config_hash()}) as cell:
        print(digest, parent.run_id, cell.run_id, flush=True)
        time.sleep(600)
"""


@pytest.fixture
def env(conf_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    (conf_copy / "categories" / "tiny_owned.yaml").write_text(yaml.safe_dump({
        "key": "tiny_owned", "display_name": "Tiny", "description": "test category", "models": ["smollm2_135m"],
        "baselines": [], "datasets": {"primary": ["arc_challenge"], "secondary": []}}))
    values = {"SPECBENCH_CONF": str(conf_copy), "SPECBENCH_CACHE": str(tmp_path / "cache"),
              "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "HF_HUB_OFFLINE": "1",
              "SPECBENCH_HEARTBEAT_S": "1"}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return values


def _start_holder(env: dict[str, str]) -> tuple[subprocess.Popen, str, str, str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, *ARGS], cwd=ROOT, env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line, proc.stderr.read()[-3000:]
    digest, parent, cell = line.split()
    return proc, digest, parent, cell


def test_a_live_owner_is_not_adopted_and_a_dead_one_is_taken_over(env):
    holder, digest, parent_id, cell_id = _start_holder(env)
    try:
        client = MlflowClient(env["MLFLOW_TRACKING_URI"])
        first = client.get_run(parent_id).data.tags
        assert first["specbench.owner.pid"] == str(holder.pid) and first["specbench.owner.host"] == socket.gethostname()
        deadline = time.time() + 10  # the heartbeat moves while the owner lives (every second here)
        while client.get_run(parent_id).data.tags["specbench.owner.heartbeat"] == first["specbench.owner.heartbeat"]:
            assert time.time() < deadline, "the heartbeat never moved"
            time.sleep(0.3)

        second = subprocess.run([sys.executable, "-m", "specbench.cli", *ARGS], cwd=ROOT, capture_output=True,
                                text=True, env={**os.environ, **env}, timeout=120)
        assert second.returncode == 2, second.stdout[-2000:] + second.stderr[-2000:]
        assert f"pid {holder.pid}" in second.stderr and "Traceback" not in second.stderr
        assert client.get_run(parent_id).info.status == "RUNNING"  # the holder's run untouched
        assert len(client.search_runs([client.get_run(parent_id).info.experiment_id])) == 2  # nothing new
        _, children = existing_runs(digest)
        assert children == {}  # the live owner's cell is not offered for adoption
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()

    # The owner is gone (a dead pid on this host): its runs are resumable, and the taker says whom it took from.
    _, children = existing_runs(digest)
    assert [r.run_id for r in children.values()] == [cell_id]
    with tracking.open_run("category", resume=parent_id) as again:
        assert again.resumed
    tags = client.get_run(parent_id).data.tags
    assert tags["specbench.owner.taken_over_from"].startswith(f"pid {holder.pid} on {socket.gethostname()}")
    assert tags["specbench.owner.pid"] == str(os.getpid())
    assert client.get_run(parent_id).info.status == "FINISHED"


def test_a_heartbeat_from_another_host_decides_by_its_age():
    """Another machine's pid cannot be asked: a heartbeat younger than STALE_BEATS intervals holds the
    run, an older one does not; finished runs and runs from before owners existed are held by nobody."""
    now = 1_000_000.0
    tags = {"specbench.owner.host": "elsewhere.invalid", "specbench.owner.pid": "4242", "specbench.owner.token": "t",
            "specbench.owner.heartbeat": str(now - 60), "specbench.owner.interval": "30"}
    live = tracking.holder("RUNNING", tags, now=now)
    assert live is not None and "pid 4242 on elsewhere.invalid" in live.describe()
    assert tracking.holder("RUNNING", tags, now=now + 60) is None  # 120 s > 3 x 30 s
    assert tracking.holder("FINISHED", tags, now=now) is None
    assert tracking.holder("RUNNING", {"specbench.model": "m"}, now=now) is None
