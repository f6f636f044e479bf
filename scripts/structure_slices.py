"""Slice specs of the structure datasets (issue #14): relation classification, NER, toxicity, MEDIQA RQE.

Imported by ``make_slices.py``, which appends :func:`structure_specs` to its ``SPECS`` (this module takes
its ``SliceSpec`` class as an argument, so it imports nothing of the script it serves).  Like the rest,
every slice is deterministic and as close to its source format as the JSON loader allows:

- relation jsonl (SciBERT's SciERC / ChemProt files): lines copied byte for byte;
- CoNLL NER files: one JSON object per sentence, ``{"id", "tokens", "tags"}`` (``id`` = the
  sentence's 0-based number in its source file, ``-DOCSTART-`` lines not counted; tags unchanged,
  so SciERC's and BC5CDR's IOB1 tags stay IOB1: the adapter reads them with seqeval's reader);
- the Davidson CSV: one record per line with its own column names (the unnamed index column
  as ``index``), split into test / train by :func:`toxicity_fold`, the rule the adapter applies
  to hub records too;
- the MEDIQA RQE XML: one record per ``<pair>``: its attributes (``pid``, ``value``) and children
  (``chq``, ``faq``), text unchanged.
"""

from __future__ import annotations

import csv
import hashlib
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

SCIBERT = "github allenai/scibert data/"
SCIBERT_REV = "06793f7"
SCIBERT_LICENCE = "Apache-2.0 (SciBERT repository); the corpus states none"
TOX_TEST_MODULUS = 5  # one tweet in five is test (see toxicity_fold)


def toxicity_fold(tweet: str) -> str:
    """'test' or 'train' for a Davidson et al. tweet: the Davidson corpus has no official split, so
    one is defined on the tweet's text (sha256 modulo 5 == 0: test), which the CSV and the hub's
    parquet both carry; the same rule lives in ``specbench.data.adapters.toxicity``."""
    return "test" if int(hashlib.sha256(tweet.encode("utf-8")).hexdigest(), 16) % TOX_TEST_MODULUS == 0 \
        else "train"


def _dump(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def _lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8", newline="") as fh:
        return [line.rstrip("\r\n") for line in fh if line.strip()]


def _jsonl(rel: str, every: int, limit: int) -> Callable[[Path], list[str]]:
    """Every ``every``-th line (from the first), at most ``limit`` lines, bytes unchanged."""
    def build(data: Path) -> list[str]:
        return _lines(data / rel)[::every][:limit]

    return build


def _per_label(rel: str, per_label: int) -> Callable[[Path], list[str]]:
    """For each label, its first ``per_label`` lines (all of a rarer label's), kept in file order, bytes
    unchanged: a training pool with every label, where the rarest labels have 4 to 14 lines in all."""
    def build(data: Path) -> list[str]:
        lines = _lines(data / rel)
        seen: dict[str, int] = {}
        keep: list[str] = []
        for line in lines:
            label = json.loads(line)["label"]
            seen[label] = seen.get(label, 0) + 1
            if seen[label] <= per_label:
                keep.append(line)
        return keep

    return build


def conll_sentences(path: Path) -> list[dict[str, Any]]:
    """A CoNLL file's sentences as ``{"id", "tokens", "tags"}`` (token = first column, tag = last;
    columns split on tabs or spaces; ``-DOCSTART-`` lines and blank lines separate)."""
    sentences: list[dict[str, Any]] = []
    tokens: list[str] = []
    tags: list[str] = []

    def flush() -> None:
        if tokens:
            sentences.append({"id": str(len(sentences)), "tokens": list(tokens), "tags": list(tags)})
            tokens.clear()
            tags.clear()

    with open(path, encoding="utf-8", newline="") as fh:
        for raw in fh:
            line = raw.rstrip("\r\n")
            if not line.strip() or line.startswith("-DOCSTART-"):
                flush()
                continue
            cols = line.split("\t") if "\t" in line else line.split(" ")
            tokens.append(cols[0])
            tags.append(cols[-1])
    flush()
    return sentences


def _conll(rel: str, limit: int) -> Callable[[Path], list[str]]:
    def build(data: Path) -> list[str]:
        return [_dump(s) for s in conll_sentences(data / rel)[:limit]]

    return build


def _toxicity(fold: str, limit: int) -> Callable[[Path], list[str]]:
    def build(data: Path) -> list[str]:
        with open(data / "toxicity_detection/labeled_data.every8th.csv", encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
        out = [_dump({("index" if k == "" else k): v for k, v in row.items()})
               for row in rows if toxicity_fold(row["tweet"]) == fold]
        return out[:limit]

    return build


def _mediqa_rqe(data: Path) -> list[str]:
    root = ET.parse(data / "mediqa/MEDIQA2019-Task2-RQE-TestSet-wLabels.xml").getroot()
    return [_dump({"pid": p.get("pid"), "value": p.get("value"), "chq": p.findtext("chq"),
                   "faq": p.findtext("faq")}) for p in root.iter("pair")]


def structure_specs(spec: type) -> list[Any]:
    """The structure datasets' slices, as ``spec`` (make_slices.SliceSpec) instances."""
    sci = SCIBERT + "{}"
    ner = [  # (dataset, eval split, train split, source corpus file stem)
        ("scierc_ner", "test", "train", "scierc/ner_{}.conll", "ner/sciie/{}.txt", "SciERC (Luan et al. 2018)"),
        ("genomics_ner", "test", "dev", "genomics_ner/JNLPBA_{}.conll", "ner/JNLPBA/{}.txt", "JNLPBA"),
        ("ncbi_disease", "test", "train", "genomics_ner/NCBI-disease_{}.conll", "ner/NCBI-disease/{}.txt",
         "NCBI-disease"),
        ("bc5cdr", "test", "train", "genomics_ner/bc5cdr_{}.conll", "ner/bc5cdr/{}.txt", "BC5CDR"),
    ]
    specs = [
        spec("scierc.test.jsonl", "scierc", ("scierc/relation_test.jsonl",),
             _jsonl("scierc/relation_test.jsonl", 1, 160), "first 160 test relations (all 7 labels), bytes unchanged",
             sci.format("text_classification/sciie-relation-extraction/test.txt"), SCIBERT_REV, SCIBERT_LICENCE,
             "nsusemiehl/SciERC test"),
        spec("scierc.train.jsonl", "scierc", ("scierc/relation_train.jsonl",),
             _jsonl("scierc/relation_train.jsonl", 1, 320), "first 320 train relations (probe / few-shot pool)",
             sci.format("text_classification/sciie-relation-extraction/train.txt"), SCIBERT_REV, SCIBERT_LICENCE,
             "nsusemiehl/SciERC train"),
        spec("chemprot.test.jsonl", "chemprot", ("chemprot/test.jsonl",), _jsonl("chemprot/test.jsonl", 21, 200),
             "every 21st test relation from the first (166, all 12 labels of the test split; the file is grouped "
             "by abstract, so its first lines would cover few labels), bytes unchanged",
             sci.format("text_classification/chemprot/test.txt"), SCIBERT_REV, SCIBERT_LICENCE,
             "AdaptLLM/ChemProt test"),
        spec("chemprot.train.jsonl", "chemprot", ("chemprot/train.jsonl",), _per_label("chemprot/train.jsonl", 25),
             "the first 25 train relations of each label (all of a label with fewer), in file order (278, all 13 "
             "labels; label-balanced, unlike the split), bytes unchanged",
             sci.format("text_classification/chemprot/train.txt"), SCIBERT_REV, SCIBERT_LICENCE,
             "AdaptLLM/ChemProt train"),
    ]
    for key, test, train, rel, upstream, corpus in ner:
        for split, limit in ((test, 100), (train, 160)):
            specs.append(spec(
                f"{key}.{split}.jsonl", key, (rel.format(split),), _conll(rel.format(split), limit),
                f"first {limit} {split} sentences of {corpus} as {{id, tokens, tags}} (id: the sentence's number "
                "in the file, -DOCSTART- not counted; tags as in the file)",
                sci.format(upstream.format(split)), SCIBERT_REV, SCIBERT_LICENCE,
                f"{key} {split} (see conf/datasets/{key}.yaml)"))
    tox_src = "github t-davidson/hate-speech-and-offensive-language data/labeled_data.csv (every 8th record)"
    for fold, limit in (("test", 150), ("train", 320)):
        specs.append(spec(
            f"toxicity_detection.{fold}.jsonl", "toxicity_detection",
            ("toxicity_detection/labeled_data.every8th.csv",), _toxicity(fold, limit),
            f"first {limit} records (file order) of the every-8th-record CSV whose tweet falls in the {fold} fold "
            "(sha256 of the tweet modulo 5 == 0: test, else train); CSV columns as keys, the unnamed index "
            "column as 'index'. Offensive content", tox_src, "cb50f7e", "MIT",
            f"tdavidson/hate_speech_offensive train, {fold} fold by the same rule"))
    specs.append(spec(
        "mediqa.test.jsonl", "mediqa", ("mediqa/MEDIQA2019-Task2-RQE-TestSet-wLabels.xml",), _mediqa_rqe,
        "all 230 pairs of the RQE test set: each <pair>'s attributes pid, value and children chq, faq",
        "github abachaa/MEDIQA2019 MEDIQA_Task2_RQE/MEDIQA2019-Task2-RQE-TestSet-wLabels.xml", "ae5d382",
        "none stated (NLM shared-task release; cite Ben Abacha et al. 2019)", "bigbio/mediqa_rqe test"))
    return specs
