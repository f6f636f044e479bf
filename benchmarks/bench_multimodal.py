"""A multimodal specbench cell vs raw `vllm.LLM.generate` on the same image prompts (issue 13 bar:
at most 5 % overhead).

Both sides share one started engine (its start excluded), the same engine arguments (the model's
``vision`` section: images per prompt, processor options), the same chat-templated prompts and
sampling parameters; the prefix cache is reset before every measurement.  The raw side is given
the images already decoded; specbench's side is the whole cell: slice loading, image decoding
and checking, prompt rendering, generation, scoring and MLflow logging (params, metrics,
dataset input, the sample table and the sample images) into a sqlite store.  The outputs of the
two sides must be identical.

    python benchmarks/bench_multimodal.py --dataset chartqa --max-new-tokens 64 --reps 3

On this CPU the model is the test VLM (smolvlm_test: random vision weights, so the answers mean
nothing; the timings are what is measured).  On a GPU pass ``--model`` a real VLM.
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
    ap.add_argument("--model", default="smolvlm_test")
    ap.add_argument("--dataset", default="chartqa")
    ap.add_argument("--samples", type=int, default=None, help="items (default: all the slice's)")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()

    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{tempfile.mkdtemp()}/bench.db")
    from vllm import SamplingParams

    from specbench import pipeline, tracking
    from specbench.engines.base import prompt_texts
    from specbench.registry import load_registry

    tracking.setup("bench-multimodal")
    reg = load_registry()
    plan = pipeline.plan_cell(reg, args.model, args.dataset, engine="vllm", samples=args.samples)
    plan = dataclasses.replace(plan, task=dataclasses.replace(
        plan.task, gen=dataclasses.replace(plan.gen, max_new_tokens=args.max_new_tokens)))
    engine = pipeline.start_engine(plan)

    prepared = pipeline.prepare(plan.task, plan.samples, offline=plan.data.kind == "slice")
    assert not prepared.failures, prepared.failures
    texts = prompt_texts(engine.processor, prepared.prompts)  # what the engine sends
    inputs = [{"prompt": t, "multi_modal_data": {"image": imgs}} for t, imgs in zip(texts, prepared.images,
                                                                                     strict=True)]
    sp = SamplingParams(n=1, temperature=0.0, max_tokens=plan.gen.max_new_tokens, stop=list(plan.gen.stop) or None)

    raw, ours = [], []
    for _ in range(args.reps):
        engine.llm.reset_prefix_cache()
        t0 = time.perf_counter()
        outs = engine.llm.generate(inputs, sp, use_tqdm=False)
        raw.append(time.perf_counter() - t0)
        raw_texts = [o.outputs[0].text for o in outs]
        images = sum(len(i) for i in prepared.images)

        engine.llm.reset_prefix_cache()
        t0 = time.perf_counter()
        res = pipeline.run_cell(plan, engine=engine)
        ours.append(time.perf_counter() - t0)
        assert res.status == "FINISHED", res.error
        assert [o[0] for o in res.outputs] == raw_texts, "same prompts, images and params must give the same outputs"
    engine.close()
    r, o = statistics.median(raw), statistics.median(ours)
    print("| model | dataset | prompts (images) | max_new_tokens | raw vllm generate (s) | specbench cell (s) | "
          "overhead | images/s (cell) |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {args.model} | {args.dataset} | {len(texts)} ({images}) | {args.max_new_tokens} | {r:.2f} | {o:.2f} | "
          f"{100 * (o / r - 1):+.1f}% | {res.metrics.get('images_per_s', float('nan')):.1f} |")
    print(f"raw runs: {[round(x, 2) for x in raw]}; specbench runs: {[round(x, 2) for x in ours]}")


if __name__ == "__main__":
    main()
