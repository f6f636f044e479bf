"""specbench's wall time for a cell vs raw `vllm.LLM.generate` on the same prompts (and images).

Both sides share one started engine (engine start excluded), the same prompts (chat
template applied the same way) and the same sampling parameters; the prefix cache is
reset before every measurement so neither side profits from the other.  specbench's
side is the whole cell: data loading, prompt rendering, generation, scoring, and MLflow
logging (params, metrics, dataset input, sample table) into a sqlite store.

    python benchmarks/bench_cell_overhead.py --samples 128 --max-new-tokens 64 --reps 3
    python benchmarks/bench_cell_overhead.py --model smolvlm_test --dataset chartqa --max-new-tokens 64

With an image dataset (a vision model) the raw side is handed the images already decoded, in
vLLM's multimodal inputs; the cell decodes and checks them itself and logs a few of them.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2_135m")
    ap.add_argument("--dataset", default="gsm8k")
    ap.add_argument("--samples", type=int, default=128)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()

    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{tempfile.mkdtemp()}/bench.db")
    from vllm import SamplingParams

    from specbench import pipeline, tracking
    from specbench.engines.base import prompt_texts
    from specbench.registry import load_registry

    tracking.setup("bench-overhead")
    reg = load_registry()
    plan = pipeline.plan_cell(reg, args.model, args.dataset, engine="vllm", samples=args.samples)
    plan = dataclasses.replace(plan, task=dataclasses.replace(
        plan.task, gen=dataclasses.replace(plan.gen, max_new_tokens=args.max_new_tokens)))
    engine = pipeline.start_engine(plan)

    prepared = pipeline.prepare(plan.task, plan.samples, offline=plan.data.kind == "slice")
    assert not prepared.failures, prepared.failures
    # what the engine sends: chat-templated messages, with their images beside them
    texts = prompt_texts(engine.processor if prepared.images else engine.tokenizer, prepared.prompts)
    inputs = ([{"prompt": t, "multi_modal_data": {"image": imgs}} for t, imgs in
               zip(texts, prepared.images, strict=True)] if prepared.images else texts)
    images = sum(len(i) for i in prepared.images)
    sp = SamplingParams(n=1, temperature=0.0, max_tokens=plan.gen.max_new_tokens, stop=list(plan.gen.stop) or None)

    raw, ours = [], []
    for _ in range(args.reps):
        engine.llm.reset_prefix_cache()
        t0 = time.perf_counter()
        outs = engine.llm.generate(inputs, sp, use_tqdm=False)
        raw.append(time.perf_counter() - t0)
        raw_texts = [o.outputs[0].text for o in outs]

        engine.llm.reset_prefix_cache()
        t0 = time.perf_counter()
        res = pipeline.run_cell(plan, engine=engine)
        ours.append(time.perf_counter() - t0)
        assert res.status == "FINISHED", res.error
        assert [o[0] for o in res.outputs] == raw_texts, "same prompts and params must give the same outputs"
    engine.close()
    r, o = statistics.median(raw), statistics.median(ours)
    print("| model | dataset | prompts (images) | max_new_tokens | raw vllm generate (s) | specbench cell (s) | "
          "overhead |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {args.model} | {args.dataset} | {len(texts)} ({images}) | {args.max_new_tokens} | {r:.2f} | {o:.2f} | "
          f"{100 * (o / r - 1):+.1f}% |")
    print(f"raw runs: {[round(x, 2) for x in raw]}; specbench runs: {[round(x, 2) for x in ours]}")


if __name__ == "__main__":
    main()
