"""The one identity rule: what makes two things the same experiment.

Every digest specbench records or compares goes through :func:`digest`: the cell config hash
(resume keeps a FINISHED cell with the same one), the category plan digest, a quantization
recipe's digest (a checkpoint made with another is stale), a sweep spec's digest and the
generation cache's scope.  Prose fields (notes, display names, descriptions, reasons) are left
out wherever they occur, so editing a comment in conf/ never re-runs an experiment, while every
field that can change an output is in.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, is_dataclass
from enum import Enum
from typing import Any

# Fields that explain, never change, what runs: left out at every depth (``provenance``: where a
# tuned preset came from, not what it sets).
PROSE_FIELDS = frozenset({"notes", "display_name", "description", "planned_reason", "use_cases", "caption",
                          "provenance"})


def canonical(obj: Any) -> Any:
    """JSON-able form of ``obj`` with dataclasses as dicts, enums by value and prose dropped."""
    if is_dataclass(obj) and not isinstance(obj, type):
        obj = asdict(obj)
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, dict):
        return {str(k): canonical(v) for k, v in obj.items() if k not in PROSE_FIELDS}
    if isinstance(obj, (list, tuple)):
        return [canonical(v) for v in obj]
    return obj


def digest(obj: Any, length: int = 16) -> str:
    """Stable hex digest of ``obj`` under the identity rule (sorted keys; str() for the rest)."""
    blob = json.dumps(canonical(obj), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]
