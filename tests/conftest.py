"""Shared fixtures: the real registry, a scratch copy of conf/ to break on purpose,
and an MLflow sqlite store per test session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from specbench.registry import load_registry

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SEEDS = ROOT.parent / "shared" / "seeds"
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def registry():
    return load_registry(CONF)


@pytest.fixture
def conf_copy(tmp_path: Path) -> Path:
    """A writable copy of conf/ for tests that break a file on purpose."""
    dst = tmp_path / "conf"
    shutil.copytree(CONF, dst)
    return dst


@pytest.fixture
def mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh sqlite tracking store for one test."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri
