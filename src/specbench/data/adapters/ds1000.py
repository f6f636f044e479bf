"""DS-1000 (xlangai/DS-1000): data-science problems whose answer code runs against hidden tests.

The hub's simplified format has, per problem: ``prompt`` (a StackOverflow question and the code
around the gap, ending in ``<code>``), ``reference_code``, ``code_context`` (the test program:
``generate_test_case``, ``exec_context`` with an ``[insert]`` gap, ``test_execution(solution)``
and for some problems ``test_string(solution)``) and ``metadata`` (``problem_id``, ``library``,
``perturbation_type``, ...).  ``code_context`` becomes :attr:`Item.test`; the ``ds1000`` scorer
assembles the program as DS-1000's own evaluation does.

``data_science_tasks`` keeps the problems of the libraries the seeds name for data-science work
(pandas, NumPy, scikit-learn: ``split_filter``); the others need TensorFlow / PyTorch or compare
rendered plots.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from specbench.data.adapters import adapter
from specbench.types import Item

# DS-1000's metadata.library values kept (seed 000, "Data Science & Analytics": Pandas, NumPy, scikit-learn)
LIBRARIES = ("Pandas", "Numpy", "Sklearn")


def _seed_libraries(rec: Mapping[str, Any], split: str) -> bool:
    return (rec.get("metadata") or {}).get("library") in LIBRARIES


@adapter("ds1000", split_filter=_seed_libraries)
def normalize(rec: Mapping[str, Any], i: int, split: str) -> Item:
    meta = dict(rec.get("metadata") or {})
    pid = meta.get("problem_id", i)
    context = rec["code_context"]
    if "test_execution(" not in context:
        raise ValueError(f"DS-1000 problem {pid}: its code_context defines no test_execution(solution)")
    doc = {"prompt": rec["prompt"], "reference_code": rec["reference_code"], "problem_id": str(pid),
           "library": meta.get("library"), "perturbation_type": meta.get("perturbation_type")}
    return Item(id=str(pid), doc=doc, reference=rec["reference_code"], test=context)
