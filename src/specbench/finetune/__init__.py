"""LoRA fine-tuning as a tracked step: a registry model in, a derived registry model out.

`specbench finetune --model M --recipe R` trains a LoRA adapter (peft) on M with the recipe
conf/finetune/<R>.yaml -- training items from a registry dataset's non-evaluation split, written
with the dataset's own prompt and target templates (through M's chat template when M is an
instruct model), so the specialist learns the prompt it is scored on -- merges it into the
weights (``merge_and_unload``) and writes cache/models/<key>/:

- ``merged/``        an ordinary checkpoint (the parent's tokenizer and generation files): every
  engine loads it as it loads the parent;
- ``specbench.json`` the record (recipe and its digest, parent revision, training data source and
  digest, seed, losses, timings, weights digest, the MLflow run id), written last.

One MLflow run (kind ``finetune``) records the recipe as params, the loss per step, tokens/s and
wall time, and the training items as a dataset input.  The derived model is a registry entry
(conf/models/<key>.yaml) that names its parent and recipe and inherits the parent's other facts
(the same machinery as `specbench quantize`'s AWQ models); the planner calls its checkpoint stale
when the recipe changes, and the next finetune trains it again.

Modules: :mod:`.target` (what to train, refusals, contamination; registry logic only),
:mod:`.train` (training texts, the LoRA loop, the merge), :mod:`.run` (the tracked step and the
registry entry).  Importing the package loads neither torch, peft nor MLflow.
"""

from __future__ import annotations

from specbench.finetune.run import FinetuneResult, finetune, write_entry
from specbench.finetune.target import (
    CPU_MAX_PARAMETERS_B,
    FinetuneError,
    Target,
    cannot_finetune,
    contamination,
    derived_key,
    pick_target,
)
from specbench.finetune.train import Example, TrainingSet, batches, load_training_items, training_set

__all__ = ["CPU_MAX_PARAMETERS_B", "Example", "FinetuneError", "FinetuneResult", "Target", "TrainingSet", "batches",
           "cannot_finetune", "contamination", "derived_key", "finetune", "load_training_items", "pick_target",
           "training_set", "write_entry"]
