"""The one typed loader of conf/: models, datasets, categories and presets.

Each YAML file is merged onto its dataclass schema with OmegaConf (struct mode, so an
unknown key or a wrong type fails), then instantiated (so range checks run), then
cross-references are checked.  Every failure is a ``RegistryError`` that names the file,
the key and the nearest valid names; the CLI turns it into one line and exit code 2.
"""

from __future__ import annotations

import difflib
import os
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from specbench.redact import track_oc_env
from specbench.registry.aliases import check_and_resolve, dataset_aliases
from specbench.registry.schema import (
    CategoryConfig,
    ConfigError,
    DatasetConfig,
    FinetuneSpec,
    FrameworkConfig,
    JudgePromptSet,
    ModelConfig,
    PresetConfig,
    QuantizationSpec,
    Status,
)

track_oc_env()  # what ${oc.env:...} resolves to is a secret: masked in every run and on screen

T = TypeVar("T")

CONF_ENV = "SPECBENCH_CONF"


class RegistryError(Exception):
    """A registry problem, phrased for the user: what, where, what would be valid."""

    def __init__(self, message: str, file: str | os.PathLike[str] | None = None,
                 key: str | None = None) -> None:
        where = ": ".join(str(p) for p in (_rel(file) if file else None, key) if p)
        super().__init__(f"{where}: {message}" if where else message)


def _rel(path: str | os.PathLike[str]) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def suggest(name: str, valid: Iterable[str], n: int = 3) -> str:
    """'did you mean ...' for a misspelt name (difflib, as Python's own NameError does)."""
    valid = sorted(valid)
    close = difflib.get_close_matches(name, valid, n=n, cutoff=0.5)
    if not close:
        close = [v for v in valid if v.startswith(name[:4])][:n]
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    return "valid: " + ", ".join(valid[:12]) + (" ..." if len(valid) > 12 else "")


def find_conf_dir(start: Path | None = None) -> Path:
    """conf/ from $SPECBENCH_CONF, else the nearest conf/ above the working directory,
    else the one beside the package's source tree (an editable install)."""
    env = os.environ.get(CONF_ENV)
    if env:
        return Path(env)
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "conf" / "presets.yaml").is_file():
            return d / "conf"
    src_root = Path(__file__).resolve().parents[2] / "conf"
    if (src_root / "presets.yaml").is_file():
        return src_root
    raise RegistryError(f"no conf/ directory found from {here}; set {CONF_ENV}=/path/to/conf")


def _schema_keys(schema: type) -> list[str]:
    return [f.name for f in fields(schema)]


def _translate(exc: OmegaConfBaseException, schema: type, file: Path) -> RegistryError:
    key = getattr(exc, "full_key", None) or ""
    if isinstance(exc, ConfigKeyError):
        bad = key.split(".")[-1] if key else "?"
        parent = key.rsplit(".", 1)[0] if "." in key else ""
        sub = schema
        for part in parent.split(".") if parent else []:
            sub = _field_dataclass(sub, part) or sub
        return RegistryError(f"unknown key '{bad}'; {suggest(bad, _schema_keys(sub))}", file, key)
    if isinstance(exc, ValidationError):
        msg = str(exc).splitlines()[0]
        return RegistryError(f"wrong value: {msg}", file, key)
    return RegistryError(str(exc).splitlines()[0], file, key)


def _field_dataclass(schema: type, name: str) -> type | None:
    """The dataclass a field holds (through Optional, list or dict), for nested key suggestions."""
    try:
        hint = typing.get_type_hints(schema).get(name)
    except (NameError, TypeError):
        return None
    todo = [hint]
    while todo:
        t = todo.pop()
        if is_dataclass(t):
            return t  # type: ignore[return-value]
        todo += [a for a in typing.get_args(t) if a is not type(None)]
    return None


def _container_mismatch(schema: type, data: dict, prefix: str = "") -> tuple[str, str, str] | None:
    """(key, expected, given) for the first value that is not the mapping or list its field
    declares: OmegaConf reports those as a bare TypeError that names no key."""
    hints = typing.get_type_hints(schema)
    for name, value in data.items():
        hint = hints.get(name)
        if hint is None:
            continue
        kinds = {typing.get_origin(t) or t for t in (typing.get_args(hint) or (hint,)) if t is not type(None)}
        kinds |= {typing.get_origin(hint)} - {None}
        key = f"{prefix}{name}"
        if dict in kinds and value is not None and not isinstance(value, dict):
            return key, "a mapping", type(value).__name__
        if list in kinds and value is not None and not isinstance(value, list):
            return key, "a list", type(value).__name__
        sub = _field_dataclass(schema, name)
        if sub is not None and isinstance(value, dict) and dict not in kinds and list not in kinds:
            found = _container_mismatch(sub, value, f"{key}.")
            if found:
                return found
    return None


def load_object(data: Any, schema: type[T], file: Path, prefix: str = "") -> T:
    """Validate one mapping against a dataclass schema and build it."""
    if not isinstance(data, dict):
        raise RegistryError(f"expected a mapping for {schema.__name__}, got {type(data).__name__}",
                            file, prefix or None)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), data)
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except ConfigError as exc:
        raise RegistryError(exc.message, file, ".".join(p for p in (prefix, exc.key) if p)) from None
    except OmegaConfBaseException as exc:
        err = _translate(exc, schema, file)
        if prefix:
            err = RegistryError(str(err).split(": ", 2)[-1], file,
                                f"{prefix}.{getattr(exc, 'full_key', '')}".rstrip("."))
        raise err from None
    except TypeError:  # a list where a mapping belongs, or the reverse
        found = _container_mismatch(schema, data)
        if found is None:
            raise
        key, expected, given = found
        raise RegistryError(f"expected {expected}, got {given}", file,
                            ".".join(p for p in (prefix, key) if p)) from None


# Facts a model made by a quantization recipe never takes from its parent: its identity,
# what its own weights are and where they come from.
NOT_INHERITED = frozenset({"key", "display_name", "size_gb", "quantization", "dtype", "parent", "recipe",
                           "offline", "notes"})


def read_yaml(path: Path) -> Any:
    """A YAML file as plain data, interpolations resolved; anything wrong with it is one RegistryError
    naming the file and line: a syntax error, a duplicate key, bytes that are not UTF-8, a bad
    ``${...}`` interpolation (an unset ``oc.env`` variable, an unknown resolver or key)."""
    try:
        return OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except UnicodeDecodeError as exc:
        raise RegistryError(f"not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); save it "
                            "as UTF-8", path) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise RegistryError(f"not valid YAML: {exc.problem or exc.context}{where}", path) from None
    except yaml.YAMLError as exc:
        raise RegistryError(f"not valid YAML: {' '.join(str(exc).split())}", path) from None
    except OSError as exc:  # OmegaConf's word for a file that is one scalar ("0", "text"), not a mapping
        raise RegistryError(f"expected a mapping of fields (key: value lines), got {exc}", path) from None
    except OmegaConfBaseException as exc:  # interpolations: ${oc.env:UNSET}, ${no.such.key}, ${bad:resolver}
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RegistryError(f"bad interpolation: {first}", path) from None


def _inherit(data: Any, path: Path) -> Any:
    """A model file with a ``recipe`` states only what differs from its parent (the sibling
    file ``<parent>.yaml``); every other fact comes from the parent, so it is never copied."""
    if not isinstance(data, dict) or not data.get("recipe") or not data.get("parent"):
        return data
    parent_path = path.parent / f"{data['parent']}.yaml"
    if not parent_path.is_file():
        names = [p.stem for p in path.parent.glob("*.yaml")]
        raise RegistryError(f"unknown parent model '{data['parent']}'; {suggest(data['parent'], names)}",
                            path, "parent")
    parent = read_yaml(parent_path)
    if not isinstance(parent, dict) or parent.get("recipe"):
        raise RegistryError(f"parent '{data['parent']}' must be a plain model file, not another derived one",
                            path, "parent")
    return {**{k: v for k, v in parent.items() if k not in NOT_INHERITED}, **data}


def load_file(path: Path, schema: type[T]) -> T:
    data = read_yaml(path)
    if schema is ModelConfig:
        data = _inherit(data, path)
    obj = load_object(data, schema, path)
    key = getattr(obj, "key", None)
    if key is not None and key != path.stem:
        raise RegistryError(f"key '{key}' must match the file name '{path.stem}'", path, "key")
    return obj


@dataclass
class Registry:
    """All registries, loaded and cross-checked; the only way code reads conf/."""

    root: Path
    models: dict[str, ModelConfig]
    datasets: dict[str, DatasetConfig]
    categories: dict[str, CategoryConfig]
    presets: dict[str, PresetConfig]
    quantizations: dict[str, QuantizationSpec] = field(default_factory=dict)  # conf/quantization/
    framework: FrameworkConfig | None = None  # conf/framework.yaml: the cross-category matrix
    finetunes: dict[str, FinetuneSpec] = field(default_factory=dict)  # conf/finetune/
    judges: dict[str, JudgePromptSet] = field(default_factory=dict)  # conf/judges/: grading prompt sets

    # -- lookups that fail with suggestions -------------------------------------------
    def model(self, name: str) -> ModelConfig:
        return self._get(self.models, name, "model")

    def dataset(self, name: str) -> DatasetConfig:
        """A dataset by key or by one of its aliases (the seeds' names)."""
        return self._get(self.datasets, dataset_aliases(self).get(name, name), "dataset")

    def quantization(self, name: str) -> QuantizationSpec:
        return self._get(self.quantizations, name, "quantization recipe")

    def finetune(self, name: str) -> FinetuneSpec:
        return self._get(self.finetunes, name, "fine-tune recipe")

    def recipe(self, name: str) -> QuantizationSpec | FinetuneSpec:
        """A derived model's recipe, AWQ or fine-tune (their names never collide: a registry check)."""
        if name in self.finetunes:
            return self.finetunes[name]
        return self._get(self.quantizations, name, "recipe")

    def category(self, name: str) -> CategoryConfig:
        for cat in self.categories.values():
            if name in cat.aliases:
                return cat
        return self._get(self.categories, name, "category")

    def preset(self, name: str) -> PresetConfig:
        return self._get(self.presets, name, "preset")

    @staticmethod
    def _get(table: dict[str, T], name: str, what: str) -> T:
        if name in table:
            return table[name]
        raise RegistryError(f"unknown {what} '{name}'; {suggest(name, table)}")

    def categories_of(self, model: str) -> list[str]:
        """Categories that list the model as a specialist (not as a baseline)."""
        return [c.key for c in self.categories.values() if model in c.models]

    def role(self, model: str, category: str | None) -> str:
        if category and model in self.categories[category].baselines \
                and model not in self.categories[category].models:
            return "generalist"
        return "specialist"


def _load_dir(directory: Path, schema: type[T]) -> dict[str, T]:
    if not directory.is_dir():
        raise RegistryError(f"missing directory {directory}")
    out: dict[str, T] = {}
    for path in sorted(directory.glob("*.yaml")):
        obj = load_file(path, schema)
        out[obj.key] = obj  # type: ignore[attr-defined]
    return out


def _load_presets(root: Path) -> dict[str, PresetConfig]:
    """conf/presets.yaml, then tuned presets written by sweeps into conf/presets/*.yaml."""
    files = [root / "presets.yaml", *sorted((root / "presets").glob("*.yaml"))]
    presets: dict[str, PresetConfig] = {}
    for path in files:
        if not path.is_file():
            continue
        data = read_yaml(path) or {}
        if not isinstance(data, dict) or not isinstance(data.get("presets"), dict):
            raise RegistryError("expected a top-level 'presets:' mapping of name -> settings (e.g. presets: "
                                "{balanced: {gpu_memory_utilization: 0.85}})", path)
        for name, body in data["presets"].items():
            presets[name] = load_object(body, PresetConfig, path, prefix=f"presets.{name}")
    if not presets:
        raise RegistryError("no presets defined", root / "presets.yaml")
    return presets


def load_framework(root: Path) -> FrameworkConfig | None:
    """conf/framework.yaml (the specialization framework's cross-category matrix), if present."""
    path = root / "framework.yaml"
    if not path.is_file():
        return None
    return load_object(read_yaml(path), FrameworkConfig, path)


def check_scorers(reg: Registry, metrics: dict[str, list[str]]) -> None:
    """Scorer names and main metrics of ready datasets against the scoring layer's table
    (passed in, so the registry does not import the layers above it)."""
    for ds in reg.datasets.values():
        if ds.status != Status.ready:  # planned datasets may name scorers that do not exist yet
            continue
        f = reg.root / "datasets" / f"{ds.key}.yaml"
        produced: list[str] = []
        for i, name in enumerate(ds.scorers):
            if name not in metrics:
                raise RegistryError(f"unknown scorer '{name}'; {suggest(name, metrics)}", f, f"scorers[{i}]")
            produced += metrics[name]
        if ds.main_metric not in produced:
            raise RegistryError(f"main_metric '{ds.main_metric}' is not produced by {ds.scorers}; "
                                f"valid: {', '.join(produced)}", f, "main_metric")


def load_registry(root: Path | str | None = None) -> Registry:
    """Load and validate everything under conf/ (or $SPECBENCH_CONF)."""
    root = Path(root) if root else find_conf_dir()
    reg = Registry(
        root=root,
        models=_load_dir(root / "models", ModelConfig),
        datasets=_load_dir(root / "datasets", DatasetConfig),
        categories=_load_dir(root / "categories", CategoryConfig),
        presets=_load_presets(root),
        quantizations=_load_dir(root / "quantization", QuantizationSpec) if (root / "quantization").is_dir() else {},
    )
    if (root / "finetune").is_dir():
        reg.finetunes = _load_dir(root / "finetune", FinetuneSpec)
    if (root / "judges").is_dir():
        reg.judges = _load_dir(root / "judges", JudgePromptSet)
    from specbench.registry.checks import check_framework, check_refs  # it imports this module

    check_and_resolve(reg)  # dataset aliases: checked, and category files' aliases made keys
    check_refs(reg)
    reg.framework = load_framework(root)
    check_framework(reg)
    return reg


def check_engines(reg: Registry, engines: Iterable[str]) -> None:
    """Every engine a model names is a registered engine (names passed in, as for scorers)."""
    known = sorted(engines)
    for m in reg.models.values():
        for i, name in enumerate(m.engines):
            if name not in known:
                raise RegistryError(f"unknown engine '{name}'; {suggest(name, known)}",
                                    reg.root / "models" / f"{m.key}.yaml", f"engines[{i}]")


def check_adapters(reg: Registry, adapters: Iterable[str]) -> None:
    """Every ready dataset has a registered data adapter (its ``adapter``, else its key)."""
    known = sorted(adapters)
    for ds in reg.datasets.values():
        name = ds.adapter or ds.key
        if ds.status == Status.ready and name not in known:
            raise RegistryError(f"no data adapter '{name}'; {suggest(name, known)} (add a module to "
                                "src/specbench/data/adapters/)", reg.root / "datasets" / f"{ds.key}.yaml",
                                "adapter" if ds.adapter else "key")
