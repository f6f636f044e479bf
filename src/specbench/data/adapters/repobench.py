"""RepoBench v1.1 next-line completion (Liu et al. 2023): predict the line after a repository file's prefix.

Hub layout (tianyang/repobench_python_v1.1, splits cross_file_first / cross_file_random / in_file):
``repo_name``, ``file_path``, ``context`` (list of ``{identifier, path, snippet}`` from other files),
``import_statement``, ``cropped_code``, ``next_line``, ``gold_snippet_index``, ``token_num``, ``level``.

The prompt is RepoBench's own ``construct_prompt`` (Leolty/repobench, v1.1, Python): ``# Repo Name: <repo>``,
then each cross-file snippet as ``# Path: <path>\\n<snippet>\\n\\n``, then the in-file part
``# Path: <file_path>\\n<import_statement>\\n<cropped_code>\\n``, with runs of 4+ newlines collapsed to two.
Its token budget (15,800 tokens of the model's tokenizer, dropping cross-file lines from the end) needs a
tokenizer the adapter does not have; it is not applied here (see the dataset's notes)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from specbench.data.adapters import adapter
from specbench.types import Item

_MANY_NEWLINES = re.compile(r"\n{4,}")


def construct_prompt(rec: Mapping[str, Any], comment: str = "#") -> str:
    """RepoBench's prompt for one record (no token budget): cross-file context, then the in-file code."""
    cross = f"{comment} Repo Name: {rec['repo_name']}\n"
    for snippet in rec.get("context") or []:
        cross += f"{comment} Path: {snippet['path']}\n{snippet['snippet']}" + "\n\n"
    in_file = f"{comment} Path: {rec['file_path']}\n{rec['import_statement']}\n{rec['cropped_code']}\n"
    return _MANY_NEWLINES.sub("\n\n", cross + in_file)


@adapter("repobench")
def normalize(rec: Mapping[str, Any], i: int, split: str) -> Item:
    missing = [k for k in ("repo_name", "file_path", "import_statement", "cropped_code", "next_line") if k not in rec]
    if missing:
        raise ValueError(f"repobench record {i} ({split}): missing fields {', '.join(missing)}; a v1.1 record has "
                         "repo_name, file_path, context, import_statement, cropped_code, next_line")
    doc = {"prompt": construct_prompt(rec), "repo_name": rec["repo_name"], "file_path": rec["file_path"],
           "level": rec.get("level"), "token_num": rec.get("token_num"), "next_line": rec["next_line"]}
    return Item(id=f"{split}-{i}", doc=doc, reference=rec["next_line"])
