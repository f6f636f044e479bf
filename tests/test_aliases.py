"""Dataset aliases: the seeds' names (enhanced_math_fixed, math_competition) resolve to our keys.

`show`, `evaluate` (its cell plan), `list --format json`, category files and report files take
an alias; a repeated alias or one equal to another dataset's key is a one-line registry error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from specbench import pipeline
from specbench.registry import RegistryError, load_registry

SEED_NAMES = ["enhanced_math_fixed", "math_competition"]  # ../shared/seeds 001-004 call MATH so


def _edit(path: Path, change: Callable[[dict[str, Any]], Any]) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_the_seeds_names_are_aliases_of_math(registry):
    assert registry.datasets["math"].aliases == SEED_NAMES
    for name in SEED_NAMES:
        assert registry.dataset(name).key == "math"
    assert "alias:enhanced_math_fixed" not in registry.datasets["math"].tags  # an alias, no longer a tag


def test_show_and_list_accept_and_list_aliases(capsys):
    from specbench.cli import main

    assert main(["show", "dataset", "enhanced_math_fixed", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["key"] == "math"
    assert main(["list", "datasets", "--format", "json"]) == 0
    rows = {r["key"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["math"]["aliases"] == SEED_NAMES and rows["gsm8k"]["aliases"] == []
    assert main(["show", "dataset", "math_contest"]) == 2  # still unknown names: one line
    assert "unknown dataset 'math_contest'" in capsys.readouterr().err


def test_evaluate_plans_the_dataset_an_alias_names(registry):
    plan = pipeline.plan_cell(registry, "smollm2_135m", "math_competition", samples=2)
    assert plan.dataset.key == "math"  # the cell, its tags and tables carry the key


def test_a_category_file_may_name_a_dataset_by_its_alias(conf_copy):
    _edit(conf_copy / "categories" / "mathematical_reasoning.yaml",
          lambda d: d["datasets"].__setitem__("primary", ["gsm8k", "enhanced_math_fixed", "math"]))
    cat = load_registry(conf_copy).category("mathematical_reasoning")
    assert cat.datasets.primary == ["gsm8k", "math"]  # resolved to the key, once


@pytest.mark.parametrize(("file", "aliases", "message"), [
    ("gsm8k", ["math_competition"], "alias 'math_competition' is already an alias of dataset 'gsm8k'"),
    ("math", ["gsm8k"], "datasets/math.yaml: aliases[0]: alias 'gsm8k' is the key of dataset 'gsm8k'"),
    ("math", ["competition", "competition"], "alias 'competition' is already an alias of dataset 'math'"),
])
def test_a_repeated_alias_or_one_that_is_a_key_is_one_line(conf_copy, file, aliases, message):
    _edit(conf_copy / "datasets" / f"{file}.yaml", lambda d: d.__setitem__("aliases", aliases))
    with pytest.raises(RegistryError, match=re.escape(message)) as exc:
        load_registry(conf_copy)
    assert len(str(exc.value).splitlines()) == 1


def test_validate_says_a_clashing_alias_in_one_line(conf_copy, capsys):
    from specbench.cli import main

    _edit(conf_copy / "datasets" / "gsm8k.yaml", lambda d: d.__setitem__("aliases", ["math"]))
    assert main(["--conf", str(conf_copy), "validate"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "gsm8k.yaml: aliases[0]: alias 'math' is the key of dataset 'math'" in err
