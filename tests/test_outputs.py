"""Where sweeps and quantization write: into the registry they ran with (--conf /
SPECBENCH_CONF), where later commands load it from; in this repository those files are
git-ignored (measured on one machine), and their provenance goes with them."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from tests.conftest import ROOT

from specbench.registry import load_registry
from specbench.sweep.preset import write_tuned_preset


def test_a_tuned_preset_lands_in_the_conf_it_ran_with_and_loads(conf_copy):
    reg = load_registry(conf_copy)
    prov = {"study": "s", "trial": "3", "hardware": "CPU test, 2 cores", "git_commit": "abc"}
    path = write_tuned_preset(reg, "smollm2_135m", reg.preset("balanced"), prov)
    assert path == conf_copy / "presets" / "tuned_smollm2_135m.yaml"
    assert "Measured on CPU test, 2 cores" in path.read_text()
    tuned = load_registry(conf_copy).preset("tuned_smollm2_135m")
    assert tuned.provenance == prov  # the registry's loader reads it back, provenance and all


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="not a git checkout")
def test_what_sweeps_quantize_and_logs_write_is_git_ignored_but_shipped_entries_are_not():
    def ignored(rel: str) -> bool:
        return subprocess.run(["git", "check-ignore", "-q", rel], cwd=ROOT).returncode == 0

    assert ignored("conf/presets/tuned_smollm2_135m.yaml") and ignored("conf/models/qwen25_0_5b_awq.yaml")
    assert ignored("logs/specbench-20260101-000000-evaluate-1.log")
    assert not ignored("conf/models/smollm2_135m_awq.yaml") and not ignored("conf/presets.yaml")
