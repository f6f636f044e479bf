"""The multimodal path end to end on the test VLM (SmolLM2 + a random vision tower, built offline):
image loading, the processor's chat template, both engines, the scorers, tracking, the category.

The test VLM's answers mean nothing (random vision weights); these tests check plumbing and
agreement, never scores.  One vLLM engine is shared by the module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from specbench import pipeline
from specbench.data.loading import LoadedDataset
from specbench.engines import make_engine
from specbench.pipeline.plan import plan_cell
from specbench.types import ImageRef, Item
from specbench.weights import materialize

ROOT = Path(__file__).resolve().parents[1]
MODEL = "smolvlm_test"


@pytest.fixture(scope="module")
def chart_plan(registry):
    return plan_cell(registry, MODEL, "chartqa", samples=4, engine="vllm")


@pytest.fixture(scope="module")
def vlm_weights(registry, chart_plan):
    return materialize(registry.model(MODEL), chart_plan.weights)


@pytest.fixture(scope="module")
def vllm_engine(chart_plan, vlm_weights):
    engine = make_engine("vllm", pipeline.engine_params(chart_plan, vlm_weights))
    yield engine
    engine.close()


def test_test_vlm_says_its_vision_weights_are_random(registry, vlm_weights, chart_plan):
    model = registry.model(MODEL)
    assert model.random_weights and "random" in model.display_name.lower()
    assert chart_plan.quantization_tags["random_weights"] == model.random_weights  # on every cell's tags
    built = json.loads((Path(vlm_weights.path) / "specbench.json").read_text())
    assert built["builder"] == "idefics3_random_vision" and built["random_weights"]  # the build's own record
    assert chart_plan.engine_params["limit_mm_per_prompt"] == {"image": 1}  # from the model's vision section


def test_text_models_are_not_planned_on_image_datasets(registry):
    with pytest.raises(pipeline.CellUnavailable, match="not a vision-language model"):
        plan_cell(registry, "smollm2_135m", "chartqa", engine="vllm")


@pytest.mark.parametrize("dataset", ["chartqa", "scienceqa"])
def test_vllm_and_transformers_agree_greedy_on_the_test_vlm(registry, vllm_engine, vlm_weights, dataset):
    plan = plan_cell(registry, MODEL, dataset, samples=4, engine="vllm")
    prepared = pipeline.prepare(plan.task, 4, offline=True)
    assert not prepared.failures and all(len(imgs) == 1 for imgs in prepared.images)
    # the image goes first in the user's message, as lmms-eval lays it out
    content = prepared.prompts[0][-1]["content"]
    assert content[0]["type"] == "image" and content[-1]["type"] == "text"
    from_vllm = vllm_engine.generate(prepared.prompts, plan.task.gen, images=prepared.images)
    hf_plan = plan_cell(registry, MODEL, dataset, samples=4, engine="transformers")
    hf = make_engine("transformers", pipeline.engine_params(hf_plan, vlm_weights))
    try:
        from_hf = hf.generate(prepared.prompts, plan.task.gen, images=prepared.images)
    finally:
        hf.close()
    assert from_vllm.texts == from_hf.texts
    # both count the image tokens the processor expanded each image into (16 for the test VLM)
    assert from_vllm.prompt_tokens == from_hf.prompt_tokens
    text_only = sum(len(vllm_engine.processor.tokenizer(vllm_engine.processor.apply_chat_template(
        [{"role": "user", "content": p[-1]["content"][-1]["text"]}], tokenize=False,
        add_generation_prompt=True))["input_ids"]) for p in prepared.prompts)
    assert from_vllm.prompt_tokens >= text_only + 16 * len(prepared.prompts)


def test_a_bad_image_fails_its_item_alone(registry, vllm_engine, chart_plan, tmp_path):
    good = pipeline.prepare(chart_plan.task, 1, offline=True).items[0]
    (tmp_path / "truncated.png").write_bytes(Path(good.images[0].path).read_bytes()[:200])
    (tmp_path / "notes.png").write_text("not an image\n")
    refs = {"fine": good.images[0], "missing": ImageRef("missing.png", path=str(tmp_path / "missing.png")),
            "truncated": ImageRef("truncated.png", path=str(tmp_path / "truncated.png")),
            "text": ImageRef("notes.png", path=str(tmp_path / "notes.png"))}
    items = [Item(id=k, doc=dict(good.doc), reference=good.reference, images=[ref]) for k, ref in refs.items()]
    from specbench import data

    loaded = LoadedDataset(key="chartqa", items=items, fewshot=[], hf_dataset=None, digest="test", source="test",
                           offline=True)
    prepared = pipeline.Prepared(chart_plan.task, loaded,
                                 data.build_prompts(chart_plan.dataset, items, [], chat=chart_plan.task.chat))
    pipeline.task._decode_images(prepared)
    assert sorted(prepared.failures) == [1, 2, 3]
    reasons = [prepared.failures[i] for i in (1, 2, 3)]
    assert "missing.png" in reasons[0] and "truncated.png" in reasons[1] and "notes.png" in reasons[2]
    answered = pipeline.answer_prepared(prepared, vllm_engine)
    assert answered.figures["items_failed"] == 3 and answered.figures["images"] == 1
    assert answered.outputs[0] != [""] and answered.outputs[1:] == [[""]] * 3
    report = pipeline.score(chart_plan.task, items, answered.outputs)
    rows = pipeline.sample_rows(items, prepared.prompts, answered.outputs, report, prepared.failures)
    assert "error" not in rows[0] and all(rows[i]["error"] for i in (1, 2, 3))
    assert [r["image"] for r in rows] == [good.images[0].name, "missing.png", "truncated.png", "notes.png"]


def test_category_on_this_cpu_through_mlflow_run(tmp_path):
    """The issue's acceptance command, as printed: the test VLM's chartqa and scienceqa cells
    finish as complete runs with images in their tables; every other VLM is skipped with a reason."""
    from mlflow import MlflowClient

    mlflow_bin = Path(sys.executable).with_name("mlflow")
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    r = subprocess.run([str(mlflow_bin), "run", ".", "-e", "category", "-P", "name=multimodal_processing",
                        "-P", "samples=4", "--env-manager", "local"], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "HF_HUB_OFFLINE": "1", "MLFLOW_TRACKING_URI": uri,
                            "PATH": f"{mlflow_bin.parent}{os.pathsep}{os.environ.get('PATH', '')}"}, timeout=1200)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    client = MlflowClient(uri)
    runs = [run for exp in client.search_experiments() for run in client.search_runs([exp.experiment_id])]
    cells = {(run.data.tags.get("specbench.model"), run.data.tags.get("specbench.dataset")): run for run in runs
             if run.data.tags.get("specbench.kind") == "cell"}
    assert set(cells) == {(MODEL, "chartqa"), (MODEL, "scienceqa")}  # docvqa needs the hub; the rest need GPUs
    for (_, dataset), run in cells.items():
        assert run.info.status == "FINISHED", run.data.tags.get("specbench.error")
        assert "random" in run.data.tags["specbench.random_weights"]
        m = run.data.metrics
        assert m["n_samples"] == 4 and m["items_failed"] == 0
        assert m["acc" if dataset == "scienceqa" else "relaxed_accuracy"] >= 0
        if not m.get("cached_prompts"):
            assert m["images_per_s"] > 0 and m["prompt_tokens"] >= 4 * 16  # image tokens counted
        local = client.download_artifacts(run.info.run_id, "", str(tmp_path / run.info.run_id))
        table = json.loads(Path(local, "samples.json").read_text())
        col = table["columns"].index("image")
        assert all(row[col] for row in table["data"])
        shown = json.loads(Path(local, "sample_images.json").read_text())
        cell = shown["data"][0][shown["columns"].index("image")]
        assert cell["type"] == "image" and Path(local, cell["filepath"]).is_file()  # the UI's image cell
    assert "llama32_vision_90b" in r.stdout + r.stderr and "needs 4 GPUs" in r.stdout + r.stderr


def test_dry_run_plans_every_vlm_cell_with_its_gpus(tmp_path):
    """The issue's dry-run acceptance command: every VLM of the category is planned (runnable or
    skipped with its reason), the 90B one with its 4 GPUs; nothing starts."""
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    r = subprocess.run([str(mlflow_bin), "run", ".", "-e", "category", "-P", "name=multimodal_processing",
                        "-P", "dry_run=true", "--env-manager", "local"], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "HF_HUB_OFFLINE": "1", "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/m.db",
                            "PATH": f"{mlflow_bin.parent}{os.pathsep}{os.environ.get('PATH', '')}"}, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = "".join(r.stdout.split()).replace("│", "")  # however the console wrapped the table and lines
    for model in ("qwen2_vl_7b", "internvl2_8b", "llava_1_5_7b", "llava_v1_6_mistral_7b", "phi35_vision",
                  "llama32_vision_90b", "donut_base", "layoutlmv3_base", "smolvlm_test"):
        assert f"{model}@chartqa" in out
    assert "llama32_vision_90b:needs4GPUs(tensor_parallel_size4)" in out
    assert "donut_base:donut-baseisDonut'spre-trainingcheckpoint" in out  # its registry entry's reason
