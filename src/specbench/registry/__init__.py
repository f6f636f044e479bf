"""The registries under conf/: typed schemas (``schema``), the one loader (``loader``) and
the queries the CLI and planners ask of them (``queries``).

Everything else reads conf/ through :func:`load_registry` and the dataclasses re-exported
here; nothing below this package imports torch, vLLM or MLflow.
"""

from specbench.registry.loader import (
    CONF_ENV,
    NOT_INHERITED,
    Registry,
    RegistryError,
    check_adapters,
    check_engines,
    check_scorers,
    find_conf_dir,
    load_file,
    load_framework,
    load_object,
    load_registry,
    suggest,
)
from specbench.registry.schema import (
    Architecture,
    CategoryConfig,
    ConfigError,
    DatasetConfig,
    DType,
    ModelConfig,
    PresetConfig,
    PromptConfig,
    Quantization,
    QuantizationSpec,
    Status,
    TaskType,
    to_plain,
)

__all__ = [
    "Architecture", "CONF_ENV", "CategoryConfig", "ConfigError", "DType", "DatasetConfig", "ModelConfig",
    "NOT_INHERITED", "PresetConfig", "PromptConfig", "Quantization", "QuantizationSpec", "Registry",
    "RegistryError", "Status", "TaskType", "check_adapters", "check_engines", "check_scorers", "find_conf_dir",
    "load_file", "load_framework", "load_object", "load_registry", "suggest", "to_plain"
]
