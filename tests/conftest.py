"""Shared fixtures: the real registry, a scratch copy of conf/ to break on purpose, and
MLflow sqlite stores (one per test, or one per module for runs that build on each other)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from specbench.registry import load_registry

pytest_plugins = ["tests.pg_fixtures"]  # pg_server: a real PostgreSQL for the session, started on first use

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
# The shared folder beside a development checkout (../shared: the full source data and the design
# notes).  A user's clone has none, so no test may need it: with it, the tests that can also check the
# full sources (slice rebuilds, whole splits); without it, the shipped slices and tests/fixtures.
# SPECBENCH_SHARED=/nonexistent shows what a plain clone sees.
SHARED = Path(os.environ.get("SPECBENCH_SHARED") or ROOT.parent / "shared")
SEEDS = SHARED / "seeds"
SHARED_DATA = SHARED / "data"
HAVE_SHARED_DATA = (SHARED_DATA / "SHA256SUMS").is_file()
FIXTURES = ROOT / "tests" / "fixtures"  # real excerpts of ../shared, sources in its README.md
FIXTURE_SEEDS = FIXTURES / "seeds"


def seed_texts() -> list[str]:
    """The design notes (../shared/seeds/*.txt) when present, else their excerpts in
    tests/fixtures/seeds/ (every line the registry tests parse; tests/test_fixtures.py checks
    that they are what tests/fixtures/make_fixtures.py cuts from the notes)."""
    folder = SEEDS if SEEDS.is_dir() else FIXTURE_SEEDS
    files = sorted(folder.glob("*.txt"))
    assert files, f"no *.txt seed notes in {folder}"
    return [f.read_text(encoding="utf-8") for f in files]


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


def slices_against_their_readme(make_slices) -> list[str]:
    """What a rebuild from ../shared/data checks, short of the sources themselves, for a clone that
    has none: every shipped slice, image and the image list against the checksums, row counts and
    provenance the slices' README.md records (the README is re-rendered by ``make_slices`` itself from
    the shipped files and compared byte for byte, less its lines of source checksums), and no file
    more or less than the script writes.  Returns the paths that differ, [] when all agree."""
    from specbench.data import SLICES_DIR

    counts: dict[str, int] = {}
    digests: dict[str, str] = {}
    images: dict[str, dict[str, str]] = {}
    for spec in make_slices.SPECS:
        blob = (SLICES_DIR / spec.file).read_bytes()
        lines = blob.decode("utf-8").split("\n")[:-1]  # the script ends every line, the last one too
        counts[spec.file] = len(lines)
        digests[spec.file] = make_slices.sha256_file(SLICES_DIR / spec.file)
        if spec.images:
            names = [json.loads(line)["image"] for line in lines]
            images[spec.file] = {n: make_slices.sha256_file(SLICES_DIR / n) for n in names}
    image_bytes = {f: sum((SLICES_DIR / p).stat().st_size for p in v) for f, v in images.items()}
    listing = "".join(f"{d}  {p}\n" for p, d in sorted((p, d) for v in images.values() for p, d in v.items()))
    digests[make_slices.IMAGE_SUMS] = hashlib.sha256(listing.encode("utf-8")).hexdigest()
    differ = []
    if (SLICES_DIR / make_slices.IMAGE_SUMS).read_text(encoding="utf-8") != listing:
        differ.append(make_slices.IMAGE_SUMS)
    rendered = make_slices.render_readme(make_slices.SPECS, counts, digests, {}, images, image_bytes)
    readme = (SLICES_DIR / "README.md").read_text(encoding="utf-8")
    if "".join(ln for ln in readme.splitlines(keepends=True) if not ln.startswith("- shared/data/")) != rendered:
        differ.append("README.md")
    written = {s.file for s in make_slices.SPECS} | {"README.md", make_slices.IMAGE_SUMS}
    written |= {n for v in images.values() for n in v}
    shipped = {p.relative_to(SLICES_DIR).as_posix() for p in SLICES_DIR.rglob("*") if p.is_file()}
    return sorted(differ + list(written ^ shipped))
