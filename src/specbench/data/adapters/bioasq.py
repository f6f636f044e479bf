"""BioASQ Task B yes/no questions, from the JSON file a registered participant downloads.

BioASQ distributes its data only through its participants area (http://participants-area.bioasq.org,
free registration), so the file is the user's (``data.local``: the path in ``$SPECBENCH_BIOASQ``).
Its layout, for training files (``trainingNb.json``) and golden test batches (``NB1_golden.json``)
alike, is ``{"questions": [{"id", "type", "body", "snippets": [{"text", "document", ...}],
"exact_answer", "ideal_answer", "documents", "concepts"}, ...]}``; for a yes/no question
(``type: yesno``) ``exact_answer`` is ``"yes"`` or ``"no"``.  Only those are kept (``split_filter``):
factoid, list and summary questions need other answers and measures (MRR, list F1, ROUGE).

The answer is chosen by log-likelihood between ``yes`` and ``no`` after the gold snippets, as
lm-evaluation-harness's ``pubmedqa`` task asks PubMedQA's (snippets are excerpts of PubMed
abstracts, as PubMedQA's contexts are); that is Phase B's setting, where the snippets are given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from specbench.data.adapters import adapter
from specbench.types import Item

BIOASQ_CHOICES = ["yes", "no"]


def _yes_no(rec: Mapping[str, Any], split: str) -> bool:
    """The yes/no questions of a Task B file (whatever the split: one file is one set)."""
    return rec.get("type") == "yesno"


def _texts(rec: Mapping[str, Any], qid: str, field: str) -> list[str]:
    """A list of strings, or of objects with a ``text`` (snippets); a bare string is one."""
    value = rec.get(field)
    value = [value] if isinstance(value, str) else value
    if not isinstance(value, list):
        return []
    out = [v.get("text") if isinstance(v, Mapping) else v for v in value]
    if not all(isinstance(t, str) for t in out):
        raise ValueError(f"question {qid}: '{field}' must be strings or objects with a 'text' string")
    return out


@adapter("bioasq", split_filter=_yes_no)
def normalize(rec: Mapping[str, Any], i: int, split: str) -> Item:
    qid = str(rec.get("id") or "").strip()
    if not qid:
        raise ValueError("a question without an 'id' (BioASQ's 24-hex question id)")
    body = rec.get("body")
    if not isinstance(body, str) or not body.strip():
        raise ValueError(f"question {qid}: no 'body' (the question text)")
    if "exact_answer" not in rec:
        raise ValueError(f"question {qid}: no 'exact_answer' (a test batch without answers? use the golden "
                         "file of that batch, or a training file)")
    answer = rec["exact_answer"]
    gold = answer.strip().lower() if isinstance(answer, str) else None  # the evaluator reads it ignoring case
    if gold not in BIOASQ_CHOICES:
        raise ValueError(f"question {qid}: exact_answer {answer!r} of a yes/no question is not 'yes' or 'no'")
    snippets = _texts(rec, qid, "snippets")
    if not snippets:
        raise ValueError(f"question {qid}: no 'snippets' with text (Phase B and training files give them)")
    doc = {"id": qid, "body": body.strip(), "snippets": snippets, "exact_answer": gold,
           "ideal_answer": _texts(rec, qid, "ideal_answer"),
           "documents": [d for d in rec.get("documents") or [] if isinstance(d, str)]}
    return Item(id=qid, doc=doc, reference=gold, choices=list(BIOASQ_CHOICES), gold=BIOASQ_CHOICES.index(gold))
