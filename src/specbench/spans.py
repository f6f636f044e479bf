"""The canonical text of a structure task's answer, shared by the three places that meet it.

Adapters write a NER item's reference with it, an encoder probe writes its predictions with it,
and a generative model is asked for it; scorers (``scoring.structure``) parse it back.  One
rule for specialists and generalists, so their scores are comparable:

- classification: the label itself;
- NER: one line per entity, ``<type>: <entity text>`` (its tokens joined by single spaces), in
  order of first appearance, each (type, text) pair once; no entity at all: the line ``none``.

Spans come from BIO tags by seqeval's own reader (CoNLL convention: an ``I-`` after ``O`` or
after another type starts an entity), so a reference and seqeval's F1 agree on what an entity is.
"""

from __future__ import annotations

NO_ENTITIES = "none"


def entity_spans(tags: list[str]) -> list[tuple[str, int, int]]:
    """(type, first token, last token inclusive) of each entity in BIO tags, as seqeval reads them."""
    from seqeval.metrics.sequence_labeling import get_entities

    return [(t, start, end) for t, start, end in get_entities(list(tags))]


def format_entities(tokens: list[str], tags: list[str]) -> str:
    """The canonical entity list of a tagged sentence (see the module docstring)."""
    seen: dict[tuple[str, str], None] = {}
    for etype, start, end in entity_spans(tags):
        seen.setdefault((etype, " ".join(tokens[start:end + 1])), None)
    return "\n".join(f"{etype}: {text}" for etype, text in seen) or NO_ENTITIES
