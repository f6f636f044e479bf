"""The encoder path on the test encoder (a random 2-layer BERT built offline): the build, the engine's
vectors and windows, the probes (classification and NER) and a checkpoint's own head.

bert_test's vectors are random projections of the words: these tests check plumbing, determinism
and counting, never scores.  Engines are shared per module; run this file under the heavy lock
(``flock /tmp/specbench-heavy.lock .venv/bin/python -m pytest tests/test_encoder.py``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from specbench import data
from specbench.data.loading import LoadedDataset
from specbench.engines import engine_info, make_engine, planned_params
from specbench.engines.base import GenParams
from specbench.pipeline.probe import answer_encoder
from specbench.pipeline.task import Prepared, Task
from specbench.registry.schema import EncoderConfig, EncoderHead, StructureConfig, TaskType
from specbench.spans import format_entities
from specbench.types import Item
from specbench.weights import locate, materialize

MODEL = "bert_test"
SUBJECTS = ["abstract_algebra", "anatomy", "astronomy", "college_chemistry"]
LONG = " ".join(["the protein kinase inhibitor binds its receptor"] * 30)  # ~ 300 tokens: over a 128 window


@pytest.fixture(scope="module")
def weights(registry):
    model = registry.model(MODEL)
    return materialize(model, locate(model, offline=True))


@pytest.fixture(scope="module")
def params(registry, weights):
    model = registry.model(MODEL)
    return planned_params("encoder", model, registry.preset(model.preset), weights, 0)


@pytest.fixture(scope="module")
def engine(params):
    e = make_engine("encoder", params)
    yield e
    e.close()


@pytest.fixture(scope="module")
def sliding(params):
    e = make_engine("encoder", {**params, "overflow": "slide", "stride": 16})
    yield e
    e.close()


def test_bert_test_is_built_offline_and_tagged_random(registry, weights, params):
    model = registry.model(MODEL)
    assert model.random_weights and "random" in model.display_name.lower() and not model.can_generate
    assert engine_info("encoder").can("embeddings") and model.engines == ["encoder"]
    built = json.loads((Path(weights.path) / "specbench.json").read_text())
    assert built["builder"] == "bert_random_wordpiece" and built["random_weights"] == model.random_weights
    corpus = json.loads((Path(weights.path) / "corpus.json").read_text())
    assert corpus["max_position_embeddings"] == params["max_tokens"] == 128 and corpus["vocab_size"] <= 4000
    json.dumps(params)  # planned parameters are logged verbatim: JSON-able
    assert {"pooling", "overflow", "max_tokens", "dtype", "batch_size", "head", "probe_c"} <= set(params)


def test_the_tokenizer_vocabulary_is_the_same_every_build(tmp_path):
    from specbench.builders_encoder import corpus_lines, wordpiece_tokenizer

    a = wordpiece_tokenizer(corpus_lines()).get_vocab()
    b = wordpiece_tokenizer(corpus_lines()).get_vocab()
    assert a == b and len(a) == 4000 and {"[CLS]", "[SEP]", "[PAD]", "[UNK]"} <= set(a)


def test_embeddings_are_deterministic_and_count_what_overflows(engine, sliding):
    texts = ["Protein kinase C binds the receptor.", LONG, "A short one."]
    a, b = engine.embed(texts), engine.embed(texts)
    assert a.vectors.shape == (3, 128) and np.array_equal(a.vectors, b.vectors)
    assert a.over_window == [1] and a.tokens <= 3 * 128  # truncated: one window each
    # a text embedded alone is the same vector as in a batch (padding does not leak in)
    assert np.allclose(engine.embed(texts[:1]).vectors[0], a.vectors[0], atol=1e-5)
    s = sliding.embed(texts)
    assert s.over_window == [1] and s.tokens > a.tokens  # several windows for the long one
    assert np.allclose(s.vectors[0], a.vectors[0], atol=1e-5)  # within the window: the same either way
    assert not np.allclose(s.vectors[1], a.vectors[1], atol=1e-3)  # the windows' mean, not the first's
    pairs = engine.embed(["a question?", "another?"], ["short answer", LONG])
    assert pairs.vectors.shape == (2, 128) and pairs.over_window == [1]


def test_embed_words_gives_one_vector_per_word(engine, sliding):
    words = [["Protein", "kinase", "C"], [f"w{i}" for i in range(150)], []]
    for e in (engine, sliding):
        out = e.embed_words(words)
        assert [v.shape for v in out.vectors] == [(3, 128), (150, 128), (0, 128)] and out.over_window == [1]
    lost = (np.abs(engine.embed_words(words).vectors[1]).sum(axis=1) == 0).sum()
    assert lost > 0  # truncate: words past the window have no vector (zeros), and the item is counted
    assert (np.abs(sliding.embed_words(words).vectors[1]).sum(axis=1) > 0).all()  # slide: every word has one


def test_the_encoder_cannot_generate(engine):
    with pytest.raises(NotImplementedError, match="cannot generate"):
        engine.generate(["hi"], GenParams())


# ---- the probes, on tiny real item lists ---------------------------------------------------------

def _prepared(registry, dataset, encoder: EncoderConfig, train: list[Item], test: list[Item]) -> Prepared:
    task = Task(dataset=dataset, gen=GenParams(max_new_tokens=1), chat=False, loglik=False, encoder=encoder)
    loaded = LoadedDataset(key=dataset.key, items=test, fewshot=[], hf_dataset=None, digest="", source="test",
                           offline=True)
    return Prepared(task, loaded, prompts=[""] * len(test), train=train, train_source="test items")


@pytest.fixture(scope="module")
def subjects(registry):
    """MMLU questions (the shipped slice, real text) labelled by their subject: 3 per subject train, 2 test."""
    items = [it for it in data.load_items(registry.datasets["mmlu"], None, offline=True).items
             if it.doc["subject"] in SUBJECTS]
    items = [dataclasses.replace(it, reference=it.doc["subject"]) for it in items]
    by = {s: [it for it in items if it.doc["subject"] == s] for s in SUBJECTS}
    ds = dataclasses.replace(registry.datasets["mmlu"], key="mmlu_subject", task_type=TaskType.classification,
                             structure=StructureConfig(labels=SUBJECTS, train_split="dev",
                                                       encoder_input="{{ question }}",
                                                       encoder_pair="{{ choices | join(' ') }}"))
    return ds, [it for s in SUBJECTS for it in by[s][:3]], [it for s in SUBJECTS for it in by[s][3:5]]


def test_classification_probe_answers_in_labels_and_reproduces_itself(registry, engine, subjects):
    ds, train, test = subjects
    enc = registry.model(MODEL).encoder
    first = answer_encoder(_prepared(registry, ds, enc, train, test), engine)
    second = answer_encoder(_prepared(registry, ds, enc, train, test), engine)
    assert first.outputs == second.outputs and len(first.outputs) == 8
    assert all(o[0] in SUBJECTS for o in first.outputs)
    f = first.figures
    long = sum(len(engine.tokenizer(it.doc["question"], " ".join(it.doc["choices"]))["input_ids"]) > 128
               for it in train + test)  # real questions, rare words spelt in pieces: some overflow
    assert f["train_items"] == 12 and f["items_over_window"] == long > 0 and f["probe_classes"] == 4
    assert f["sentences_per_s"] > 0 and f["embed_s"] > 0 and f["fit_s"] > 0
    assert f["probe_train_accuracy"] == 1.0  # 128 features, 12 points: separable


def test_a_train_split_of_one_class_fails_in_one_line(registry, engine, subjects):
    ds, train, test = subjects
    one = [it for it in train if it.reference == SUBJECTS[0]]
    with pytest.raises(ValueError, match=r"1 class\(es\) \(abstract_algebra\); a classifier needs >= 2") as e:
        answer_encoder(_prepared(registry, ds, registry.model(MODEL).encoder, one, test), engine)
    assert "\n" not in str(e.value)


def _tagged(i: int, tokens: list[str], tags: list[str]) -> Item:
    return Item(id=f"s{i}", doc={"tokens": tokens, "tags": tags, "text": " ".join(tokens)},
                reference=format_entities(tokens, tags))


NER = [  # (sentence, entity words of type protein); crafted BIO data in the CoNLL convention
    ("the kinase p53 binds mdm2 in cells", {"p53", "mdm2"}),
    ("we measured insulin levels in mice", {"insulin"}),
    ("mdm2 degrades p53 rapidly", {"mdm2", "p53"}),
    ("levels of insulin and leptin rose", {"insulin", "leptin"}),
    ("leptin signals through its receptor", {"leptin"}),
    ("no protein was detected here", set()),
    ("p53 and insulin were both measured", {"p53", "insulin"}),
    ("mice lacking leptin gain weight", {"leptin"}),
]


def test_ner_probe_writes_canonical_entities_and_reproduces_itself(registry, engine, sliding):
    items = []
    for i, (sentence, proteins) in enumerate(NER):
        tokens = sentence.split()
        items.append(_tagged(i, tokens, ["B-protein" if t in proteins else "O" for t in tokens]))
    long_tokens = ["p53", "binds"] * 80  # over the window: counted, and answered whole
    items.append(_tagged(99, long_tokens, ["B-protein" if t == "p53" else "O" for t in long_tokens]))
    ds = dataclasses.replace(registry.datasets["mmlu"], key="crafted_ner", task_type=TaskType.ner,
                             structure=StructureConfig(labels=["protein"], train_split="dev"))
    train, test = items[:6], items[6:]
    enc = registry.model(MODEL).encoder
    runs = [answer_encoder(_prepared(registry, ds, enc, train, test), e) for e in (engine, engine, sliding)]
    assert runs[0].outputs == runs[1].outputs
    for run in runs:
        assert len(run.outputs) == 3 and run.figures["items_over_window"] == 1
        for (text,) in run.outputs:  # the canonical text: "none", or "<type>: <words>" lines
            assert text == "none" or all(line.startswith("protein: ") for line in text.splitlines())
    # the training words are separable: the probe tags its own training sentences right
    again = answer_encoder(_prepared(registry, ds, enc, train, train), engine)
    assert [o[0] for o in again.outputs] == [it.reference for it in train]


# ---- a checkpoint's own head -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def head_engine(weights, params, tmp_path_factory):
    """bert_test's encoder with a random multi-label head (toxic-bert's layout, three of its labels)."""
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    out = tmp_path_factory.mktemp("bert_head")
    torch.manual_seed(0)
    labels = ["toxic", "insult", "identity_hate"]
    model = BertForSequenceClassification.from_pretrained(
        weights.path, num_labels=3, id2label=dict(enumerate(labels)), label2id={v: k for k, v in enumerate(labels)},
        problem_type="multi_label_classification")
    with torch.no_grad():
        model.classifier.bias.copy_(torch.tensor([0.0, -4.0, 4.0]))  # identity_hate fires, insult never
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(weights.path).save_pretrained(out)
    head = {"datasets": ["mmlu_subject"], "labels": {"identity_hate": "anatomy", "toxic": "astronomy"},
            "multi_label": True, "threshold": 0.5, "default": "abstract_algebra"}
    e = make_engine("encoder", {**params, "model": str(out), "head": head})
    yield e, head
    e.close()


def test_head_probabilities_map_onto_dataset_labels(registry, engine, head_engine, subjects):
    e, head = head_engine
    ds, _, test = subjects
    probs = e.classify([it.doc["question"] for it in test] + [LONG])
    assert len(probs) == 9 and set(probs[0]) == {"toxic", "insult", "identity_hate"}
    assert all(p["identity_hate"] > 0.5 > p["insult"] for p in probs) and probs.over_window == [8]
    enc = EncoderConfig(pooling="mean", head=EncoderHead(**head))
    first = answer_encoder(_prepared(registry, ds, enc, [], test), e)
    assert first.outputs == answer_encoder(_prepared(registry, ds, enc, [], test), e).outputs
    # identity_hate always fires; toxic wins only where it fires higher: each answer follows the rule
    for (label,), p in zip(first.outputs, probs, strict=False):
        fired = {h: p[h] for h in head["labels"] if p[h] > 0.5}
        assert label == head["labels"][max(fired, key=fired.get)]
    assert first.figures["train_items"] == 0 and first.figures["items_over_window"] == 0
    # datasets the head does not answer get the probe: the same engine embeds with its encoder alone
    texts = [it.doc["question"] for it in test]
    assert np.allclose(e.embed(texts).vectors, engine.embed(texts).vectors, atol=1e-5)
    with pytest.raises(ValueError, match="not the checkpoint's"):
        make_engine("encoder", {**e.params, "head": {**head, "labels": {"obscene": "astronomy"}}})


def test_byte_level_bpe_tokenizers_take_words_too(tmp_path):
    """RoBERTa's and Longformer's tokenizers take pre-tokenized words only with add_prefix_space: the
    engine reloads them so (a tiny random RoBERTa with a BPE vocabulary of a shipped slice)."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizerFast

    from specbench.builders_encoder import corpus_lines

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(list(corpus_lines(("mmlu.dev.jsonl",))), vocab_size=400, show_progress=False,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    tok = RobertaTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                               unk_token="<unk>", mask_token="<mask>", cls_token="<s>", sep_token="</s>",
                               model_max_length=64)
    tok.save_pretrained(tmp_path)
    torch.manual_seed(0)
    RobertaModel(RobertaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=64, max_position_embeddings=66,
                               pad_token_id=tok.pad_token_id)).save_pretrained(tmp_path)
    e = make_engine("encoder", {"model": str(tmp_path), "dtype": "float32", "batch_size": 8, "pooling": "mean",
                                "overflow": "slide", "stride": 8, "max_tokens": 64, "head": None})
    out = e.embed_words([["Protein", "kinase", "C"], ["word"] * 100])
    assert [v.shape for v in out.vectors] == [(3, 32), (100, 32)] and out.over_window == [1]
    assert (np.abs(out.vectors[1]).sum(axis=1) > 0).all()
    # each word read as inside a sentence (" kinase", not "kinase" glued to the word before)
    words = ["Protein", "kinase", "C"]
    assert e._words_tokenizer()(words, is_split_into_words=True)["input_ids"] == tok(" Protein kinase C")["input_ids"]
    e.close()
