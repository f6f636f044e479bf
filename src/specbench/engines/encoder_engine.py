"""Encoder engine: an encoder-only checkpoint (BERT and kin) in this process, with transformers.

It never generates: it turns texts into pooled vectors (``embed``), pre-tokenized sentences into one
vector per word (``embed_words``) and, when the model's ``encoder.head`` is declared, texts into the
checkpoint's own label probabilities (``classify``).  ``pipeline.probe`` makes answers of these.

Every text is tokenized once, untruncated, which says which items are longer than the window
(``max_tokens``, else the model's ``max_model_len``); only those are cut again, as the model's
``encoder.overflow`` declares: truncated to the window, or slid over in windows of the window's size
with ``stride`` tokens of overlap (the fast tokenizer's ``return_overflowing_tokens``), each item's
windows pooled by their mean (for words: each word's vector from the first window that holds it).
Windows are batched in length order (``evaluation_batch_size`` per forward pass), so little of a
batch is padding; the results come back in the callers' order.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from specbench.engines import register_engine
from specbench.engines.base import (
    Embedded,
    Engine,
    Generation,
    GenParams,
    Images,
    LoglikResult,
    Prompt,
    torch_gpu_peak,
)
from specbench.progress import tracked
from specbench.registry.schema import ModelConfig, PresetConfig
from specbench.weights import ResolvedModel, gpu_count


class Classified(list):
    """``classify``'s answer (a list of {head label: probability}) that also says which items were
    longer than the window (``over_window``), as ``Embedded`` does for vectors."""

    over_window: list[int]
    wall_s: float


@register_engine("encoder", capabilities={"embeddings"}, package="transformers")
class EncoderEngine(Engine):
    """transformers' AutoModel (AutoModelForSequenceClassification with a head): batched forward passes."""

    @classmethod
    def planned_params(cls, model: ModelConfig, preset: PresetConfig, resolved: ResolvedModel,
                       seed: int) -> dict[str, Any]:
        """Everything that changes a vector or a probe's answer (the probe's settings included: the
        cell's identity is made of these)."""
        enc = model.encoder
        if enc is None:
            raise ValueError(f"{model.key} has no `encoder` section: the encoder engine needs its pooling and "
                             "overflow settings")
        on_gpu = gpu_count() > 0
        # float32 on a CPU; on a GPU the declared dtype ("auto": the checkpoint's, float32 for BERTs)
        dtype = model.dtype.value if on_gpu and model.dtype.value != "auto" else "float32"
        return {"model": resolved.path, "dtype": dtype,
                "batch_size": preset.max_num_seqs or model.evaluation_batch_size,
                "pooling": enc.pooling, "overflow": enc.overflow,
                **({"stride": enc.stride} if enc.overflow == "slide" else {}),
                "max_tokens": enc.max_tokens or model.max_model_len, "probe_c": enc.probe_c,
                "probe_max_iter": enc.probe_max_iter, "head": asdict(enc.head) if enc.head else None,
                "trust_remote_code": model.trust_remote_code, "seed": seed}

    @classmethod
    def start(cls, params: dict[str, Any], **options: Any) -> EncoderEngine:
        return cls(params["model"], dtype=params["dtype"], batch_size=params["batch_size"],
                   pooling=params["pooling"], overflow=params["overflow"], stride=params.get("stride", 0),
                   max_tokens=params["max_tokens"], head=params.get("head"),
                   trust_remote_code=params.get("trust_remote_code", False), seed=params.get("seed", 0))

    def __init__(self, path: str, *, dtype: str = "float32", batch_size: int = 32, pooling: str = "cls",
                 overflow: str = "truncate", stride: int = 0, max_tokens: int = 512,
                 head: dict[str, Any] | None = None, trust_remote_code: bool = False, device: str | None = None,
                 seed: int = 0) -> None:
        super().__init__()
        import torch
        import transformers
        from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

        t0 = time.perf_counter()
        if pooling not in ("cls", "mean") or overflow not in ("truncate", "slide"):
            raise ValueError(f"encoder engine: pooling must be cls|mean and overflow truncate|slide, got "
                             f"{pooling!r} / {overflow!r}")
        if overflow == "slide" and not 1 <= stride < max_tokens:
            raise ValueError(f"encoder engine: a sliding window needs 1 <= stride < max_tokens ({max_tokens}), "
                             f"got {stride}")
        torch.manual_seed(seed)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        if not self.tokenizer.is_fast:  # word_ids() and overflowing windows are the fast tokenizers' alone
            raise ValueError(f"encoder engine: {path} has no fast tokenizer (tokenizer.json); word alignment and "
                             "sliding windows need one")
        auto = AutoModelForSequenceClassification if head else AutoModel
        self.model = auto.from_pretrained(path, dtype=getattr(torch, dtype),
                                          trust_remote_code=trust_remote_code).to(self.device).eval()
        self.head = head
        self._word_tok: Any = None  # a prefix-space twin of the tokenizer, for words (byte-level BPE only)
        if head:
            known = set(self.model.config.id2label.values())
            missing = sorted(set(head["labels"]) - known)
            if missing:
                raise ValueError(f"encoder engine: head label(s) {', '.join(missing)} are not the checkpoint's "
                                 f"(config.id2label: {', '.join(sorted(known))})")
        self.batch_size, self.pooling, self.overflow = batch_size, pooling, overflow
        self.stride, self.max_tokens = stride, max_tokens
        self.load_s = time.perf_counter() - t0
        self.params = {"model": path, "dtype": dtype, "batch_size": batch_size, "pooling": pooling,
                       "overflow": overflow, "max_tokens": max_tokens, "device": self.device,
                       "version": transformers.__version__, **({"stride": stride} if overflow == "slide" else {}),
                       **({"head": head} if head else {})}

    # ---- what the engine cannot do --------------------------------------------------------------
    def generate(self, prompts: list[Prompt], params: GenParams, images: Images | None = None) -> Generation:
        raise NotImplementedError("the encoder engine cannot generate text: encoder-only models answer "
                                  "classification and NER datasets (pipeline.probe)")

    def loglikelihood(self, requests: list[tuple[Prompt, str]]) -> list[LoglikResult]:
        raise NotImplementedError("the encoder engine scores no continuations: encoder-only models answer "
                                  "classification and NER datasets (pipeline.probe)")

    # ---- windows --------------------------------------------------------------------------------
    def _windows(self, texts: list[str] | list[list[str]], pairs: list[str] | None = None,
                 words: bool = False) -> tuple[list[dict[str, list[int]]], list[int], list[int], list[list]]:
        """Every item as model inputs within the window: (windows, owner item of each window, items
        over the window, word ids of each window (``words``: the word each token belongs to))."""
        kw: dict[str, Any] = {"is_split_into_words": True} if words else {}
        tokenizer = self._words_tokenizer() if words else self.tokenizer
        full = tokenizer(texts, pairs, truncation=False, verbose=False, **kw)
        over = [i for i, ids in enumerate(full["input_ids"]) if len(ids) > self.max_tokens]
        keys = [k for k in ("input_ids", "token_type_ids") if k in full]
        windows = [{k: full[k][i] for k in keys} for i in range(len(texts))]
        owners = list(range(len(texts)))
        word_ids = [full.word_ids(i) for i in range(len(texts))] if words else []
        if not over:
            return windows, owners, over, word_ids
        sub_pairs = [pairs[i] for i in over] if pairs is not None else None
        slide = self.overflow == "slide"
        # a pair slides over its second segment (the first kept whole); truncating a pair cuts the longer
        trunc = ("only_second" if pairs is not None else True) if slide else ("longest_first" if pairs else True)
        cut_texts = [texts[i] for i in over]
        try:
            cut = tokenizer(cut_texts, sub_pairs, truncation=trunc, max_length=self.max_tokens,
                                 return_overflowing_tokens=slide, stride=self.stride if slide else 0, verbose=False,
                                 **kw)
        except Exception:  # a pair whose first segment alone fills the window cannot slide: truncate them all
            if pairs is None:
                raise
            slide = False
            cut = self.tokenizer(cut_texts, sub_pairs, truncation="longest_first", max_length=self.max_tokens,
                                 verbose=False)
        mapping = cut["overflow_to_sample_mapping"] if slide else list(range(len(over)))
        done = set(over)
        keep = [i for i in range(len(texts)) if i not in done]
        windows, owners = [windows[i] for i in keep], keep
        word_ids = [word_ids[i] for i in keep] if words else []
        for j, k in enumerate(mapping):
            windows.append({key: cut[key][j] for key in keys})
            owners.append(over[k])
            if words:
                word_ids.append(cut.word_ids(j))
        return windows, owners, over, word_ids

    def _words_tokenizer(self) -> Any:
        """The tokenizer for pre-tokenized words: byte-level BPE ones (RoBERTa, Longformer) must be
        loaded with ``add_prefix_space=True`` to take words, so that each word is read as it would be
        inside a sentence; WordPiece ones take words as they are."""
        if getattr(self.tokenizer, "add_prefix_space", None) is False:
            if self._word_tok is None:
                from transformers import AutoTokenizer

                self._word_tok = AutoTokenizer.from_pretrained(self.tokenizer.name_or_path, add_prefix_space=True)
            return self._word_tok
        return self.tokenizer

    def _forward(self, windows: list[dict[str, list[int]]], what: str, logits: bool = False) -> tuple[list[Any], int]:
        """Each window's output (its token vectors, or with ``logits`` the head's), in windows' order; tokens read.
        A model loaded with its head gives token vectors from its encoder (``base_model``), head unused."""
        import torch

        order = sorted(range(len(windows)), key=lambda i: len(windows[i]["input_ids"]))
        out: list[Any] = [None] * len(windows)
        pad = self.tokenizer.pad_token_id or 0
        tokens = 0
        for start in tracked(range(0, len(order), self.batch_size), f"encoder: {what} (batches)"):
            idx = order[start:start + self.batch_size]
            width = max(len(windows[i]["input_ids"]) for i in idx)
            batch = {k: torch.full((len(idx), width), pad if k == "input_ids" else 0, dtype=torch.long)
                     for k in windows[idx[0]]}
            batch["attention_mask"] = torch.zeros((len(idx), width), dtype=torch.long)
            for r, i in enumerate(idx):  # right padding, so positions are the tokens'
                n = len(windows[i]["input_ids"])
                for k, v in windows[i].items():
                    batch[k][r, :n] = torch.tensor(v)
                batch["attention_mask"][r, :n] = 1
            tokens += int(batch["attention_mask"].sum())
            batch = {k: v.to(self.device) for k, v in batch.items()}
            with torch.inference_mode():
                res = (self.model if logits or not self.head else self.model.base_model)(**batch)
            if logits:
                rows = res.logits.float().cpu()
                for r, i in enumerate(idx):
                    out[i] = rows[r]
            else:
                hidden = res.last_hidden_state.float()
                for r, i in enumerate(idx):
                    out[i] = hidden[r, :len(windows[i]["input_ids"])].cpu()
        return out, tokens

    def _pool(self, states: Any) -> Any:
        return states[0] if self.pooling == "cls" else states.mean(dim=0)  # states hold no padding

    # ---- the interface --------------------------------------------------------------------------
    def embed(self, texts: list[str], pairs: list[str] | None = None) -> Embedded:
        import torch

        t0 = time.perf_counter()
        if pairs is not None and len(pairs) != len(texts):
            raise ValueError(f"encoder engine: {len(texts)} texts but {len(pairs)} pair segments")
        if not texts:
            return Embedded(vectors=torch.zeros((0, self.model.config.hidden_size)).numpy())
        windows, owners, over, _ = self._windows(texts, pairs)
        states, tokens = self._forward(windows, "embedding")
        pooled: list[list[Any]] = [[] for _ in texts]
        for owner, s in zip(owners, states, strict=True):
            pooled[owner].append(self._pool(s))
        vectors = torch.stack([torch.stack(v).mean(dim=0) for v in pooled]).numpy()
        return Embedded(vectors=vectors, over_window=over, tokens=tokens, wall_s=time.perf_counter() - t0)

    def embed_words(self, words: list[list[str]]) -> Embedded:
        """One vector per word: its first sub-token's (BERT's NER convention), from the first window
        that holds it.  A word of no sub-token (whitespace alone) and, under ``truncate``, a word past
        the window get a zero vector: the probe still answers for them, and ``over_window`` says which
        items lost words."""
        import torch

        t0 = time.perf_counter()
        dim = self.model.config.hidden_size
        out = [torch.zeros((len(w), dim)) for w in words]
        todo = [i for i, w in enumerate(words) if w]
        if not todo:
            return Embedded(vectors=[v.numpy() for v in out], wall_s=time.perf_counter() - t0)
        windows, owners, over, word_ids = self._windows([words[i] for i in todo], words=True)
        states, tokens = self._forward(windows, "embedding words")
        filled = [set() for _ in todo]
        # windows of one item are in order of their position in it: the first that holds a word wins
        for owner, s, ids in sorted(zip(owners, states, word_ids, strict=True), key=lambda t: t[0]):
            for pos, w in enumerate(ids):
                if w is not None and w not in filled[owner]:
                    filled[owner].add(w)
                    out[todo[owner]][w] = s[pos]
        return Embedded(vectors=[v.numpy() for v in out], over_window=[todo[i] for i in over], tokens=tokens,
                        wall_s=time.perf_counter() - t0)

    def classify(self, texts: list[str], pairs: list[str] | None = None) -> list[dict[str, float]]:
        """Per text, the head's probability of each of its labels (sigmoid per label for a multi-label
        head, softmax otherwise); an item slid over in windows gets the mean of its windows'."""
        import torch

        t0 = time.perf_counter()
        if not self.head:
            raise NotImplementedError("encoder engine: the model declares no encoder.head, so it has no "
                                      "classification head to answer with")
        if pairs is not None and len(pairs) != len(texts):
            raise ValueError(f"encoder engine: {len(texts)} texts but {len(pairs)} pair segments")
        result = Classified()
        result.over_window, result.wall_s = [], 0.0
        if not texts:
            return result
        windows, owners, over, _ = self._windows(texts, pairs)
        logits, _ = self._forward(windows, "classifying", logits=True)
        per_item: list[list[Any]] = [[] for _ in texts]
        for owner, row in zip(owners, logits, strict=True):
            per_item[owner].append(torch.sigmoid(row) if self.head.get("multi_label") else torch.softmax(row, -1))
        labels = self.model.config.id2label
        for probs in per_item:
            mean = torch.stack(probs).mean(dim=0)
            result.append({labels[j]: float(mean[j]) for j in range(len(mean))})
        result.over_window, result.wall_s = over, time.perf_counter() - t0
        return result

    def memory(self) -> dict[str, float]:
        return torch_gpu_peak()

    def close(self) -> None:
        import gc

        self.model = None
        gc.collect()
