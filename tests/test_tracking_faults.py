"""The tracking server down during a cell: bounded waits, the cell's results spooled under the cache,
the parent ended, everything uploaded when the server is back.  A real `mlflow server` (sqlite and an
artifact folder in tmp, a free port) is stopped in the middle of a real `run_cell` (gsm8k from its
slice, scored and logged as always) and started again; the model is stood in for by canned answers,
as in test_lmeval_io.py: what is under test is tracking, and an engine would only add minutes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from tests.canned import CannedEngine

from specbench import pipeline, tracking
from specbench.tracking import spool

MLFLOW = str(Path(sys.executable).with_name("mlflow"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`mlflow server` in its own process group (it starts uvicorn workers as children)."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, _free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [MLFLOW, "server", "--backend-store-uri", f"sqlite:///{self.folder / 'mlflow.db'}",
             "--artifacts-destination", str(self.folder / "artifacts"), "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", "1"],
            stdout=subprocess.DEVNULL, stderr=open(self.folder / "server.log", "ab"), start_new_session=True)
        deadline = time.time() + 120
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                assert self.proc.poll() is None, (self.folder / "server.log").read_text()[-2000:]
                assert time.time() < deadline, "mlflow server did not start"
                time.sleep(0.3)
        MlflowClient(self.uri).search_experiments(max_results=1)  # serving, not only listening

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    srv = Server(tmp_path)
    srv.start()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", srv.uri)
    monkeypatch.setenv("SPECBENCH_CACHE", str(tmp_path / "cache"))
    spool.mark_up()
    try:
        yield srv
    finally:
        srv.stop()
        spool.mark_up()


@pytest.mark.slow
def test_server_down_mid_cell_spools_then_uploads(server, registry, tmp_path):
    plan = pipeline.plan_cell(registry, "smollm2_135m", "gsm8k", engine="transformers", samples=3)
    tracking.setup("faults")
    stopped: list[float] = []

    def kill_server() -> None:
        server.stop()
        stopped.append(time.time())

    with tracking.open_run("category", name="category:faults", tags={"category": "faults"}) as parent:
        result = pipeline.run_cell(plan, engine=CannedEngine("#### 18", kill_server), parent_run_id=parent.run_id)
        parent.log_metrics({"cells_finished": 1.0})
    took = time.time() - stopped[0]
    # A dead server cost one bounded wait (2 retries, 10 s timeout), not MLflow's default minutes.
    assert took < 30, f"{took:.0f} s after the server went down"
    assert result.status == tracking.FINISHED, result.error
    assert result.metrics["n_samples"] == 3 and "exact_match_strict" in result.metrics
    folders = {p.name for p in spool.spooled(server.uri)}
    assert folders == {result.run_id, parent.run_id}
    ops = [json.loads(x)["op"] for x in (spool.root() / result.run_id / "ops.jsonl").read_text().splitlines()]
    assert "metrics" in ops and "artifact" in ops and ops[-1] == "end"

    server.start()
    tracking.setup("faults")  # the next command that opens the store uploads what was spooled
    assert spool.spooled(server.uri) == [] and not spool.is_down()
    client = MlflowClient(server.uri)
    cell, top = client.get_run(result.run_id), client.get_run(parent.run_id)
    assert cell.info.status == top.info.status == "FINISHED"
    assert cell.data.metrics["exact_match_strict"] == result.metrics["exact_match_strict"]
    assert cell.data.metrics["n_samples"] == 3 and top.data.metrics["cells_finished"] == 1.0
    assert cell.data.params["model.key"] == "smollm2_135m" and cell.data.tags["mlflow.parentRunId"] == parent.run_id
    assert tracking.ArtifactReader().table(result.run_id) is not None  # samples.json, as a table
    names = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"samples.json", "config.json", "environment.json"} <= names
    logged = json.loads(cell.data.tags["mlflow.loggedArtifacts"])
    assert {"path": "samples.json", "type": "table"} in logged


@pytest.mark.slow
def test_a_server_that_stops_answering_mid_cell_costs_bounded_waits(server, registry, monkeypatch):
    """Slow rather than dead: the server's processes are frozen (SIGSTOP) mid-cell, so connections are
    accepted and never answered.  Each write waits its timeout (the user's settings here: 2 s, 1 retry),
    the cell finishes into the spool, and once the server answers again everything is uploaded once,
    including the writes whose requests it received but answered too late."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    plan = pipeline.plan_cell(registry, "smollm2_135m", "gsm8k", engine="transformers", samples=3)
    tracking.setup("slow")
    frozen: list[float] = []

    def freeze_server() -> None:
        os.killpg(server.proc.pid, signal.SIGSTOP)
        frozen.append(time.time())

    try:
        with tracking.open_run("category", name="category:slow", tags={"category": "slow"}) as parent:
            result = pipeline.run_cell(plan, engine=CannedEngine("#### 18", freeze_server), parent_run_id=parent.run_id)
        took = time.time() - frozen[0]
    finally:
        os.killpg(server.proc.pid, signal.SIGCONT)
    assert took < 30, f"{took:.0f} s after the server stopped answering"
    assert result.status == tracking.FINISHED, result.error
    assert {p.name for p in spool.spooled(server.uri)} == {result.run_id, parent.run_id}

    tracking.setup("slow")  # answering again: the spool goes up
    assert spool.spooled(server.uri) == [] and not spool.is_down()
    client = MlflowClient(server.uri)
    cell = client.get_run(result.run_id)
    assert cell.info.status == client.get_run(parent.run_id).info.status == "FINISHED"
    assert cell.data.metrics["exact_match_strict"] == result.metrics["exact_match_strict"]
    history = client.get_metric_history(result.run_id, "n_samples")
    assert [m.value for m in history] == [3.0]  # uploaded once, not once per attempt
    assert "samples.json" in {a.path for a in client.list_artifacts(result.run_id)}


def test_an_unreachable_store_fails_in_seconds(tmp_path, monkeypatch):
    """Nothing listening: MLflow's own retries, bounded by specbench's defaults, give up in seconds."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{_free_port()}")
    for key in spool.HTTP_DEFAULTS:
        monkeypatch.delenv(key, raising=False)
    t0 = time.time()
    with pytest.raises(tracking.TrackingUnavailable, match="127.0.0.1"):
        tracking.setup("faults")
    assert time.time() - t0 < 20
    # a command says so in one line, exit 1 (a fault, not bad input)
    cli = subprocess.run([sys.executable, "-m", "specbench.cli", "evaluate", "--model", "smollm2_135m", "--dataset",
                          "gsm8k", "--samples", "1", "--engine", "transformers"], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "SPECBENCH_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1"})
    lines = [ln for ln in cli.stderr.splitlines() if ln.startswith("error:")]
    assert cli.returncode == 1 and len(lines) == 1 and "cannot be reached" in lines[0], cli.stderr[-2000:]
    assert "Traceback" not in cli.stderr
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # the user's own setting wins
    spool.http_defaults()
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"


def _died() -> None:
    raise RuntimeError("the engine died mid-cell")


def versioned_engine(version: str, fail: bool = False) -> CannedEngine:
    """Canned answers from an engine that names its version (vLLM's, as a cell tags it) and can fail."""
    return CannedEngine("#### 18", _died if fail else None, version)


def test_a_cell_resumed_elsewhere_finishes_in_the_same_run(registry, mlflow_store, tmp_path, monkeypatch):
    """Another machine: another SPECBENCH_CACHE (so another absolute path of the weights) and another
    vLLM version.  The failed cell is reopened and FINISHES in its own run: weights' paths are logged
    relative to the cache and the version is a tag, so no param changes value."""
    monkeypatch.setenv("SPECBENCH_CACHE", str(tmp_path / "machine_a"))
    here = pipeline.plan_cell(registry, "smollm2_135m", "gsm8k", engine="vllm", samples=2)
    failed = pipeline.run_cell(here, engine=versioned_engine("0.10.0", fail=True), experiment="faults")
    assert failed.status == tracking.FAILED
    monkeypatch.setenv("SPECBENCH_CACHE", str(tmp_path / "machine_b"))
    there = pipeline.plan_cell(registry, "smollm2_135m", "gsm8k", engine="vllm", samples=2)
    assert str(there.weights.path) != str(here.weights.path) and there.config_hash() == here.config_hash()
    done = pipeline.run_cell(there, engine=versioned_engine("0.11.0"), run_id=failed.run_id, experiment="faults")
    assert done.status == tracking.FINISHED, done.error
    assert done.run_id == failed.run_id
    run = MlflowClient(mlflow_store).get_run(done.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["specbench.vllm.version"] == "0.11.0"
    assert run.data.params["vllm.model"].startswith("cache:") and "specbench.error" not in run.data.tags
    assert "specbench.superseded_by" not in run.data.tags


def test_a_run_whose_params_really_differ_is_superseded_not_reopened(registry, mlflow_store, monkeypatch,
                                                                     tmp_path):
    """MLflow refuses to change a param: such a run is never reopened again and again; a fresh run of
    the same cell takes its place, the old one says by which, and a category's resume skips it."""
    from specbench.pipeline.category import existing_runs

    monkeypatch.setenv("SPECBENCH_CACHE", str(tmp_path / "cache"))
    plan = pipeline.plan_cell(registry, "smollm2_135m", "gsm8k", engine="vllm", samples=2)
    with tracking.open_run("category", name="category:faults", experiment="faults",
                           tags={"category": "faults", "plan_digest": "d1"}) as parent:
        old = pipeline.run_cell(plan, engine=versioned_engine("1", fail=True), parent_run_id=parent.run_id,
                                extra_params={"endpoint.region": "eu"})
        new = pipeline.run_cell(plan, engine=versioned_engine("1"), parent_run_id=parent.run_id, run_id=old.run_id,
                                extra_params={"endpoint.region": "us"})
    assert old.status == tracking.FAILED and new.status == tracking.FINISHED, new.error
    assert new.run_id != old.run_id
    client = MlflowClient(mlflow_store)
    before, after = client.get_run(old.run_id), client.get_run(new.run_id)
    assert before.data.tags["specbench.superseded_by"] == new.run_id and before.info.status == "FAILED"
    assert after.data.tags["specbench.supersedes"] == old.run_id
    assert "endpoint.region" in after.data.tags["specbench.supersede_reason"]
    assert after.data.params["endpoint.region"] == "us" and after.data.tags["mlflow.parentRunId"] == parent.run_id
    _, children = existing_runs("d1", "faults")
    assert [r.run_id for r in children.values()] == [new.run_id]


_SAME_DATASET = """
import sys, time
from datasets import Dataset
from specbench import tracking
tracking.setup("race")
start, n = float(sys.argv[1]), int(sys.argv[2])
with tracking.open_run("cell", name=sys.argv[3]) as run:
    for i in range(n):
        ds = Dataset.from_dict({"x": [i]})
        time.sleep(max(0.0, start + 0.5 * i - time.time()))  # both processes log dataset i at the same instant
        run.log_dataset(ds, f"d{i}", "slice", f"{i:064d}")
print("ok", flush=True)
"""


def test_two_processes_logging_the_same_dataset_at_once_both_finish(mlflow_store):
    """Two Ray actors (or machines) answering the same dataset log it into one experiment at once: both
    create its dataset row, and MLflow's unique constraint fails one of them (seen in a Ray category run).
    Logging retries then, so neither cell fails for it."""
    tracking.setup("race")  # the store's tables made once, here (two processes would race on them too)
    start, n = time.time() + 8, 8  # both interpreters imported by then
    procs = [subprocess.Popen([sys.executable, "-c", _SAME_DATASET, str(start), str(n), f"cell{k}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0 and out.strip() == "ok", err[-3000:]
    client = MlflowClient(mlflow_store)
    runs = client.search_runs([client.get_experiment_by_name("race").experiment_id])
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    assert all(len(r.inputs.dataset_inputs) == n for r in runs)  # every dataset on both runs
