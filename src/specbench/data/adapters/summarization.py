"""Long-document summarization (Cohan et al. 2018): arXiv and PubMed articles with their abstracts.

Shapes: ``ccdv/arxiv-summarization`` / ``ccdv/pubmed-summarization`` (``article``, ``abstract``) and
``armanc/scientific_papers`` (the same, plus ``section_names``).  The article is kept whole; how much
of it a prompt shows is the dataset YAML's rule (its template truncates), not the adapter's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from specbench.data.adapters import adapter
from specbench.types import Item


@adapter("summarization")
def normalize(rec: Mapping[str, Any], i: int, split: str) -> Item:
    abstract = str(rec["abstract"]).strip()
    doc = {"article": str(rec["article"]), "abstract": abstract, "answer": abstract,
           "section_names": rec.get("section_names")}
    return Item(id=f"{split}/{i}", doc=doc, reference=abstract)
