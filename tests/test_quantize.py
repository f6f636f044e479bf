"""AWQ quantization: unpacking against AutoAWQ's own dequantization, refusals, and a real
quantized SmolLM2 evaluated beside its parent.

The slow part needs the quantized checkpoint.  When `specbench quantize --model smollm2_135m`
has already run (an up-to-date checkpoint in the specbench cache) the tests reuse it and only
log a "reused" quantize run; otherwise they quantize with a reduced calibration set (4 blocks
of 64 tokens instead of 64 x 128) into a scratch cache, so that no test writes a weak
checkpoint where the real one belongs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient
from tests.conftest import CONF, ROOT

from specbench import cli, pipeline, quantize, tracking
from specbench.pipeline import CellUnavailable, plan_cell, stale_checkpoint
from specbench.registry import RegistryError, load_registry, to_plain
from specbench.weights import (
    FLOAT_DIR,
    PACKED_DIR,
    QUANTIZED_MANIFEST,
    QUANTIZER_REVISION,
    SIMULATED_SOURCE,
    derived_manifest,
    gpu_count,
    resolve,
    runnable_reason,
)

torch = pytest.importorskip("torch")


# -- unpacking ------------------------------------------------------------------------------------

@pytest.mark.parametrize("group_size", [32, 64, 128])
def test_unpacked_weights_equal_autoawqs_own_dequantization(group_size):
    pytest.importorskip("awq")
    from awq.modules.linear.gemm import WQLinear_GEMM
    from awq.modules.linear.gemv import WQLinear_GEMV
    from awq.quantize.quantizer import AwqQuantizer
    from awq.utils.packing_utils import dequantize_gemm

    torch.manual_seed(group_size)
    linear = torch.nn.Linear(384, 192, bias=False).half()
    original = linear.weight.data.clone()
    # AutoAWQ's own group-wise zero-point quantization, then its own packing (both layouts).
    awq = SimpleNamespace(group_size=group_size, zero_point=True, w_bit=4)
    linear.weight.data, scales, zeros = AwqQuantizer.pseudo_quantize_tensor(awq, linear.weight.data)
    gemm = WQLinear_GEMM.from_linear(linear, 4, group_size, scales=scales.t().contiguous(),
                                     zeros=zeros.t().contiguous())
    gemv = WQLinear_GEMV.from_linear(linear, 4, group_size, scales=scales, zeros=zeros)

    reference = dequantize_gemm(gemm.qweight, gemm.qzeros, gemm.scales, 4, group_size).t()
    mine = quantize.unpack_linear(gemm.qweight, gemm.qzeros, gemm.scales, group_size=group_size)
    assert mine.shape == original.shape and mine.dtype == torch.float16
    assert torch.equal(mine, reference)  # bit for bit
    assert torch.equal(quantize.unpack_linear(gemv.qweight, gemv.qzeros, gemv.scales, group_size=group_size,
                                              version="GEMV"), reference)
    # ...and those are the quantized weights: 16 levels per group, not the original values
    assert torch.allclose(mine.float(), linear.weight.data.float(), atol=2e-3)
    assert not torch.equal(mine, original)
    groups = mine.float().reshape(192, -1, group_size)
    assert max(len(torch.unique(g)) for g in groups.reshape(-1, group_size)) <= 16


def _scale_search(quantizer_cls: type, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """One AutoAWQ scale search on a small Linear, on this CPU: (weight before, weight after)."""
    torch.manual_seed(seed)
    linear = torch.nn.Linear(128, 64, bias=False)
    x = torch.randn(1, 32, 128)
    q = object.__new__(quantizer_cls)  # the search needs only these settings, not a model
    q.group_size, q.zero_point, q.w_bit, q.duo_scaling = 64, True, 4, True
    q.n_parallel_calib_samples, q.max_chunk_memory = None, 1 << 30
    before = linear.weight.detach().clone()
    with torch.no_grad():  # as in AutoAWQ's caller
        q._compute_best_scale(x, linear.weight.abs().mean(0), x.abs().view(-1, 128).mean(0), linear, [linear],
                              linear(x), {})
    return before, linear.weight.detach()


def test_cpu_scale_search_leaves_the_weights_as_they_were():
    pytest.importorskip("awq")
    from awq.quantize.quantizer import AwqQuantizer

    before, after = _scale_search(quantize.cpu_safe_quantizer())
    assert torch.equal(before, after)
    before, after = _scale_search(AwqQuantizer)  # the bug it works around, still there in 0.2.9
    assert not torch.allclose(before, after), "AutoAWQ fixed its CPU snapshot: drop cpu_safe_quantizer"


# -- registry and refusals --------------------------------------------------------------------------

def test_derived_model_inherits_its_parents_facts(registry):
    awq, parent = registry.model("smollm2_135m_awq"), registry.model("smollm2_135m")
    assert (awq.parent, awq.recipe, awq.quantization.value) == ("smollm2_135m", "awq_w4_g64", "awq")
    for fact in ("hf_id", "parameters_b", "context_window", "max_model_len", "num_attention_heads", "instruct",
                 "category", "preset", "license"):
        assert getattr(awq, fact) == getattr(parent, fact), fact
    assert awq.offline is None and awq.size_gb != parent.size_gb and awq.display_name != parent.display_name
    assert "smollm2_135m_awq" in registry.categories["efficiency_optimized"].models
    assert ("smollm2_135m_awq", "smollm2_135m") in quantize.quantized_pairs(registry)
    assert ("biomistral_7b", "biomistral_7b_unquantized") in quantize.quantized_pairs(registry)


def test_entry_written_for_a_new_derived_model_loads_and_inherits(conf_copy):
    reg = load_registry(conf_copy)
    target = quantize.pick_target(reg, "qwen25_0_5b")  # no derived entry yet: default recipe
    assert (target.key, target.spec.key, target.derived) == ("qwen25_0_5b_awq", quantize.DEFAULT_RECIPE, None)
    path = quantize.write_entry(reg, target, size_gb=0.41)
    new = load_registry(conf_copy).model("qwen25_0_5b_awq")
    assert path.name == "qwen25_0_5b_awq.yaml" and new.recipe == "awq_w4_g128" and new.size_gb == 0.41
    assert new.hf_id == reg.model("qwen25_0_5b").hf_id and new.parameters_b == reg.model("qwen25_0_5b").parameters_b
    with pytest.raises(quantize.QuantizeError, match="made with recipe awq_w4_g64, not awq_w4_g128"):
        quantize.pick_target(reg, "smollm2_135m", recipe="awq_w4_g128")  # its entry names awq_w4_g64


def test_checkpoint_from_an_older_quantizer_reads_as_stale(registry, monkeypatch, tmp_path):
    monkeypatch.setenv("SPECBENCH_CACHE", str(tmp_path))
    model = registry.model("smollm2_135m_awq")
    folder = tmp_path / "models" / model.key
    folder.mkdir(parents=True)
    manifest = {"recipe_digest": registry.quantization(model.recipe).digest()}  # revision 1 wrote none
    (folder / QUANTIZED_MANIFEST).write_text(json.dumps(manifest))
    assert "older specbench quantizer" in stale_checkpoint(registry, model)
    (folder / QUANTIZED_MANIFEST).write_text(json.dumps(manifest | {"quantizer_revision": QUANTIZER_REVISION}))
    assert stale_checkpoint(registry, model) is None


def test_recipe_that_calibrates_on_the_evaluation_split_is_refused(conf_copy):
    path = conf_copy / "quantization" / "awq_w4_g64.yaml"
    data = yaml.safe_load(path.read_text())
    data["calibration"]["split"] = "test"  # gsm8k's evaluation split
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(RegistryError, match="evaluation split"):
        load_registry(conf_copy)


def test_unknown_recipe_is_named_with_a_suggestion(conf_copy):
    path = conf_copy / "models" / "smollm2_135m_awq.yaml"
    path.write_text(path.read_text().replace("recipe: awq_w4_g64", "recipe: awq_w4_g6"))
    with pytest.raises(RegistryError, match="awq_w4_g64"):
        load_registry(conf_copy)


def test_quantize_of_a_model_that_cannot_be_loaded_here_is_one_line_exit_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "specbench.cli", "quantize", "--model", "claude_sonnet"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120,
                       env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'm.db'}"})
    assert r.returncode == 2, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: cannot quantize claude_sonnet") and "API-only" in lines[-1]
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize(("model", "env", "expect"), [
    ("biomistral_7b", {}, "already awq-quantized"),
    ("qwen25_0_5b", {"HF_HUB_OFFLINE": "1"}, "hub is offline"),
])
def test_quantize_refusals_say_why(model, env, expect, capsys, monkeypatch, tmp_path):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'm.db'}")
    assert cli.main(["--conf", str(CONF), "quantize", "--model", model]) == 2
    err = capsys.readouterr().err
    assert expect in err and len(err.strip().splitlines()) <= 2  # one line (rich may wrap it)


def test_quantize_run_adopts_the_project_run_and_prefixes_its_tags(registry, mlflow_store, monkeypatch):
    """What a (reused) quantization records, without AutoAWQ: the `mlflow run` project run is
    adopted and named, specbench's tags are prefixed, the commit is MLflow's own tag."""
    from specbench.quantize.run import _open_run, _record

    client = MlflowClient(mlflow_store)
    exp = client.create_experiment("test-quantize-record")
    launcher = client.create_run(exp).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", launcher)
    spec = registry.quantization("awq_w4_g64")
    manifest = {"recipe": to_plain(spec), "recipe_digest": spec.digest(), "parent": "smollm2_135m",
                "parent_revision": "abc", "digest": "0123456789abcdef", "autoawq": "0.2.9", "device": "cpu",
                "calibration": {"digest": "fedcba9876543210", "source": "slice:gsm8k.train", "texts": 50,
                                "blocks": 64},
                "quantize_s": 1.5, "size_ratio": 0.21, "peak_rss_mb": None}
    with _open_run(quantize.pick_target(registry, "smollm2_135m"), None) as run:
        _record(run, manifest, reused=True)
    assert run.run_id == launcher
    stored = client.get_run(launcher)
    t, p, m = stored.data.tags, stored.data.params, stored.data.metrics
    assert t["mlflow.runName"] == "quantize:smollm2_135m_awq" and t["specbench.kind"] == "quantize"
    assert {k: t[f"specbench.{k}"] for k in ("model", "parent", "recipe", "quantization", "reused")} == {
        "model": "smollm2_135m_awq", "parent": "smollm2_135m", "recipe": "awq_w4_g64", "quantization": "awq",
        "reused": "true"}
    assert t["specbench.recipe_digest"] == spec.digest() and t["specbench.checkpoint_digest"] == "0123456789abcdef"
    assert t["specbench.calibration_digest"] == "fedcba9876543210" and "mlflow.source.git.commit" in t
    assert p["awq.group_size"] == "64" and p["awq.recipe"] == "awq_w4_g64" and p["quantizer_revision"] == "1"
    assert m == {"quantize_s": 1.5, "size_ratio": 0.21}  # None left out
    assert stored.info.status == "FINISHED"


def test_cpu_refuses_to_quantize_a_7b_model(registry):
    reason = quantize.cannot_quantize(registry.model("qwen25_7b"), gpus=0)
    assert reason and "GPU machine" in reason


def test_derived_model_without_checkpoint_says_how_to_make_it(registry, monkeypatch, tmp_path):
    monkeypatch.setenv("SPECBENCH_CACHE", str(tmp_path))
    model = registry.model("smollm2_135m_awq")
    reason = runnable_reason(model, gpus=0)
    assert reason and "run `specbench quantize --model smollm2_135m`" in reason
    assert "kernels need a GPU" not in reason  # a CPU may run it once it exists (unpacked)
    with pytest.raises(CellUnavailable, match="specbench quantize --model smollm2_135m"):
        plan_cell(registry, "smollm2_135m_awq", "gsm8k", engine="transformers")


# -- a real quantized SmolLM2 -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def quantized(store, tmp_path_factory):
    """(registry, quantize result): the real checkpoint when it is up to date, else a reduced one."""
    pytest.importorskip("awq")
    reg = load_registry(CONF)
    awq = reg.model("smollm2_135m_awq")
    if derived_manifest(awq) is not None and stale_checkpoint(reg, awq) is None:
        yield reg, quantize.quantize(reg, "smollm2_135m", experiment="test-quantize")
        return
    parent = resolve(reg.model("smollm2_135m"))  # converted once into the real cache
    tmp = tmp_path_factory.mktemp("quantize")
    conf = tmp / "conf"
    shutil.copytree(CONF, conf)
    recipe = conf / "quantization" / "awq_w4_g64.yaml"
    data = yaml.safe_load(recipe.read_text())
    data["calibration"].update(blocks=4, block_tokens=64)
    recipe.write_text(yaml.safe_dump(data))
    cache = tmp / "cache"
    (cache / "models").mkdir(parents=True)
    (cache / "models" / Path(parent.path).name).symlink_to(parent.path)
    mp = pytest.MonkeyPatch()
    mp.setenv("SPECBENCH_CACHE", str(cache))
    reg = load_registry(conf)
    yield reg, quantize.quantize(reg, "smollm2_135m", experiment="test-quantize")
    mp.undo()


@pytest.mark.slow
def test_quantize_run_records_recipe_sizes_and_calibration(store, quantized):
    reg, res = quantized
    run = MlflowClient(store).get_run(res.run_id)
    p, m, t = run.data.params, run.data.metrics, run.data.tags
    assert t["specbench.kind"] == "quantize" and t["mlflow.runName"] == "quantize:smollm2_135m_awq"
    assert t["specbench.model"] == "smollm2_135m_awq" and t["specbench.parent"] == "smollm2_135m"
    assert t["specbench.recipe"] == "awq_w4_g64" and t["specbench.quantization"] == "awq"
    assert t["mlflow.source.git.commit"] and "git_commit" not in t and "model" not in t
    assert p["awq.group_size"] == "64" and p["awq.bits"] == "4" and p["awq.version"] == "GEMM"
    assert p["awq.clip_search"] == "False" and p["calibration.split"] == "train"
    assert len(t["specbench.calibration_digest"]) == 16
    assert t["specbench.recipe_digest"] == reg.quantization("awq_w4_g64").digest()
    assert len(t["specbench.checkpoint_digest"]) == 16 and t["specbench.reused"] in ("true", "false")
    if not res.reused:  # the calibration texts as the run's dataset input
        (cal,) = [i for i in run.inputs.dataset_inputs
                  if {tag.key: tag.value for tag in i.tags}.get("mlflow.data.context") == "calibration"]
        assert cal.dataset.name == "gsm8k:train"
        assert cal.dataset.digest == res.manifest["calibration"]["source_digest"][:36]
    assert m["quantize_s"] > 0 and m["layers_quantized"] == 30 * 7
    assert m["size_after_mb"] < 0.6 * m["size_before_fp16_mb"] < m["size_before_mb"]


@pytest.mark.slow
def test_unpacked_checkpoint_holds_the_packed_weights(quantized):
    from safetensors.torch import load_file

    _, res = quantized
    packed = load_file(str(res.path / PACKED_DIR / "model.safetensors"))
    floats = load_file(str(res.path / FLOAT_DIR / "model.safetensors"))
    prefixes = [k[: -len(".qweight")] for k in packed if k.endswith(".qweight")]
    assert len(prefixes) == 30 * 7
    for prefix in prefixes[:: 7]:  # one projection of each layer
        w = quantize.unpack_linear(packed[f"{prefix}.qweight"], packed[f"{prefix}.qzeros"],
                                   packed[f"{prefix}.scales"], group_size=64)
        assert torch.equal(floats[f"{prefix}.weight"], w)
    assert torch.equal(floats["model.embed_tokens.weight"], packed["model.embed_tokens.weight"])


@pytest.mark.slow
def test_awq_variant_runs_simulated_beside_its_parent_and_answers_differently(store, quantized, tmp_path):
    if gpu_count() > 0:
        pytest.skip("with a GPU the packed checkpoint runs on AWQ kernels (not simulated)")
    reg, _ = quantized
    # 4 items and 48 new tokens: enough to tell the weights apart, cheap on a busy 2-core CPU.
    plans = {k: plan_cell(reg, k, "gsm8k", engine="transformers", samples=4)
             for k in ("smollm2_135m", "smollm2_135m_awq")}
    plans = {k: dataclasses.replace(p, task=dataclasses.replace(p.task, gen=dataclasses.replace(
        p.gen, max_new_tokens=48))) for k, p in plans.items()}
    awq_plan = plans["smollm2_135m_awq"]
    assert awq_plan.resolved.source == SIMULATED_SOURCE and awq_plan.resolved.path.endswith(FLOAT_DIR)
    assert awq_plan.engine_params["dtype"] == "float32" and "quantization" not in awq_plan.engine_params
    assert awq_plan.resolved.revision.startswith("awq:")
    results = {k: pipeline.run_cell(p) for k, p in plans.items()}
    for r in results.values():
        assert r.status == "FINISHED", r.error
    client = MlflowClient(store)
    tags = tracking.normalize_tags(client.get_run(results["smollm2_135m_awq"].run_id).data.tags)
    assert tags["quantization"] == "simulated" and tags["perf_representative"] == "false"
    assert tags["parent"] == "smollm2_135m" and tags["model_source"] == SIMULATED_SOURCE
    parent_tags = tracking.normalize_tags(client.get_run(results["smollm2_135m"].run_id).data.tags)
    assert parent_tags["quantization"] == "none" and "perf_representative" not in parent_tags
    a, b = results["smollm2_135m_awq"].outputs, results["smollm2_135m"].outputs
    assert any(x != y for x, y in zip(a, b, strict=True)), "quantized weights gave identical outputs"
    # The comparison module pairs the variant with its parent, item by item.
    from specbench.analysis import select, tables

    cstore = tracking.ArtifactReader()
    cells = select.latest_cells([tracking.get_run(r.run_id) for r in results.values()])
    q = tables.quantization_table(reg, cstore, cells, "efficiency_optimized")
    row = q[q.dataset == "gsm8k"].iloc[0]
    assert (row.variant, row.parent, row.status, row.simulated) == ("smollm2_135m_awq", "smollm2_135m",
                                                                      "finished", True)
    assert row.n_paired == 4 and row.delta == pytest.approx(row.variant_value - row.parent_value)
    assert row.test == "mcnemar_exact" and 0 <= row.p_value <= 1
    assert np.isnan(row.throughput_ratio) and np.isnan(row.memory_ratio)  # simulated: not AWQ's speed/memory
    assert 0.15 < row.size_ratio < 0.5  # packed int4 over the parent's checkpoint
    # ...and a paper report's `quantization` table is the same table
    from specbench.analysis import report

    path = tmp_path / "awq_paper.yaml"
    path.write_text(yaml.safe_dump({"name": "awq_paper", "title": "AWQ", "experiment": "test-quantize", "tables": [
        {"id": "awq", "kind": "quantization", "category": "efficiency_optimized", "datasets": ["gsm8k"]}]}))
    out, _ = report.run(reg, str(path), tmp_path / "out", log=False)
    (paper,) = pd.read_csv(out / "awq.csv").itertuples()
    assert (paper.variant, paper.dataset, paper.n_paired) == ("smollm2_135m_awq", "gsm8k", 4)
    assert paper.delta == pytest.approx(row.delta) and paper.p_value == pytest.approx(row.p_value)
