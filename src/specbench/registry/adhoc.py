"""Ad-hoc models: a Hugging Face checkpoint with no registry entry, evaluated for a quick check.

``specbench evaluate --model hf:ORG/NAME[@REVISION]`` or ``--model ./folder`` (a folder holding
an HF checkpoint) builds its :class:`ModelConfig` here, in one place, from the checkpoint's own
files: the context window and attention heads from config.json, the dtype from its
``torch_dtype``, ``instruct`` from whether the tokenizer has a chat template, the parameter
count from the safetensors headers (local) or index (hub), ``vision`` from a ``vision_config``.
These are guesses, not a registry entry's reviewed facts, so every run made with one is tagged
``adhoc: true`` with its source and logs each inferred fact as an ``adhoc.*`` param.  A model
worth comparing deserves a conf/models/ file; an ad-hoc one is never part of a category.

Nothing is downloaded but the small JSON files (hub) and nothing is loaded: the weights are
located and materialized like any model's (``weights.locate``: a local folder is source
``local``).  Bad input (no hub, no config.json) is a :class:`RegistryError`: one line, exit 2.
"""

from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from specbench.registry.loader import Registry, RegistryError
from specbench.registry.schema import Architecture, DType, Modality, ModelConfig, Quantization, VisionConfig

HUB_PREFIX = "hf:"
ADHOC_CATEGORY = "adhoc"  # the category (and role) an ad-hoc cell is tagged with: no registry category
# max_model_len is the context window capped here: enough for every dataset's few-shot prompt plus
# its answer, and a KV cache that fits the CPU backend's default 1 GiB for 8B-class models.
MAX_MODEL_LEN_CAP = 4096
DEFAULT_CONTEXT = 2048  # a config.json that names no context length
_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")
_HEAD_KEYS = ("num_attention_heads", "n_head", "num_heads")
_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
          "F8_E4M3": 1, "F8_E5M2": 1}
_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
_HUB_FILES = ["config.json", "tokenizer_config.json", "chat_template.jinja", "chat_template.json",
              "model.safetensors.index.json"]


class AdhocError(RegistryError):
    """An ad-hoc model that cannot be built (no hub, no config.json): one line, exit 2."""


@dataclass(frozen=True)
class AdhocModel:
    """A registry-less model: its config, where it came from and what was inferred."""

    config: ModelConfig
    source: str  # the folder (absolute) or the hub id
    facts: dict[str, Any]  # every inferred fact, as logged

    @property
    def tags(self) -> dict[str, str]:
        return {"adhoc": "true", "adhoc_source": self.source}

    @property
    def params(self) -> dict[str, Any]:
        return {f"adhoc.{k}": v for k, v in self.facts.items()}


def is_adhoc(reg: Registry, spec: str) -> bool:
    """``hf:ID``, or a path (has a separator, starts with . or ~, or is a folder), not a registry key."""
    if spec in reg.models:
        return False
    return spec.startswith(HUB_PREFIX) or os.sep in spec or spec.startswith((".", "~")) or Path(spec).is_dir()


def adhoc_model(spec: str) -> AdhocModel:
    """The ModelConfig of ``hf:ORG/NAME[@REV]`` or a checkpoint folder, inferred from its files."""
    if spec.startswith(HUB_PREFIX):
        repo, _, revision = spec.removeprefix(HUB_PREFIX).partition("@")
        if not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", repo):
            raise AdhocError(f"'{spec}': expected hf:ORG/NAME[@REVISION]")
        folder = _hub_metadata(spec, repo, revision or "main")
        return _build(folder, repo, revision or "main", local=False, hub_params=_hub_parameters(repo, revision))
    folder = Path(os.path.abspath(Path(spec).expanduser()))  # symlinks kept: the name the user gave
    if not folder.is_dir():
        hint = f" (a hub model is written hf:{spec})" if spec.count("/") == 1 and not spec.startswith(".") else ""
        raise AdhocError(f"'{spec}' is neither a registry model nor a folder{hint}")
    if not (folder / "config.json").is_file():
        raise AdhocError(f"{folder}: no config.json, so not a Hugging Face checkpoint folder")
    return _build(folder, str(folder), "main", local=True)


def _hub_metadata(spec: str, repo: str, revision: str) -> Path:
    """The checkpoint's small JSON files from the hub (a snapshot folder without weights)."""
    from specbench.hub import hub_offline, hub_unreachable

    if hub_offline():
        raise AdhocError(f"{spec}: the hub is offline (HF_HUB_OFFLINE); give a local checkpoint folder instead")
    why = hub_unreachable()
    if why:
        raise AdhocError(f"{spec}: cannot read its config.json: {why}; give a local checkpoint folder instead")
    from huggingface_hub import snapshot_download

    try:
        path = Path(snapshot_download(repo, revision=revision, allow_patterns=_HUB_FILES))
    except Exception as exc:  # not found, gated, connection: many classes, one line
        raise AdhocError(f"{spec}: cannot read its files from the hub: {type(exc).__name__}: "
                         f"{(str(exc).splitlines() or [''])[0][:160]}") from None
    if not (path / "config.json").is_file():
        raise AdhocError(f"{spec}: the hub repo has no config.json, so not a Hugging Face checkpoint")
    return path


def _hub_parameters(repo: str, revision: str) -> int | None:
    """The parameter count the hub computes from the safetensors headers (None when it cannot)."""
    try:
        from huggingface_hub import HfApi

        return sum(HfApi().get_safetensors_metadata(repo, revision=revision or None).parameter_count.values())
    except Exception:  # noqa: BLE001 - no safetensors, or the call failed: the size is estimated instead
        return None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _first(configs: list[dict[str, Any]], keys: tuple[str, ...]) -> Any:
    for cfg in configs:
        for key in keys:
            if isinstance(cfg.get(key), int) and cfg[key] > 0:
                return cfg[key]
    return None


def _has_chat_template(folder: Path) -> bool:
    return bool(_read_json(folder / "tokenizer_config.json").get("chat_template")) or any(
        (folder / name).is_file() for name in ("chat_template.jinja", "chat_template.json"))


def _architecture(cfg: dict[str, Any], text: dict[str, Any]) -> Architecture:
    archs = [a for a in cfg.get("architectures") or [] if isinstance(a, str)]
    if cfg.get("is_encoder_decoder"):
        return Architecture.encoder_decoder
    if archs and not any(a.endswith(("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")) for a in archs):
        return Architecture.encoder_only  # e.g. BertForMaskedLM: runnable_reason refuses it with the reason
    experts = _first([text, cfg], ("num_local_experts", "num_experts", "n_routed_experts"))
    return Architecture.moe if experts and experts > 1 else Architecture.dense


def _safetensors_counts(folder: Path) -> tuple[int, int]:
    """(parameters, bytes) of the folder's safetensors files, from their headers (no tensor read)."""
    params = size = 0
    for file in sorted(folder.glob("*.safetensors")):
        size += file.stat().st_size
        with file.open("rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        for name, meta in header.items():
            if name != "__metadata__":
                count = 1
                for dim in meta["shape"]:
                    count *= dim
                params += count
    return params, size


def _config_estimate(text: dict[str, Any]) -> int:
    """Parameters from the shapes in config.json (12 h^2 per layer plus embeddings): a last resort."""
    hidden = _first([text], ("hidden_size", "n_embd", "d_model")) or 0
    layers = _first([text], ("num_hidden_layers", "n_layer", "num_layers")) or 0
    vocab = _first([text], ("vocab_size",)) or 0
    return 12 * layers * hidden * hidden + vocab * hidden


def _size(folder: Path, local: bool, dtype: str, text: dict[str, Any],
          hub_params: int | None) -> tuple[float, float, str]:
    """(parameters_b, size_gb, how they were found)."""
    bytes_per = _DTYPE_BYTES.get(dtype, 2)
    if hub_params:
        return hub_params / 1e9, hub_params * bytes_per / 1e9, "the hub's safetensors metadata"
    if local:
        params, size = _safetensors_counts(folder)
        if params:
            return params / 1e9, size / 1e9, "safetensors headers"
        size = sum(f.stat().st_size for f in folder.glob("*.bin"))
        if size:
            return size / bytes_per / 1e9, size / 1e9, f"*.bin sizes at {bytes_per} bytes per parameter"
    total = _read_json(folder / "model.safetensors.index.json").get("metadata", {}).get("total_size")
    if isinstance(total, int) and total > 0:
        return total / bytes_per / 1e9, total / 1e9, f"safetensors index size at {bytes_per} bytes per parameter"
    params = _config_estimate(text)
    if params <= 0:
        raise AdhocError(f"{folder}: no weights found and config.json gives no shapes to estimate a size from")
    return params / 1e9, params * bytes_per / 1e9, "estimated from config.json shapes"


def _slug(name: str) -> str:
    return "adhoc_" + (re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "model")


def _build(folder: Path, source: str, revision: str, local: bool, hub_params: int | None = None) -> AdhocModel:
    cfg = _read_json(folder / "config.json")
    if not cfg:
        raise AdhocError(f"{source}: config.json is not a JSON object")
    text = cfg.get("text_config") or cfg.get("llm_config") or {}
    text = text if isinstance(text, dict) else {}
    configs = [text, cfg]  # a vision-language model's language model first
    context = _first(configs, _CONTEXT_KEYS)
    raw_dtype = str(cfg.get("torch_dtype") or cfg.get("dtype") or text.get("torch_dtype") or text.get("dtype")
                    or "auto")
    dtype = DType(raw_dtype) if raw_dtype in DType._value2member_map_ else DType.auto
    quant = str((cfg.get("quantization_config") or {}).get("quant_method", "none"))
    quantization = Quantization(quant) if quant in Quantization._value2member_map_ else Quantization.none
    params_b, size_gb, size_from = _size(folder, local, dtype.value, text or cfg, hub_params)
    vision = isinstance(cfg.get("vision_config"), dict)
    window = context or DEFAULT_CONTEXT
    facts: dict[str, Any] = {
        "source": "local" if local else "hub", "path": source, "context_window": window,
        "context_from": "config.json" if context else f"default {DEFAULT_CONTEXT} (config.json names none)",
        "max_model_len": min(window, MAX_MODEL_LEN_CAP), "num_attention_heads": _first(configs, _HEAD_KEYS),
        "dtype": dtype.value, "config_dtype": raw_dtype, "instruct": _has_chat_template(folder),
        "parameters_b": round(params_b, 4), "size_gb": round(size_gb, 3), "size_from": size_from,
        "vision": vision, "architecture": _architecture(cfg, text).value, "quantization": quantization.value,
        "model_type": cfg.get("model_type", ""),
    }
    name = folder.name if local else source.rsplit("/", 1)[-1]
    config = ModelConfig(
        key=_slug(name), display_name=f"{source} (ad hoc)", hf_id=source, revision=revision, license="unknown",
        context_window=window, max_model_len=facts["max_model_len"], category=ADHOC_CATEGORY,
        subcategory=ADHOC_CATEGORY, parameters_b=max(params_b, 1e-6), size_gb=max(size_gb, 1e-6),
        num_attention_heads=facts["num_attention_heads"], dtype=dtype, quantization=quantization,
        instruct=facts["instruct"], modality=Modality.vision if vision else Modality.text,
        architecture=Architecture(facts["architecture"]), vision=VisionConfig() if vision else None,
        notes="ad hoc: inferred from the checkpoint's config.json, no registry entry")
    return AdhocModel(config, source, facts)


def model_for(reg: Registry, spec: str) -> tuple[ModelConfig, AdhocModel | None]:
    """A registry model by key, or an ad-hoc one (with its inferred facts) by hub id or folder."""
    if is_adhoc(reg, spec):
        adhoc = adhoc_model(spec)
        return adhoc.config, adhoc
    return reg.model(spec), None
