"""tests/fixtures/ is what tests/fixtures/make_fixtures.py cuts from ../shared: rebuilt and compared byte
for byte where ../shared is beside the repo; in a clone without it, each file against the sha256 its
README records.  Either way nothing is there that the README does not name, and it stays small."""

from __future__ import annotations

import hashlib
import importlib.util
import re
import sys

import pytest
from tests.conftest import FIXTURES, SHARED

README_ROW = re.compile(r"^\| (\S+) \| (\S+) \| (\d+) \| `([0-9a-f]{64})` \|", re.M)


@pytest.fixture
def make_fixtures(monkeypatch: pytest.MonkeyPatch):
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "make_fixtures", mod)  # its dataclasses look themselves up
    spec.loader.exec_module(mod)
    return mod


def test_fixtures_are_their_recorded_excerpts(make_fixtures, tmp_path):
    rows = README_ROW.findall((FIXTURES / "README.md").read_text(encoding="utf-8"))
    assert [r[0] for r in rows] == [f.path for f in make_fixtures.FIXTURES]
    for path, _source, size, digest in rows:
        blob = (FIXTURES / path).read_bytes()
        assert (len(blob), hashlib.sha256(blob).hexdigest()) == (int(size), digest), path
    shipped = {p.relative_to(FIXTURES).as_posix() for p in FIXTURES.rglob("*")
               if p.is_file() and "__pycache__" not in p.parts}
    assert shipped == {r[0] for r in rows} | {"README.md", "make_fixtures.py"}
    assert sum((FIXTURES / p).stat().st_size for p in shipped) < 100_000  # excerpts, not copies
    if (SHARED / "data" / "SHA256SUMS").is_file() and (SHARED / "seeds").is_dir():
        digests = make_fixtures.build(SHARED, tmp_path)
        for path, digest in digests.items():
            assert hashlib.sha256((FIXTURES / path).read_bytes()).hexdigest() == digest, f"{path}: not a rebuild"
