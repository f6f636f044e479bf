"""The structure datasets' data (issue #14): slices, adapters, label sets, the toxicity split, the YAMLs.

Everything here reads the shipped slices (src/specbench/slices, built by scripts/structure_slices.py
through make_slices.py) and conf/, never ../shared.  Hub-shaped records are written out by hand from
the hub copies' documented layouts (dataset cards), since no hub is reachable here.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest

from specbench.data import DataUnavailable, build_prompt, get_adapter, load_items, load_split_items, render
from specbench.data.adapters import toxicity
from specbench.data.adapters.conll_ner import iob2
from specbench.registry import load_file
from specbench.registry.schema import DatasetConfig, Status, StructureConfig, TaskType
from specbench.spans import NO_ENTITIES, entity_spans, format_entities

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf" / "datasets"
CLASSIFICATION = ["scierc", "chemprot", "toxicity_detection", "mediqa"]
NER = ["scierc_ner", "genomics_ner", "ncbi_disease", "bc5cdr"]
HUB_ONLY = ["scientific_papers", "pubmed_abstracts"]


def ds(key: str) -> DatasetConfig:
    return load_file(CONF / f"{key}.yaml", DatasetConfig)


def _load(key: str):
    """(config, eval items with the few-shot pool, train-split items), all from the slices."""
    d = ds(key)
    loaded = load_items(d, offline=True)
    train = load_split_items(d, d.structure.train_split, offline=True)[0] if key != "mediqa" else []
    return d, loaded, train


@pytest.fixture(scope="module", params=CLASSIFICATION + NER)
def loaded(request):
    return (request.param, *_load(request.param))


def test_every_structure_dataset_is_ready_with_its_task_type():
    for key in CLASSIFICATION + NER + HUB_ONLY:
        d = ds(key)
        assert d.status == Status.ready and d.prompt is not None, key
        assert d.lm_eval_task is None, key  # lm-eval 0.4.13 has none of these tasks
    assert {ds(k).task_type for k in CLASSIFICATION} == {TaskType.classification}
    assert {ds(k).task_type for k in NER} == {TaskType.ner}
    assert {ds(k).task_type for k in HUB_ONLY} == {TaskType.summarization}
    assert ds("genomics_ner").structure.train_split == "dev"  # JNLPBA's train is absent offline
    assert ds("mediqa").structure.encoder_pair == "{{ faq }}"


def test_slices_load_offline_and_items_follow_the_conventions(loaded):
    key, d, got, train = loaded
    labels = d.structure.labels
    assert got.offline and len(got.items) >= 100 and got.fewshot == ([] if key == "mediqa" else train)
    for items in (got.items, train):
        ids = [it.id for it in items]
        assert len(set(ids)) == len(ids) and all(ids)
    for it in got.items + train:
        assert it.doc["labels"] == labels and it.doc["answer"] == it.reference
        if d.task_type == TaskType.ner:
            tokens, tags = it.doc["tokens"], it.doc["tags"]
            assert len(tokens) == len(tags) >= 1 and it.doc["text"] == " ".join(tokens)
            assert it.reference == format_entities(tokens, tags)
            for k, tag in enumerate(tags):  # IOB2: every entity opens with B-
                assert tag == "O" or (tag[:2] in ("B-", "I-") and tag[2:] in labels), tag
                assert not tag.startswith("I-") or (k > 0 and tags[k - 1][2:] == tag[2:] and tags[k - 1] != "O")
        else:
            assert it.reference in labels
            assert render(d.structure.encoder_input, it.doc).strip()
            if d.structure.encoder_pair:
                assert render(d.structure.encoder_pair, it.doc).strip()
    prompt = build_prompt(d, got.items[0], got.fewshot)
    assert prompt.startswith(render(d.prompt.description, got.items[0].doc)) and prompt.count("\n\n") >= 1
    for ex in got.fewshot[:3]:  # a few-shot example ends in its canonical answer
        assert render(d.prompt.target, ex.doc) == ex.reference


@pytest.mark.parametrize("key", NER)
def test_ner_references_round_trip_through_their_spans(key):
    d, got, train = _load(key)
    assert d.task_type == TaskType.ner
    for it in got.items + train:
        lines = it.reference.split("\n")
        if lines == [NO_ENTITIES]:
            assert entity_spans(it.doc["tags"]) == []
            continue
        expected = list(dict.fromkeys(f"{t}: {' '.join(it.doc['tokens'][s:e + 1])}"
                                      for t, s, e in entity_spans(it.doc["tags"])))
        assert lines == expected


def test_declared_labels_match_the_data(loaded):
    key, d, got, train = loaded
    if d.task_type == TaskType.ner:
        found = {t for it in got.items + train for t, _, _ in entity_spans(it.doc["tags"])}
    else:
        found = {it.reference for it in got.items + train}
    assert found <= set(d.structure.labels)
    assert found == set(d.structure.labels)  # every declared label occurs in the test and train slices


def test_chemprot_train_slice_has_all_13_labels():
    _, _, train = _load("chemprot")
    assert {it.reference for it in train} == set(ds("chemprot").structure.labels)


@pytest.mark.parametrize("key, dropped, message", [
    ("scierc", "USED-FOR", "label 'USED-FOR' is not declared"),
    ("genomics_ner", "protein", "tag 'B-protein'"),
])
def test_a_label_outside_the_declared_set_fails_in_one_line(key, dropped, message):
    d = ds(key)
    fewer = dataclasses.replace(d, structure=StructureConfig(
        labels=[x for x in d.structure.labels if x != dropped], train_split=d.structure.train_split))
    with pytest.raises(DataUnavailable, match=message) as err:
        load_items(fewer, offline=True)
    assert "\n" not in str(err.value) and "structure.labels" in str(err.value)


def _structure_slices():
    spec = importlib.util.spec_from_file_location("structure_slices", REPO / "scripts" / "structure_slices.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_toxicity_split_is_deterministic_disjoint_and_shared_with_the_slice_script():
    d = ds("toxicity_detection")
    test_items = load_items(d, offline=True).items
    train_items = load_split_items(d, "train", offline=True)[0]
    test_tweets = {it.doc["text"] for it in test_items}
    train_tweets = {it.doc["text"] for it in train_items}
    assert not test_tweets & train_tweets
    assert {toxicity.fold(t) for t in test_tweets} == {"test"} and {toxicity.fold(t) for t in train_tweets} == {"train"}
    script = _structure_slices()
    assert all(script.toxicity_fold(t) == toxicity.fold(t) for t in test_tweets | train_tweets)
    assert toxicity.fold("some tweet") == toxicity.fold("some tweet")
    assert {it.id for it in test_items}.isdisjoint({it.id for it in train_items})


def test_hub_shaped_records_go_through_the_same_adapters():
    tweet = next(it for it in load_items(ds("toxicity_detection"), offline=True).items)
    hub = {"count": tweet.doc["count"], "hate_speech_count": tweet.doc["hate_speech"],
           "offensive_language_count": tweet.doc["offensive_language"], "neither_count": tweet.doc["neither"],
           "class": ["hate_speech", "offensive_language", "neither"].index(tweet.reference),
           "tweet": tweet.doc["text"]}  # tdavidson/hate_speech_offensive: class is a ClassLabel id
    item = get_adapter(ds("toxicity_detection")).normalize(hub, 0, "test")
    assert item.reference == tweet.reference and item.doc["count"] == tweet.doc["count"]
    assert toxicity.in_split(hub, "test") and not toxicity.in_split(hub, "train")
    # jnlpba's ner_tags are ClassLabel ids; tner/bc5cdr's ids decode to Chemical/Disease, renamed Entity
    jn = get_adapter(ds("genomics_ner")).normalize(
        {"id": "7", "tokens": ["IL-2", "gene", "in", "T", "cells"], "ner_tags": [1, 2, 0, 7, 8]}, 0, "test")
    assert jn.id == "test/7" and jn.reference == "DNA: IL-2 gene\ncell_type: T cells"
    bc = get_adapter(ds("bc5cdr")).normalize({"tokens": ["Naloxone", "reverses", "hypertension"],
                                              "tags": [1, 0, 2]}, 3, "test")
    assert bc.doc["tags"] == ["B-Entity", "O", "B-Entity"] and bc.id == "test/3"
    nc = get_adapter(ds("ncbi_disease")).normalize({"tokens": ["no", "disease"], "ner_tags": [0, 0]}, 0, "test")
    assert nc.reference == NO_ENTITIES
    mq = get_adapter(ds("mediqa")).normalize({"id": "9", "chq": "a?", "faq": "b?", "label": True}, 0, "test")
    assert mq.reference == "true" and mq.id == "test/9"
    with pytest.raises(ValueError, match="neither true nor false"):
        get_adapter(ds("mediqa")).normalize({"chq": "a", "faq": "b", "label": "maybe"}, 0, "test")
    summ = get_adapter(ds("scientific_papers")).normalize({"article": "x " * 900, "abstract": " y "}, 2, "test")
    assert summ.reference == "y" and summ.id == "test/2"
    words = build_prompt(ds("scientific_papers"), summ, []).split("\n")[0].split()
    assert words.count("x") == 600  # the YAML's truncation rule: the first 600 words


def test_iob1_tags_become_iob2_with_the_same_entities():
    iob1 = ["I-Method", "I-Method", "B-Method", "O", "I-Task"]
    assert iob2(iob1) == ["B-Method", "I-Method", "B-Method", "O", "B-Task"]
    assert entity_spans(iob2(iob1)) == entity_spans(iob1)


def test_integer_tags_without_names_fail_in_one_line():
    with pytest.raises(ValueError, match="integer tag 1 and no tag names"):
        get_adapter(ds("scierc_ner")).normalize({"tokens": ["a"], "ner_tags": [1]}, 0, "test")


def test_hub_only_datasets_ship_no_slice_and_mediqa_has_no_offline_train():
    for key in HUB_ONLY:
        assert ds(key).offline_slice is None and ds(key).scorers == ["rouge"] and ds(key).main_metric == "rougeL"
    with pytest.raises(DataUnavailable, match="'train' split has no offline slice"):
        load_split_items(ds("mediqa"), "train", offline=True)


def test_the_registry_accepts_the_new_yamls(registry):
    from specbench.extensions import check

    check(registry)  # scorer, engine and adapter names, main metrics: raises on the first bad one
    for key in CLASSIFICATION + NER + HUB_ONLY:
        assert registry.datasets[key].status == Status.ready
    assert "scierc_ner" in registry.categories["scientific_research"].datasets.primary
    assert {"ncbi_disease", "bc5cdr"} <= set(registry.categories["biomedical_specialists"].datasets.secondary)


@pytest.mark.parametrize("key", ["scierc", "toxicity_detection", "ncbi_disease", "bc5cdr"])
def test_the_gold_answers_score_perfectly_through_the_scorers(key):
    """The canonical text each item asks for parses back to its own label / entities (scoring.structure)."""
    from specbench import scoring

    d = ds(key)
    items = load_items(d, offline=True).items
    report = scoring.score(d, items, [[it.reference] for it in items])
    metrics = getattr(report, "metrics", report)
    assert metrics[d.main_metric] == pytest.approx(1.0) and metrics["unparsed"] == 0.0
