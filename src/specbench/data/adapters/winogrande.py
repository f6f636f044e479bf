"""WinoGrande (allenai/winogrande, or llm-foundry's conversion): fill the blank, two options.

Partial evaluation, as lm-eval: each option gives its own context and the rest of the
sentence is one fixed continuation, so the choices are contexts (``partial=True``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from specbench.data.adapters import adapter
from specbench.types import Item


@adapter("winogrande", partial=True)
def normalize(rec: Mapping[str, Any], i: int, split: str) -> Item:
    if "sentence" in rec:  # allenai/winogrande; lm-eval's preprocess_winogrande
        sentence = rec["sentence"]
        blank = sentence.index("_")
        contexts = [sentence[:blank] + opt for opt in (rec["option1"], rec["option2"])]
        continuation = sentence[blank + 1 :].strip()
        gold = {"1": 0, "2": 1}.get(str(rec["answer"]))
        doc: dict[str, Any] = {k: rec[k] for k in ("sentence", "option1", "option2", "answer")}
    else:  # llm-foundry: context_options, continuation, gold (already split the same way)
        contexts, continuation, gold = list(rec["context_options"]), rec["continuation"], int(rec["gold"])
        doc = {}
    if gold is None:
        raise ValueError(f"winogrande record {i} has no answer (the test split is unlabelled)")
    doc.update(contexts=contexts, continuation=continuation, gold=gold)
    return Item(id=f"{split}/{i}", doc=doc, reference=contexts[gold], choices=contexts, gold=gold)
