"""Shared fixtures: the real registry, a scratch copy of conf/ to break on purpose, and
MLflow sqlite stores (one per test, or one per module for runs that build on each other)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from specbench.registry import load_registry

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SEEDS = ROOT.parent / "shared" / "seeds"
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _no_inherited_mlflow_experiment(monkeypatch: pytest.MonkeyPatch) -> None:
    """mlflow.set_experiment exports MLFLOW_EXPERIMENT_ID into this process's environment, and
    every subprocess a later test starts would inherit it (`mlflow run --experiment-name` then
    refuses both).  Each test starts without it; in-process MLflow keeps its active experiment."""
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)


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


@pytest.fixture(scope="module")
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A sqlite tracking store shared by one test module, in experiment ``test-<module>``
    (test_evaluate.py -> test-evaluate), for modules whose runs build on each other."""
    from specbench import tracking

    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    tracking.setup("test-" + request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_"))
    yield uri
    mp.undo()
