"""Facts of the model registry (conf/models/*.yaml), checked on the real files.

The design notes in ``../shared/seeds/*.txt`` (beside the repository root) name the
models the registry must hold; the names are extracted from the notes at test time, so
a note that gains a model also gains a check.  A clone without ../shared reads the notes'
excerpts in tests/fixtures/seeds/ instead, which must give every fact the notes give.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
import yaml
from tests.conftest import FIXTURE_SEEDS, SEEDS, seed_texts

from specbench.registry import load_file
from specbench.registry.schema import Architecture, ModelConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
MODELS_DIR = REPO_ROOT / "conf" / "models"
CATEGORIES_DIR = REPO_ROOT / "conf" / "categories"
DATASETS_DIR = REPO_ROOT / "conf" / "datasets"
PRESETS_FILE = REPO_ROOT / "conf" / "presets.yaml"

# The category keys models may specialize in (conf/categories/ is written from these).
CATEGORY_KEYS = frozenset({
    "coding_specialists", "mathematical_reasoning", "biomedical_specialists",
    "multimodal_processing", "general_purpose", "efficiency_optimized", "scientific_research",
    "safety_alignment", "mixture_of_experts", "reasoning_specialized", "text_generation",
    "data_science", "research_transparency",
})

# Models the notes describe as BERT-style encoders or encoder-decoders.
ENCODER_ONLY = ("bio_clinicalbert", "pubmedbert_large", "scibert_base", "specter2_base",
                "longformer_large", "safety_bert", "layoutlmv3_base")
ENCODER_DECODER = ("clinical_t5_large", "donut_base")

MODEL_FILES = sorted(MODELS_DIR.glob("*.yaml"))
IDENT = r"[a-z][a-z0-9_]*"


# -- registry ------------------------------------------------------------------------------

@cache
def models() -> dict[str, ModelConfig]:
    return {p.stem: load_file(p, ModelConfig) for p in MODEL_FILES}


def preset_names() -> set[str]:
    return set(yaml.safe_load(PRESETS_FILE.read_text())["presets"])


# -- seeds (tests.conftest.seed_texts: the notes, or their excerpts in a clone) ----------------

def _yaml_list_items(text: str, parent_key: str) -> set[str]:
    """Items of YAML-ish lists nested under ``parent_key:`` lines (at any depth)."""
    found: set[str] = set()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        head = re.match(rf"^(\s*){parent_key}:\s*$", line)
        if not head:
            continue
        indent = len(head.group(1))
        for nxt in lines[i + 1:]:
            if not nxt.strip():
                continue
            if len(nxt) - len(nxt.lstrip()) <= indent:
                break
            item = re.match(rf"^\s*-\s+({IDENT})\s*(?:#.*)?$", nxt)
            if item:
                found.add(item.group(1))
    return found


def category_names() -> set[str]:
    names = set(CATEGORY_KEYS)
    for path in CATEGORIES_DIR.glob("*.yaml"):
        names.add(path.stem)
        data = yaml.safe_load(path.read_text()) or {}
        names.update(data.get("aliases") or [])
    return names


def dataset_names(texts: list[str]) -> set[str]:
    """Dataset names: conf/datasets/ plus every name the notes use as a dataset."""
    names = {p.stem for p in DATASETS_DIR.glob("*.yaml")}
    for text in texts:
        for rest in re.findall(r"\*\*[^*\n]*Datasets?\*\*:?(.*)", text):
            names.update(re.findall(rf"\b{IDENT}\b", re.sub(r"\([^)]*\)", "", rest)))
        names.update(re.findall(rf"`({IDENT})`\s+dataset", text))
        for arg in re.findall(r"--datasets?\s+([a-z0-9_,]+)", text):
            names.update(arg.split(","))
        names.update(_yaml_list_items(text, "datasets"))
        names.update(_yaml_list_items(text, "primary"))
        names.update(_yaml_list_items(text, "secondary"))
    return names


def backticked_model_names(texts: list[str]) -> set[str]:
    """Backticked identifiers of the notes that are neither categories nor datasets."""
    ticked = {name for text in texts for name in re.findall(rf"`({IDENT})`", text)}
    return ticked - category_names() - dataset_names(texts)


def listed_model_names(texts: list[str]) -> set[str]:
    """Model names the notes list without backticks: 'Models:' lines, bare name lists,
    YAML 'models:' blocks, '| - name |' table cells and --model(s) arguments."""
    names: set[str] = set()

    def items(csv: str) -> set[str]:
        out = set()
        for part in re.sub(r"\([^)]*\)", "", csv).split(","):
            part = part.strip()
            if re.fullmatch(IDENT, part):
                out.add(part)
        return out

    for text in texts:
        for rest in re.findall(r"\*\*Models\*\*:(.*)", text):
            names |= items(rest)
        for csv in re.findall(rf"^-\s+({IDENT}(?:,\s*{IDENT})+)\s*$", text, re.M):
            names |= items(csv)
        names |= _yaml_list_items(text, "models")
        names.update(re.findall(rf"\|\s*-\s+({IDENT})\s*\|", text))
        for arg in re.findall(r"--models?\s+([a-z0-9_,]+)", text):
            names.update(arg.split(","))
    return names - category_names() - dataset_names(texts)


def gpu_requirement_rows(texts: list[str]) -> dict[str, tuple[float, int, int, int]]:
    """Seed 002's table: | `key` | size GB | min GPUs | tensor parallel | memory util % |"""
    row = re.compile(rf"^\|\s*`({IDENT})`\s*\|\s*([\d.]+)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*(\d+)%\s*\|", re.M)
    return {m[0]: (float(m[1]), int(m[2]), int(m[3]), int(m[4]))
            for text in texts for m in row.findall(text)}


def batch_size_rows(texts: list[str]) -> dict[str, int]:
    """Seed 002's table: | `key` | evaluation batch size | reason |"""
    row = re.compile(rf"^\|\s*`({IDENT})`\s*\|\s*(\d+)\s*\|\s*[A-Za-z]", re.M)
    return {m[0]: int(m[1]) for text in texts for m in row.findall(text)}


# -- every file ----------------------------------------------------------------------------

def test_registry_is_complete_enough():
    # the seeds' original registry held 61 models; this one must hold at least 62 files
    assert len(MODEL_FILES) >= 62, f"only {len(MODEL_FILES)} model files in {MODELS_DIR}"


@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: p.stem)
def test_model_file_loads(path: Path):
    model = load_file(path, ModelConfig)
    assert model.key == path.stem
    assert model.category in CATEGORY_KEYS, f"{model.key}: unknown category {model.category!r}"
    assert model.preset in preset_names(), f"{model.key}: unknown preset {model.preset!r}"
    assert model.max_model_len <= model.context_window
    assert model.tensor_parallel_size <= model.min_gpus
    assert model.revision == "main"


@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: p.stem)
def test_tensor_parallel_divides_attention_heads(path: Path):
    model = models()[path.stem]
    if model.num_attention_heads is None:
        pytest.skip(f"{model.key}: no top-level attention head count")
    assert model.num_attention_heads % model.tensor_parallel_size == 0


def test_api_only_models_have_no_hf_id():
    api = [m for m in models().values() if m.api_only]
    assert api, "expected at least one api_only model (claude_sonnet)"
    for m in api:
        assert m.hf_id is None, f"{m.key} is api_only but names {m.hf_id}"


def test_hub_models_have_owner_slash_name_ids():
    for m in models().values():
        if not m.api_only:
            assert m.hf_id and re.fullmatch(r"[\w.-]+/[\w.-]+", m.hf_id), f"{m.key}: bad hf_id {m.hf_id!r}"


def test_encoder_only_models_cannot_generate():
    enc = [m for m in models().values() if m.architecture == Architecture.encoder_only]
    assert enc
    for m in enc:
        assert m.can_generate is False, m.key
        assert m.instruct is False, f"{m.key}: an encoder has no chat template"
    for m in models().values():
        if m.architecture != Architecture.encoder_only:
            assert m.can_generate is True, m.key


def test_bert_style_and_seq2seq_models_have_their_architecture():
    reg = models()
    for key in ENCODER_ONLY:
        assert reg[key].architecture == Architecture.encoder_only, key
    for key in ENCODER_DECODER:
        assert reg[key].architecture == Architecture.encoder_decoder, key


def test_moe_models_declare_active_parameters():
    for m in models().values():
        if m.architecture == Architecture.moe:
            assert m.active_parameters_b is not None, f"{m.key}: MoE without active_parameters_b"
        else:
            assert m.active_parameters_b is None, f"{m.key}: active_parameters_b on a dense model"


def test_quantized_models_point_to_a_parent_that_exists():
    reg = models()
    for m in reg.values():
        if m.parent is not None:
            assert m.parent in reg, f"{m.key}: parent {m.parent!r} is not a registry key"
    assert reg["biomistral_7b"].quantization.value == "awq"
    assert reg["biomistral_7b"].parent == "biomistral_7b_unquantized"


# -- facts taken from the seed notes ---------------------------------------------------------

def test_every_backticked_model_name_in_the_seeds_is_a_registry_key():
    names = backticked_model_names(seed_texts())
    assert len(names) >= 20, f"seed parsing found too few model names: {sorted(names)}"
    missing = sorted(names - set(models()))
    assert not missing, f"named in the seeds but absent from {MODELS_DIR}: {missing}"


def test_every_listed_model_name_in_the_seeds_is_a_registry_key():
    names = listed_model_names(seed_texts())
    assert len(names) >= 30, f"seed parsing found too few model names: {sorted(names)}"
    missing = sorted(names - set(models()))
    assert not missing, f"listed in the seeds but absent from {MODELS_DIR}: {missing}"


def test_seed_gpu_requirements_are_kept():
    rows = gpu_requirement_rows(seed_texts())
    assert len(rows) >= 7, f"GPU requirement table not found: {rows}"
    preset_for = {90: "performance", 85: "balanced", 75: "memory_optimized"}
    reg = models()
    for key, (size_gb, min_gpus, tp, util) in rows.items():
        m = reg[key]
        assert m.size_gb == pytest.approx(size_gb), key
        assert m.min_gpus == min_gpus, key
        assert m.tensor_parallel_size == tp, key
        assert m.preset == preset_for[util], key


def test_seed_batch_sizes_are_kept():
    rows = batch_size_rows(seed_texts())
    assert len(rows) >= 7, f"batch size table not found: {rows}"
    reg = models()
    for key, batch in rows.items():
        assert reg[key].evaluation_batch_size == batch, key


def _seed_facts(texts: list[str]) -> dict[str, object]:
    return {"backticked": backticked_model_names(texts), "listed": listed_model_names(texts),
            "datasets": dataset_names(texts), "gpu": gpu_requirement_rows(texts), "batch": batch_size_rows(texts)}


def test_the_seed_excerpts_give_every_fact_the_notes_give():
    """tests/fixtures/seeds/ stand in for the notes in a clone: each fact the tests above take from
    the notes comes out of the excerpts the same (checked wherever the notes are beside the repo)."""
    files = sorted(FIXTURE_SEEDS.glob("*.txt"))
    facts = _seed_facts([f.read_text(encoding="utf-8") for f in files])
    assert files and all(facts.values()), facts
    if SEEDS.is_dir():
        assert [f.name for f in files] == sorted(f.name for f in SEEDS.glob("*.txt"))
        assert facts == _seed_facts(seed_texts())
