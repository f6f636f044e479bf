"""The session fixture over tests/tiny_runs.py: real SmolLM2 runs made once per session."""

from __future__ import annotations

import pytest
from tests.tiny_runs import make_runs


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return make_runs(tmp_path_factory.mktemp("tiny_cmp"))
