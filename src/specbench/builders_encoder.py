"""The offline test encoder: a small BERT with a WordPiece vocabulary trained on the shipped slices.

No encoder weights are reachable here or in CI, yet the encoder path (engine, probe, head, NER,
over-window counting, scoring, tracking) must run end to end on real data.  ``bert_random_wordpiece``
makes one in seconds: a WordPiece tokenizer (``tokenizers``) whose vocabulary is learnt from the
text of a fixed list of package slices (science, biomedical and general questions, the language of the
scientific and biomedical categories), and a 2-layer BERT of hidden size 128, randomly initialised
with the builder's seed.  Its window is 128 tokens, so a sentence longer than it is easy to make.
Its vectors are random projections of the tokens: a probe over them learns something from the
words alone, which says nothing about any model (its registry entry says ``random_weights`` and
every run made with it is tagged).

Determinism: the corpus is :data:`CORPUS` in that order, each record's strings in key order; the
vocabulary (counted, ties broken alphabetically) and ``torch.manual_seed`` are deterministic, so the
same files give byte-identical checkpoints.  The corpus is part of the weights' identity
(:func:`corpus_digest`, which ``weights._built_digest`` hashes beside the builder's name and
``builders.BUILDER_REVISION``): a changed corpus file builds a new checkpoint; changing the model's
shape means bumping ``BUILDER_REVISION``.  ``corpus.json`` in the checkpoint records each file's sha256.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SLICES = Path(__file__).resolve().parent / "slices"
# Fixed, not globbed: a slice added later must not change an already-identified checkpoint.
# The structure datasets (the ones bert_test answers) give their probes' training splits only, never
# the evaluated ones; the other slices are datasets an encoder never answers.
CORPUS = ("arc_challenge.test.jsonl", "mmlu.dev.jsonl", "mmlu.test.jsonl", "pubmedqa.test.jsonl",
          "scienceqa.test.jsonl", "truthfulqa.validation.jsonl",
          "bc5cdr.train.jsonl", "chemprot.train.jsonl", "genomics_ner.dev.jsonl", "ncbi_disease.train.jsonl",
          "scierc.train.jsonl", "scierc_ner.train.jsonl", "toxicity_detection.train.jsonl")
VOCAB_SIZE = 4000  # trained vocabularies come out at most this size
SHAPE = {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 256,
         "max_position_embeddings": 128}


NOT_TEXT = frozenset({"id", "tags", "label", "labels", "metadata"})  # record fields that are not language


def _strings(value: Any) -> Iterator[str]:
    """Every string in a JSON record, in key order (lists in order): the slice's text, whatever its format."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k in sorted(value):
            if k not in NOT_TEXT:
                yield from _strings(value[k])
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def corpus_lines(files: tuple[str, ...] = CORPUS) -> Iterator[str]:
    """The tokenizer's training text: the strings of every record of ``files`` (a missing one fails)."""
    for name in files:
        path = SLICES / name
        if not path.is_file():
            raise FileNotFoundError(f"test encoder corpus: slice {name} is missing from {SLICES}")
        with path.open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    yield from (s for s in _strings(json.loads(line)) if s.strip())


def wordpiece_tokenizer(lines: Iterator[str], vocab_size: int = VOCAB_SIZE) -> Any:
    """A BERT-style (uncased) WordPiece tokenizer whose vocabulary is learnt from ``lines``.

    The vocabulary is BERT's special tokens, every character of the corpus (alone and as a ``##``
    continuation, so any word of it can be spelt) and then its most frequent words, ties broken
    alphabetically.  Not ``tokenizers``' WordPieceTrainer: its merges break count ties by ids
    assigned in hash-map order, so two runs on the same text give different vocabularies (measured:
    2801 of 4000 ids differed), and a test model must be the same checkpoint wherever it is built.
    Normalisation, pre-tokenisation and the WordPiece model are the ``tokenizers`` library's."""
    from collections import Counter

    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import BertTokenizerFast

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    normalizer, pre = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    counts: Counter[str] = Counter()
    for line in lines:
        counts.update(word for word, _ in pre.pre_tokenize_str(normalizer.normalize_str(line)))
    chars = sorted({c for word in counts for c in word})
    vocab = special + chars + [f"##{c}" for c in chars]
    words = [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if len(w) > 1]
    vocab += words[:max(0, vocab_size - len(vocab))]
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer, tok.pre_tokenizer, tok.decoder = normalizer, pre, decoders.WordPiece()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab.index("[CLS]")), ("[SEP]", vocab.index("[SEP]"))])
    return BertTokenizerFast(tokenizer_object=tok, do_lower_case=True,
                             model_max_length=SHAPE["max_position_embeddings"])


def corpus_digest() -> str:
    """The corpus's identity: its file names and contents, in order."""
    h = hashlib.sha256()
    for name in CORPUS:
        path = SLICES / name
        h.update(name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b"<missing>") + b"\0")
    return h.hexdigest()[:16]


def bert_random_wordpiece(text_dir: Path, out: Path, seed: int = 0) -> None:
    """A random 2-layer BERT with a WordPiece vocabulary of the shipped slices, saved into ``out``.

    ``text_dir`` is not used (nor converted: ``text_model = False`` below): nothing of SmolLM2 is in here."""
    import torch
    from transformers import BertConfig, BertModel

    del text_dir
    tokenizer = wordpiece_tokenizer(corpus_lines())
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **SHAPE)
    model = BertModel(config).eval()  # the pooler too: a complete checkpoint loads without warnings
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    digests = {name: hashlib.sha256((SLICES / name).read_bytes()).hexdigest() for name in CORPUS}
    (out / "corpus.json").write_text(json.dumps({"files": digests, "vocab_size": len(tokenizer), "seed": seed,
                                                 **SHAPE}, indent=1))


bert_random_wordpiece.text_model = False  # type: ignore[attr-defined] # weights._build converts no GGUF for it
bert_random_wordpiece.inputs_digest = corpus_digest  # type: ignore[attr-defined]
