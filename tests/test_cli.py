"""The `specbench` command: listings, filters, JSON output and one-line errors (exit 2)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from tests.conftest import CONF, FIXTURE_SEEDS, ROOT, SEEDS, seed_texts

from specbench.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """The installed entry point, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "specbench.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def _json(capsys, *argv: str):
    assert main(["--conf", str(CONF), *argv]) == 0
    return json.loads(capsys.readouterr().out)


def seed_named(texts: list[str]) -> set[str]:
    """Names the design notes give: backticked, in prose lists, in YAML "models:" lists."""
    named = set()
    for text in texts:
        named |= set(re.findall(r"`([a-z][a-z0-9_]+)`", text))
        # model lists in prose: "- qwen3_8b, qwen3_14b, codestral_22b"
        for line in re.findall(r"^- ([a-z0-9_]+(?:, [a-z0-9_]+)+)\s*$", text, re.M):
            named |= set(line.split(", "))
        # YAML lists under "models:" in the plan document
        for block in re.findall(r"models:\s*\n((?:\s+- [a-z0-9_]+.*\n)+)", text):
            named |= set(re.findall(r"- ([a-z0-9_]+)", block))
    return named


def test_list_models_json_holds_every_seed_model(capsys):
    keys = {m["key"] for m in _json(capsys, "list", "models", "--format", "json")}
    category_or_dataset = {"coding_specialists", "general_purpose", "multimodal_processing", "mixture_of_experts",
                           "reasoning_specialized", "arc_challenge", "docvqa", "enhanced_math_fixed", "gsm8k",
                           "hellaswag", "humaneval", "mmlu", "repobench"}
    named = seed_named(seed_texts())  # the notes, or their excerpts in a clone without ../shared
    if SEEDS.is_dir():  # the excerpts must name what the notes name
        assert seed_named([f.read_text(encoding="utf-8") for f in sorted(FIXTURE_SEEDS.glob("*.txt"))]) == named
    missing = sorted(named - category_or_dataset - keys)
    assert not missing, f"seed models missing from conf/models: {missing}"


def test_list_filters(capsys):
    coding = _json(capsys, "list", "models", "--category", "coding_specialists", "--format", "json")
    assert {"qwen3_coder_30b", "starcoder2_15b"} <= {m["key"] for m in coding}
    small = _json(capsys, "list", "models", "--size", "<1", "--format", "json")
    assert small and all(m["parameters_b"] < 1 for m in small)
    mit = _json(capsys, "list", "models", "--license", "mit", "--format", "json")
    assert mit and all("mit" in m["license"].lower() for m in mit)
    cats = _json(capsys, "list", "categories", "--format", "json")
    assert "reasoning_specialized" in {c["key"] for c in cats}
    ds = _json(capsys, "list", "datasets", "--category", "coding_specialists", "--format", "json")
    assert "humaneval" in {d["key"] for d in ds}


def test_show_and_mapping(capsys):
    m = _json(capsys, "show", "model", "smollm2_135m", "--format", "json")
    assert m["hf_id"] == "HuggingFaceTB/SmolLM2-135M-Instruct" and "efficiency_optimized" in m["member_of"]
    rows = _json(capsys, "mapping", "--format", "json")
    gsm = [r for r in rows if r["category"] == "mathematical_reasoning" and r["dataset"] == "gsm8k"]
    assert gsm and gsm[0]["samples"] == 1319 and gsm[0]["status"] == "ready"


def test_typo_exits_2_with_suggestion():
    r = run_cli("show", "model", "qwen25_7")
    assert r.returncode == 2
    assert "qwen25_7b" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_validate_exit_codes(conf_copy):
    assert run_cli("validate").returncode == 0
    p = conf_copy / "presets.yaml"
    p.write_text(p.read_text().replace("0.90", "1.5"))
    r = run_cli("--conf", str(conf_copy), "validate")
    assert r.returncode == 2
    assert "presets.yaml" in r.stderr and "gpu_memory_utilization" in r.stderr


def test_mapping_table_renders():
    r = run_cli("mapping")
    assert r.returncode == 0 and "efficiency_optimized" in r.stdout and "ready" in r.stdout


def test_bad_size_filter_is_one_line():
    r = run_cli("list", "models", "--size", "huge")
    assert r.returncode == 2 and "--size" in r.stderr
