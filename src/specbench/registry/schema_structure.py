"""Schema of structure tasks (classification, sequence labelling) and of the encoders that answer them.

A dataset's ``structure:`` section declares its label set and how a frozen encoder sees an item;
an encoder model's ``encoder:`` section declares how its token vectors are pooled, what happens to
text longer than its window, and, when the checkpoint has a classification head of its own, how
the head's labels map onto a dataset's.  Generative models answer the same datasets by prompt
(the label set in the prompt, entities as a generated list): one metric set for both, so
``compare`` puts specialists and generalists in one matrix (docs/structure.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from specbench.registry.schema_base import _check

POOLINGS = ("cls", "mean")
OVERFLOWS = ("truncate", "slide")


@dataclass
class StructureConfig:
    """The label set of a classification or NER dataset, and what a frozen-encoder probe reads."""

    # classification: the classes, as the gold labels spell them; ner: the entity types (tags B-<type>/I-<type>)
    labels: list[str]
    # the split a probe (scikit-learn, over frozen embeddings) is fitted on; must not be the evaluated
    # split; None: no training data exists, so encoder probes cannot answer this dataset
    train_split: str | None = None
    # Jinja2 over an item's doc: the text an encoder embeds (classification); ner reads doc.tokens
    encoder_input: str = "{{ text }}"
    # Jinja2: a second segment, embedded as a pair with the first (question entailment); None: one text
    encoder_pair: str | None = None
    max_train: int | None = None  # the first N items of train_split fit the probe (None: all)

    def __post_init__(self) -> None:
        _check(len(self.labels) >= 1, "structure.labels", "declare at least one label")
        _check(len(set(self.labels)) == len(self.labels), "structure.labels", "labels must be distinct")
        _check(self.max_train is None or self.max_train >= 2, "structure.max_train",
               f"a probe needs >= 2 training items, got {self.max_train}")


@dataclass
class EncoderHead:
    """A checkpoint's own classification head, mapped onto one or more datasets' label sets."""

    datasets: list[str]  # datasets the head answers (the probe answers the others)
    labels: dict[str, str]  # the head's label (config.id2label) -> the dataset's label
    # multi_label heads (sigmoid per label, e.g. toxic-bert): the labels above ``threshold``
    # fire and the highest firing one wins; none firing is ``default``.  Single-label: argmax.
    multi_label: bool = False
    threshold: float = 0.5
    default: str | None = None

    def __post_init__(self) -> None:
        _check(len(self.datasets) >= 1, "encoder.head.datasets", "name the datasets the head answers")
        _check(len(self.labels) >= 1, "encoder.head.labels", "map at least one head label to a dataset label")
        _check(0.0 < self.threshold < 1.0, "encoder.head.threshold", f"must be in (0, 1), got {self.threshold}")
        _check(not self.multi_label or self.default is not None, "encoder.head.default",
               "a multi-label head needs the label to give when none of its labels fires")


@dataclass
class EncoderConfig:
    """How an encoder-only model answers structure tasks: pooled embeddings into a probe, or its head."""

    pooling: str = "cls"  # sentence vector: the [CLS] token's (BERT's convention) or the mean of the tokens
    # text longer than the window (max_tokens, else the model's max_model_len): truncate it, or slide
    # a window of that size with ``stride`` tokens of overlap and pool the windows (mean);
    # either way every such item is counted (the cell's ``items_over_window`` metric)
    overflow: str = "truncate"
    stride: int = 64
    max_tokens: int | None = None
    probe_c: float = 1.0  # scikit-learn LogisticRegression's inverse regularisation
    probe_max_iter: int = 1000
    head: EncoderHead | None = None

    def __post_init__(self) -> None:
        _check(self.pooling in POOLINGS, "encoder.pooling", f"valid: {', '.join(POOLINGS)}; got '{self.pooling}'")
        _check(self.overflow in OVERFLOWS, "encoder.overflow",
               f"valid: {', '.join(OVERFLOWS)}; got '{self.overflow}'")
        _check(self.stride >= 1, "encoder.stride", f"must be >= 1, got {self.stride}")
        _check(self.max_tokens is None or self.max_tokens >= 8, "encoder.max_tokens",
               f"must be >= 8, got {self.max_tokens}")
        _check(self.max_tokens is None or self.stride < self.max_tokens, "encoder.stride",
               "the overlap must be shorter than the window (max_tokens)")
        _check(self.probe_c > 0, "encoder.probe_c", f"must be > 0, got {self.probe_c}")
        _check(self.probe_max_iter >= 1, "encoder.probe_max_iter", f"must be >= 1, got {self.probe_max_iter}")
