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

from specbench.registry.schema_base import ConfigError, _check, to_plain
from specbench.registry.schema_finetune import FinetuneSpec, LoraSpec, TrainingData
from specbench.registry.schema_judge import JudgeConfig, JudgePrompt, JudgePromptSet
from specbench.registry.schema_model import (
    DISTRIBUTED_BACKENDS,
    Architecture,
    DType,
    Modality,
    ModelConfig,
    OfflineSource,
    Prices,
    Priority,
    Quantization,
    VisionConfig,
    check_parallelism,
)
from specbench.registry.schema_structure import EncoderConfig, EncoderHead, StructureConfig

__all__ = ["_check", "Architecture", "AWQVersion", "CalibrationConfig", "CategoryConfig", "CategoryDatasets",
           "check_parallelism", "ConfigError", "DatasetConfig", "DISTRIBUTED_BACKENDS", "DType", "EncoderConfig",
           "EncoderHead", "FinetuneSpec", "FrameworkConfig", "FrameworkTask", "JudgeConfig", "JudgePrompt",
           "JudgePromptSet", "LoraSpec", "Modality", "ModelConfig", "OfflineSource", "parallelism", "Parallelism",
           "PresetConfig", "Prices", "Priority", "PromptConfig", "Quantization", "QuantizationSpec", "Status",
           "StructureConfig", "TaskType", "to_plain", "TrainingData", "VisionConfig"]


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
    # the model's parallelism overridden for every model run with this preset (None: the model's own);
    # TP x PP beyond a model's min_gpus is refused when its cells are planned
    tensor_parallel_size: int | None = None
    pipeline_parallel_size: int | None = None
    distributed_executor_backend: str | None = None
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
        check_parallelism("", self.tensor_parallel_size, self.pipeline_parallel_size,
                          self.distributed_executor_backend)


@dataclass(frozen=True)
class Parallelism:
    """How a model's engine spans GPUs and nodes: the preset's overrides, else the model's facts."""

    tensor: int
    pipeline: int
    backend: str | None  # vLLM's distributed_executor_backend; None: vLLM's choice

    @property
    def gpus(self) -> int:
        return self.tensor * self.pipeline

    def fits(self, model: ModelConfig) -> str | None:
        """Why this needs more GPUs than the model declares (min_gpus), or None."""
        if self.gpus <= model.min_gpus:
            return None
        return (f"tensor_parallel_size {self.tensor} x pipeline_parallel_size {self.pipeline} needs {self.gpus} "
                f"GPUs but {model.key}'s min_gpus is {model.min_gpus}")


def parallelism(model: ModelConfig, preset: PresetConfig) -> Parallelism:
    """The parallelism a model runs with under a preset (the one rule; engine args and plans use it)."""
    return Parallelism(preset.tensor_parallel_size or model.tensor_parallel_size,
                       preset.pipeline_parallel_size or model.pipeline_parallel_size,
                       preset.distributed_executor_backend or model.distributed_executor_backend)


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
