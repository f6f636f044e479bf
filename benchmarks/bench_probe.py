"""The encoder probe's embedding step vs a raw batched transformers forward pass, same sentences.

Both sides use one loaded checkpoint and tokenizer (load excluded), the same sentences, batch size,
window (truncation at the model's max tokens) and pooling, under ``torch.inference_mode``.  The raw
side is the textbook loop: tokenizer(batch, padding, truncation) -> model(**batch) -> pooled, run
twice: in the sentences' order, and sorted by length in characters (so batches pad little, as the
engine's do; the fair baseline for overhead).  The specbench side is ``EncoderEngine.embed`` as
``pipeline.probe`` calls it: an untruncated tokenization (to count what is over the window),
windows, length-sorted batches, pooling, back in order.  Both must give the same vectors (checked, to 1e-4).

    python benchmarks/bench_probe.py --sentences 1000 --reps 3
    python benchmarks/bench_probe.py --shape base --sentences 256 --reps 3

``--shape test`` is bert_test itself (2 layers, hidden 128: a forward pass costs little, so any
overhead shows); ``--shape base`` is a randomly initialised BERT-base (12 layers, hidden 768,
110M parameters, the shape of SciBERT / BioClinicalBERT / toxic-bert) with bert_test's tokenizer,
built in a temporary folder: the cost of a real encoder's forward pass.  Sentences: the questions
of the shipped MMLU, ARC and TruthfulQA slices, in file order, repeated to ``--sentences``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time


def sentences(n: int) -> list[str]:
    from specbench.builders_encoder import SLICES

    out: list[str] = []
    for name, field in (("mmlu.test.jsonl", "question"), ("arc_challenge.test.jsonl", "query"),
                        ("truthfulqa.validation.jsonl", "question")):
        with (SLICES / name).open() as f:
            out += [json.loads(line).get(field) or "" for line in f]
    out = [s for s in out if s.strip()]
    return (out * (n // len(out) + 1))[:n]


def raw_embed(model, tok, texts: list[str], batch: int, max_tokens: int, pooling: str):  # noqa: ANN001, ANN201
    import torch

    rows = []
    for start in range(0, len(texts), batch):
        enc = tok(texts[start:start + batch], padding=True, truncation=True, max_length=max_tokens,
                  return_tensors="pt")
        with torch.inference_mode():
            hidden = model(**enc).last_hidden_state
        if pooling == "cls":
            rows.append(hidden[:, 0])
        else:
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            rows.append((hidden * mask).sum(1) / mask.sum(1))
    return torch.cat(rows).numpy()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=["test", "base"], default="test")
    ap.add_argument("--sentences", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()

    import numpy as np
    import torch

    from specbench.engines import make_engine, planned_params
    from specbench.registry import load_registry
    from specbench.weights import locate, materialize

    torch.manual_seed(0)
    reg = load_registry()
    model = reg.model("bert_test")
    weights = materialize(model, locate(model, offline=True))
    params = planned_params("encoder", model, reg.preset(model.preset), weights, 0)
    tmp = None
    if args.shape == "base":
        from transformers import AutoTokenizer, BertConfig, BertModel

        tmp = tempfile.TemporaryDirectory()
        tok = AutoTokenizer.from_pretrained(weights.path)
        BertModel(BertConfig(vocab_size=len(tok), max_position_embeddings=512)).save_pretrained(tmp.name)
        tok.save_pretrained(tmp.name)
        params = {**params, "model": tmp.name}
    engine = make_engine("encoder", params)
    texts = sentences(args.sentences)
    batch, max_tokens, pooling = params["batch_size"], params["max_tokens"], params["pooling"]
    raw_embed(engine.model, engine.tokenizer, texts[:batch], batch, max_tokens, pooling)  # warm-up both
    engine.embed(texts[:batch])

    raw, raw_sorted, ours = [], [], []
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # by characters: what a raw loop can know
    for _ in range(args.reps):
        t0 = time.perf_counter()
        r = raw_embed(engine.model, engine.tokenizer, texts, batch, max_tokens, pooling)
        raw.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        rs = raw_embed(engine.model, engine.tokenizer, [texts[i] for i in order], batch, max_tokens, pooling)
        back = np.empty_like(rs)
        back[order] = rs
        raw_sorted.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        e = engine.embed(texts)
        ours.append(time.perf_counter() - t0)
        for other in (r, back):
            assert np.allclose(other, e.vectors, atol=1e-4), float(np.abs(other - e.vectors).max())
    over = len(e.over_window)
    engine.close()
    if tmp is not None:
        tmp.cleanup()
    rm, rsm, om = statistics.median(raw), statistics.median(raw_sorted), statistics.median(ours)
    n = len(texts)
    print("| shape | sentences (over window) | batch | raw forward, in order (s) | raw forward, length-sorted (s) | "
          "specbench embed (s) | sentences/s (raw in order / raw sorted / specbench) | overhead vs sorted raw |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    print(f"| {args.shape} | {n} ({over}) | {batch} | {rm:.2f} | {rsm:.2f} | {om:.2f} | "
          f"{n / rm:.0f} / {n / rsm:.0f} / {n / om:.0f} | {100 * (om / rsm - 1):+.1f}% |")
    print(f"runs: raw {[round(x, 3) for x in raw]}; raw sorted {[round(x, 3) for x in raw_sorted]}; "
          f"specbench {[round(x, 3) for x in ours]}")

if __name__ == "__main__":
    main()
