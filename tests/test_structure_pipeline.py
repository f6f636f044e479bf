"""Structure tasks in the pipeline, without an engine: where a probe's training data comes from,
which cells an encoder may plan, the one-line refusals, and a hub copy cut into this dataset's
own split (toxicity_detection), read through a local parquet file standing in for the hub."""

from __future__ import annotations

import dataclasses

import pytest

from specbench import pipeline
from specbench.data import DataUnavailable, load_items, load_split_items, loading
from specbench.data.adapters import get_adapter, toxicity
from specbench.pipeline.plan import plan_cell
from specbench.registry.schema import ConfigError, DatasetConfig, EncoderConfig, StructureConfig


def test_a_probe_never_trains_on_the_evaluated_split(registry):
    d = registry.dataset("scierc")
    with pytest.raises(ConfigError, match="contamination"):
        DatasetConfig(**{**dataclasses.asdict(d), "prompt": d.prompt,
                         "structure": StructureConfig(labels=d.structure.labels, train_split=d.split)})


def test_encoder_sections_are_checked(registry):
    with pytest.raises(ConfigError, match="valid: truncate, slide"):
        EncoderConfig(overflow="wrap")
    with pytest.raises(ConfigError, match="shorter than the window"):
        EncoderConfig(max_tokens=64, stride=64)


def test_an_encoder_without_training_data_offline_is_refused_at_plan_time(registry, monkeypatch):
    """mediqa ships only its test pairs: a probe has nothing to train on without the hub."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(pipeline.CellUnavailable, match="'train' split, which ships no offline slice"):
        plan_cell(registry, "bert_test", "mediqa", engine="encoder")
    plan = plan_cell(registry, "smollm2_135m", "mediqa", samples=4, engine="vllm")  # prompted: no training
    assert not plan.task.probe


def test_a_dataset_with_no_hub_copy_reads_its_slice_even_with_a_hub(registry, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(loading, "_hub_unreachable", lambda: None)  # as if the hub answered
    d = registry.dataset("scierc_ner")
    assert not d.hub_path
    source = loading.plan_source(d)
    assert source.kind == "slice" and "no hub copy" in source.why
    assert load_items(d, 2).offline  # and the load agrees with the plan


def test_the_training_split_is_loaded_and_empty_ones_refused(registry, tmp_path, monkeypatch):
    d = registry.dataset("scierc")
    train, source = load_split_items(d, "train", limit=5, offline=True)
    assert len(train) == 5 and source == "slice scierc.train.jsonl"  # no machine's path in a tag
    assert {it.reference for it in train} <= set(d.structure.labels)
    (tmp_path / "scierc.train.jsonl").write_text("")
    (tmp_path / "scierc.test.jsonl").write_text((loading.SLICES_DIR / "scierc.test.jsonl").read_text())
    monkeypatch.setattr(loading, "SLICES_DIR", tmp_path)
    with pytest.raises(DataUnavailable, match="is empty; nothing to train a probe on"):
        load_split_items(d, "train", offline=True)


def test_the_hub_copy_of_one_split_is_cut_into_this_datasets_folds(registry, tmp_path):
    """tdavidson/hate_speech_offensive holds every tweet in one `train` split; the adapter's filter
    carves test and train out of it by the same rule the slices were cut with."""
    import datasets

    tweets = [f"tweet number {i} @user" for i in range(60)]
    records = [{"count": 3, "hate_speech_count": 0, "offensive_language_count": i % 3, "neither_count": 3 - i % 3,
                "class": i % 3, "tweet": t} for i, t in enumerate(tweets)]
    folder = tmp_path / "hub_copy"
    (folder / "data").mkdir(parents=True)
    datasets.Dataset.from_list(records).to_parquet(str(folder / "data" / "train-00000-of-00001.parquet"))
    d = dataclasses.replace(registry.dataset("toxicity_detection"), hub_path=str(folder), revision=None)
    got = {split: loading._load_hub(d, get_adapter(d), split) for split in ("test", "train")}
    assert len(got["test"]) + len(got["train"]) == len(tweets)
    assert {r["tweet"] for r in got["test"]} == {t for t in tweets if toxicity.fold(t) == "test"} != set()


def _scored(registry, predictions: list[str]):
    from specbench import scoring

    d = registry.dataset("scierc")
    items = load_items(d, 40, offline=True).items
    golds = [it.reference for it in items]
    outputs = [[golds[i] if p == "gold" else p] for i, p in enumerate(predictions)]
    return scoring.score(d, items, outputs), items


def test_corpus_metrics_get_intervals_and_paired_tests_from_per_item_statistics(registry):
    """F1 is no mean of per-item scores: each item's statistics travel in the per-sample table
    (counts.<scorer>) and the analysis recomputes the metric over resampled items with them."""
    import numpy as np

    from specbench.analysis import stats
    from specbench.analysis.tables import corpus_reduce

    good, _ = _scored(registry, ["gold"] * 30 + ["USED-FOR"] * 10)
    bad, _ = _scored(registry, ["gold"] * 10 + ["USED-FOR"] * 20 + ["no idea"] * 10)
    column, reduce = corpus_reduce("f1_macro", ["counts.label_f1"])
    assert column == "counts.label_f1"
    a = np.stack([s.counts["label_f1"] for s in good.samples])
    b = np.stack([s.counts["label_f1"] for s in bad.samples])
    iv = stats.bootstrap_corpus(a, reduce, "f1_macro")
    assert iv.estimate == pytest.approx(good.metrics["f1_macro"]) and iv.low <= iv.estimate <= iv.high
    assert iv.high - iv.low > 0
    res = stats.paired_corpus(a, b, reduce, "f1_macro")
    assert res.delta == pytest.approx(good.metrics["f1_macro"] - bad.metrics["f1_macro"]) and res.delta > 0
    assert res.low <= res.delta <= res.high and 0 < res.p_value <= 1
    same = stats.paired_corpus(a, a, reduce, "f1_macro")
    assert same.delta == 0 and same.p_value == 1.0
    assert stats.paired_corpus(a, b, reduce, "f1_macro") == res  # seeded: the same table twice


@pytest.mark.parametrize("old, new, message", [
    ("identity_hate: hate_speech", "identity_hate: hateful", "'hateful' is not a label of toxicity_detection"),
    ("datasets: [toxicity_detection]", "datasets: [scierc_ner]", "'scierc_ner' is not a classification dataset"),
])
def test_a_head_mapped_onto_wrong_labels_or_datasets_is_one_cli_line(conf_copy, capsys, old, new, message):
    from specbench import cli

    path = conf_copy / "models" / "safety_bert.yaml"
    path.write_text(path.read_text().replace(old, new))
    assert cli.main(["--conf", str(conf_copy), "validate"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "safety_bert.yaml" in err and len(err.splitlines()) == 1
