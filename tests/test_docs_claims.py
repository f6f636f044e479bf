"""Claims the docs make about every command, checked on real commands: docs/metrics.md says
every command checks the registry's scorers and main metrics against the registered scorers
before anything runs (``extensions.check`` in ``cli.main``), not only ``validate``."""

from __future__ import annotations

import pytest

from specbench.cli import main


@pytest.mark.parametrize("argv", [["list", "models"], ["mapping"], ["show", "dataset", "gsm8k"],
                                  ["evaluate", "--model", "smollm2_135m", "--dataset", "gsm8k", "--samples", "2"]])
def test_every_command_refuses_a_main_metric_no_scorer_produces(conf_copy, capsys, argv):
    path = conf_copy / "datasets" / "gsm8k.yaml"
    text = path.read_text()
    assert "\nmain_metric: " in text
    lines = [("main_metric: exact_matchx" if line.startswith("main_metric:") else line) for line in text.splitlines()]
    path.write_text("\n".join(lines) + "\n")
    assert main(["--conf", str(conf_copy), *argv]) == 2  # before any engine or data load
    err = capsys.readouterr().err
    assert "main_metric 'exact_matchx' is not produced by" in err and len(err.strip().splitlines()) == 1
