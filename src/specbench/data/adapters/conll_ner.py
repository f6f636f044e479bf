"""Named entities from CoNLL-style corpora (SciBERT's SciERC, JNLPBA, NCBI-disease and BC5CDR files).

A record is one sentence: ``tokens`` and its tags, as strings (``tags``: the shipped slices, cut
from the CoNLL files by scripts/structure_slices.py) or as a hub dataset's ``ner_tags`` class ids,
which the corpus's own adapter (``jnlpba``, ``ncbi_disease``, ``bc5cdr``) decodes with that hub
copy's tag names through :func:`ner_item`.

Tags are rewritten as IOB2 (``B-`` opens every entity) from the spans seqeval reads in them:
SciERC's and BC5CDR's files are IOB1 (``I-`` opens an entity unless it touches one of the same
type), and one convention across corpora is what a token-classification probe should learn.
The spans, and so the reference (:func:`specbench.spans.format_entities`), do not change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from specbench.data.adapters import adapter
from specbench.spans import entity_spans, format_entities
from specbench.types import Item


def iob2(tags: Sequence[str]) -> list[str]:
    """The same entities (as seqeval reads them) written IOB2; tags outside any span stay as they are."""
    out = list(tags)
    for etype, start, end in entity_spans(list(tags)):
        out[start] = f"B-{etype}"
        for k in range(start + 1, end + 1):
            out[k] = f"I-{etype}"
    return out


def ner_item(rec: Mapping[str, Any], i: int, split: str, names: Sequence[str] | None = None,
             rename: Mapping[str, str] | None = None) -> Item:
    """One sentence as an Item; ``names`` decode integer tags (a hub ClassLabel), ``rename`` maps
    entity types (BC5CDR's Chemical/Disease -> Entity)."""
    tokens = [str(t) for t in rec["tokens"]]
    raw = rec.get("tags", rec.get("ner_tags"))
    if raw is None:
        raise ValueError(f"NER record {split}/{i} has neither 'tags' nor 'ner_tags'; keys: {', '.join(rec)}")
    tags: list[str] = []
    for t in raw:
        if isinstance(t, int):
            if names is None or not 0 <= t < len(names):
                raise ValueError(f"NER record {split}/{i}: integer tag {t} and no tag names to decode it "
                                 f"(known: {list(names or [])})")
            t = names[t]
        tag = str(t)
        if rename and tag[:2] in ("B-", "I-") and tag[2:] in rename:
            tag = tag[:2] + rename[tag[2:]]
        tags.append(tag)
    tags = iob2(tags) if len(tags) == len(tokens) else tags  # unequal lengths: data.loading refuses the item
    rid = rec.get("id")
    doc = {"tokens": tokens, "tags": tags, "text": " ".join(tokens)}
    doc["answer"] = format_entities(tokens, tags) if len(tags) == len(tokens) else ""
    return Item(id=f"{split}/{i if rid is None else rid}", doc=doc, reference=doc["answer"])


@adapter("conll_ner")
def normalize(rec: Mapping[str, Any], i: int, split: str) -> Item:
    return ner_item(rec, i, split)
