"""Two sweep worker processes on one Optuna study in a real PostgreSQL (the MLflow store in the same server),
one of them killed (SIGKILL) mid-trial: Optuna's heartbeat fails its trial, RetryHeartbeatStaleTrialCallback
(RetryFailedTrialCallback before Optuna 4.9) queues it again, and the study still finishes, every trial
recorded once under one parent run shared by both workers.

The transformers engine answers the probe (it starts in seconds; the study, storage and MLflow code is the
same as with vLLM)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import warnings

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState
from tests.conftest import CONF

HEARTBEAT_S = 2  # grace period: three beats (sweep.search.GRACE_FACTOR)


def _bare(storage: str, name: str = "s"):
    """A Sweep worker with only what the parent claim needs (no engine, weights or data)."""
    from types import SimpleNamespace

    from specbench import sweep

    w = object.__new__(sweep.Sweep)
    w.study_name, w.storage = name, sweep.make_storage(storage)
    w.objective = SimpleNamespace(parent_run_id=None)
    return w


def test_exactly_one_worker_claims_the_parent_run_and_the_others_adopt_it(tmp_path, mlflow_store, monkeypatch,
                                                                          capsys):
    from specbench import tracking
    from specbench.sweep import study as sweep_study

    monkeypatch.setattr(sweep_study, "WAIT_CREATOR_S", 1.0)
    storage = f"sqlite:///{tmp_path / 'o.db'}"
    a, b = _bare(storage), _bare(storage)
    study = optuna.create_study(storage=a.storage, study_name="s")
    assert a.parent_to_resume(study) == (None, True)  # the claim: this one opens the parent
    with tracking.open_run("sweep", name="sweep:m") as run:
        study.set_user_attr(sweep_study.PARENT_ATTR, run.run_id)
    assert b.parent_to_resume(study) == (run.run_id, False)  # recorded and in this store: adopted
    # A record from another tracking store: one new claim, keyed by the record it replaces.
    study.set_user_attr(sweep_study.PARENT_ATTR, "0" * 32)
    assert a.parent_to_resume(study) == (None, True)
    assert b.parent_to_resume(study) == (None, False)  # the winner never recorded one: its own, loudly
    assert "never recorded it" in capsys.readouterr().err


def test_a_lost_reference_is_retried_not_fatal():
    from specbench import sweep
    from specbench.sweep.objective import Objective

    obj = object.__new__(Objective)
    obj.study_name = "r"
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({}, user_attrs={"role": "reference"})
    lost = study.ask()
    study.tell(lost, state=TrialState.FAIL)  # as fail_stale_trials leaves it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        RetryHeartbeatStaleTrialCallback(max_retry=2)(study, study.trials[0])
    assert obj.check_reference(study) is None  # its retry is queued: wait, do not stop
    retry = study.ask()
    assert retry.user_attrs["role"] == "reference" and retry.number == 1
    study.tell(retry, 5.0)
    assert obj.check_reference(study).number == 1
    broken = optuna.create_study(direction="maximize")
    broken.enqueue_trial({}, user_attrs={"role": "reference"})
    broken.tell(broken.ask(), state=TrialState.FAIL)  # failed for real, no retry: the study stops
    with pytest.raises(sweep.SweepStopped, match="reference trial 0 of study 'r' failed"):
        obj.check_reference(broken)


@pytest.mark.slow
def test_two_workers_one_killed_mid_trial_share_one_study_and_one_parent_run(pg_server, tmp_path):
    storage = pg_server.database("optuna_workers")
    uri = pg_server.database("mlflow_workers")
    MlflowClient(uri).search_experiments()  # the store's tables, made once (not raced by two workers)
    spec = tmp_path / "two.yaml"
    spec.write_text(textwrap.dedent("""\
        engine: transformers
        space:
          max_num_seqs: {choices: [1, 2, 3, 4, 5, 6]}
        probe: {datasets: [math], samples: 2, max_new_tokens: 4, chunks: 1}
        constraints: {accuracy_tolerance: 1.0}
        pruner: {name: none}
        sampler: {name: random, seed: 1}
        """))
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "SPECBENCH_SWEEP_HEARTBEAT_S": str(HEARTBEAT_S)}

    def worker(n: int) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "specbench.cli", "--conf", str(CONF), "sweep", "--model", "smollm2_135m", "--spec",
             str(spec), "--storage", storage, "--study", "w", "--n-trials", str(n), "--no-preset", "--experiment",
             "workers"], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)

    doomed, survivor = worker(4), worker(4)
    doomed_id = f"{socket.gethostname()}:{doomed.pid}"
    plain = RDBStorage(storage)  # the test's own view: no heartbeat of its own
    victim = None
    deadline = time.time() + 300
    while victim is None and time.time() < deadline and doomed.poll() is None:
        try:
            trials = optuna.load_study(study_name="w", storage=plain).get_trials(deepcopy=False)
        except KeyError:  # not created yet
            trials = []
        victim = next((t for t in trials if t.state == TrialState.RUNNING and t.user_attrs.get("worker") == doomed_id
                       and t.user_attrs.get("role") != "reference" and t.user_attrs.get("mlflow_run_id")), None)
        time.sleep(0.3)
    assert victim is not None, doomed.communicate()[0][-3000:] if doomed.poll() is not None else "no trial to kill"
    os.killpg(doomed.pid, signal.SIGKILL)
    doomed.wait()
    log = survivor.communicate(timeout=600)[0]
    assert survivor.returncode == 0, log[-3000:]
    study = optuna.load_study(study_name="w", storage=plain)
    if study.get_trials(deepcopy=False)[victim.number].state == TrialState.RUNNING:
        # The survivor ran out of trials before the grace period passed: a restarted worker takes over.
        time.sleep(3 * HEARTBEAT_S + 1)
        again = worker(1)
        log = again.communicate(timeout=600)[0]
        assert again.returncode == 0, log[-3000:]

    trials = study.get_trials(deepcopy=False)
    assert [t.number for t in trials] == list(range(len(trials)))  # numbered once each, none lost
    dead = trials[victim.number]
    assert dead.state == TrialState.FAIL  # failed by the heartbeat, not left RUNNING
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE and retries[0].params == dead.params
    assert all(t.state == TrialState.COMPLETE for t in trials if t.number != victim.number), \
        [(t.number, t.state.name) for t in trials]
    assert [t.user_attrs.get("role") for t in trials].count("reference") == 1
    assert {t.user_attrs["worker"] for t in trials} >= {doomed_id}  # both workers did trials
    assert len({t.user_attrs["worker"] for t in trials}) >= 2

    client = MlflowClient(uri)
    parent_id = study.user_attrs["mlflow_parent_run_id"]
    exp = client.get_run(parent_id).info.experiment_id
    assert [r.info.run_id for r in client.search_runs([exp], "tags.`specbench.kind` = 'sweep'")] == [parent_id]
    children = client.search_runs([exp], f"tags.`mlflow.parentRunId` = '{parent_id}'")
    run_ids = [t.user_attrs["mlflow_run_id"] for t in trials]
    assert sorted(r.info.run_id for r in children) == sorted(run_ids)  # one child per trial, one parent for all
    assert {r.data.tags["specbench.worker"] for r in children} == {t.user_attrs["worker"] for t in trials}
    lost = client.get_run(dead.user_attrs["mlflow_run_id"])
    assert lost.info.status == "FAILED" and lost.data.tags["specbench.error_type"] == "WorkerLost"
    assert doomed_id in lost.data.tags["specbench.error"]
