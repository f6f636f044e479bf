"""transformers engine: batched ``generate`` with left padding, and logits for choices.

For machines without vLLM (a GPU image with only torch + transformers) and for tests
that need no engine process.  Greedy outputs match vLLM's at the same dtype.
"""

from __future__ import annotations

import time
from typing import Any

from specbench.engines import register_engine
from specbench.engines.base import (
    Engine,
    Generation,
    GenParams,
    Images,
    LoglikResult,
    Prompt,
    prompt_texts,
    split_context,
    torch_gpu_peak,
    truncate_at_stop,
)
from specbench.progress import tracked
from specbench.registry.schema import ModelConfig, PresetConfig
from specbench.weights import ResolvedModel, gpu_count


@register_engine("transformers", capabilities={"generate", "loglikelihood", "images"}, package="transformers")
class HFEngine(Engine):
    """transformers in this process: batched generate, logits for continuations."""

    @classmethod
    def planned_params(cls, model: ModelConfig, preset: PresetConfig, resolved: ResolvedModel,
                       seed: int) -> dict[str, Any]:
        from specbench.engines.vllm_engine import engine_args  # one dtype rule for both engines

        dtype = engine_args(model, preset, resolved.path, on_gpu=gpu_count() > 0)["dtype"]
        batch = preset.max_num_seqs or model.evaluation_batch_size
        return {"model": resolved.path, "dtype": dtype, "batch_size": batch,
                "trust_remote_code": model.trust_remote_code, "seed": seed,
                **({"hf_overrides": dict(model.hf_overrides)} if model.hf_overrides else {}),
                # a vision-language model: its processor and image-text-to-text class, with these options
                **({"vision": dict(model.vision.processor_kwargs)} if model.vision else {})}

    @classmethod
    def start(cls, params: dict[str, Any], **options: Any) -> HFEngine:
        return cls(params["model"], dtype=params["dtype"], batch_size=params["batch_size"],
                   trust_remote_code=params["trust_remote_code"], seed=params["seed"],
                   hf_overrides=params.get("hf_overrides"), vision=params.get("vision"))

    def __init__(self, path: str, dtype: str = "float32", batch_size: int = 16,
                 trust_remote_code: bool = False, device: str | None = None, seed: int = 0,
                 hf_overrides: dict[str, Any] | None = None, vision: dict[str, Any] | None = None) -> None:
        super().__init__()
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer

        t0 = time.perf_counter()
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        torch_dtype = getattr(torch, dtype) if dtype != "auto" else "auto"
        self.vision = vision  # None: a text model; else the image processor's options
        self.processor: Any = None
        if vision is not None:
            self.processor = AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
            self.tokenizer = self.processor.tokenizer
            self.tokenizer.padding_side = "left"
        else:
            self.tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code,
                                                           padding_side="left")
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        # hf_overrides: config attributes, as vLLM's option of that name (from_pretrained sets them)
        auto = AutoModelForImageTextToText if vision is not None else AutoModelForCausalLM
        # Several GPUs: accelerate spreads the layers over them (what a 90B model needs; vLLM, not
        # this engine, is the tensor-parallel one); one device: the whole model on it.
        spread = self.device == "cuda" and torch.cuda.device_count() > 1
        self.model = auto.from_pretrained(path, dtype=torch_dtype, trust_remote_code=trust_remote_code,
                                          **({"device_map": "auto"} if spread else {}), **(hf_overrides or {}))
        if not spread:
            self.model = self.model.to(self.device)
        self.model.eval()
        torch.manual_seed(seed)
        self.batch_size = batch_size
        self.load_s = time.perf_counter() - t0
        self.params = {"model": path, "dtype": dtype, "batch_size": batch_size, "device": self.device,
                       "version": transformers.__version__, **({"hf_overrides": hf_overrides} if hf_overrides else {}),
                       **({"vision": vision} if vision is not None else {})}

    def generate(self, prompts: list[Prompt], params: GenParams, images: Images | None = None) -> Generation:
        import torch

        with_images = bool(images and any(images))
        texts = prompt_texts(self.processor if with_images else self.tokenizer, prompts)
        out: list[list[str]] = []
        prompt_tokens = output_tokens = 0
        t0 = time.perf_counter()
        # Sort by length so each padded batch wastes little; restore order after.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        results: dict[int, list[str]] = {}
        for start in tracked(range(0, len(order), self.batch_size), "transformers: generating (batches)"):
            idx = order[start:start + self.batch_size]
            if with_images:  # the processor expands each image placeholder into the model's image tokens
                assert images is not None
                enc = self.processor(text=[texts[i] for i in idx], images=[images[i] for i in idx],
                                     return_tensors="pt", padding=True, add_special_tokens=False,
                                     **(self.vision or {})).to(self.device)
            else:
                enc = self.tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True,
                                     add_special_tokens=False).to(self.device)
            gen_kwargs: dict[str, Any] = {"max_new_tokens": params.max_new_tokens,
                                          "num_return_sequences": params.n,
                                          "pad_token_id": self.tokenizer.pad_token_id}
            if params.temperature > 0:
                gen_kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
            else:
                gen_kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            if params.stop:
                gen_kwargs["stopping_criteria"] = [_StopOnStrings(self.tokenizer, params.stop,
                                                                  enc["input_ids"].shape[1])]
            with torch.inference_mode():
                seqs = self.model.generate(**enc, **gen_kwargs)
            new = seqs[:, enc["input_ids"].shape[1]:]
            prompt_tokens += int(enc["attention_mask"].sum())
            for j, i in enumerate(idx):
                outs = []
                for k in range(params.n):
                    row = new[j * params.n + k]
                    text = truncate_at_stop(self.tokenizer.decode(row, skip_special_tokens=True), params.stop)
                    outs.append(text)
                    output_tokens += _generated_len(row, self.tokenizer)
                results[i] = outs
            self.deliver({i: results[i] for i in idx})  # the generation cache keeps each batch as it ends
        out = [results[i] for i in range(len(texts))]
        return Generation(texts=out, prompt_tokens=prompt_tokens, output_tokens=output_tokens,
                          wall_s=time.perf_counter() - t0)

    def loglikelihood(self, requests: list[tuple[Prompt, str]]) -> list[LoglikResult]:
        import torch

        contexts = prompt_texts(self.tokenizer, [c for c, _ in requests])
        splits = [split_context(self.tokenizer, c, x) for c, (_, x) in zip(contexts, requests, strict=True)]
        results: list[LoglikResult | None] = [None] * len(splits)
        order = sorted(range(len(splits)), key=lambda i: -len(splits[i][0]) - len(splits[i][1]))
        pad = self.tokenizer.pad_token_id
        for start in tracked(range(0, len(order), self.batch_size), "transformers: scoring choices (batches)"):
            idx = order[start:start + self.batch_size]
            seqs = [splits[i][0] + splits[i][1] for i in idx]
            width = max(len(s) for s in seqs)
            ids = torch.full((len(seqs), width), pad, dtype=torch.long)
            mask = torch.zeros((len(seqs), width), dtype=torch.long)
            for r, s in enumerate(seqs):  # right padding: positions stay aligned with tokens
                ids[r, :len(s)] = torch.tensor(s)
                mask[r, :len(s)] = 1
            with torch.inference_mode():
                logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
            for r, i in enumerate(idx):
                ctx, cont = splits[i]
                pos = torch.arange(len(ctx) - 1, len(ctx) + len(cont) - 1)
                target = torch.tensor(cont)
                # log_softmax over the continuation's positions only: the whole
                # (batch x length x vocabulary) tensor would cost gigabytes.
                rows = torch.log_softmax(logits[r, pos.to(logits.device)].float(), dim=-1)
                lp = rows.gather(1, target.to(rows.device).unsqueeze(1)).sum().item()
                greedy = bool((rows.argmax(dim=-1).cpu() == target).all())
                results[i] = LoglikResult(lp, greedy)
        return [r for r in results if r is not None]

    def memory(self) -> dict[str, float]:
        return torch_gpu_peak()

    def close(self) -> None:
        import gc

        self.model = None
        gc.collect()


def _StopOnStrings(tokenizer: Any, stop: tuple[str, ...], prompt_len: int, tail_tokens: int = 12) -> Any:  # noqa: N802
    """Per-sequence stop on stop strings, checking only the decoded tail of each new row.

    transformers' own ``stop_strings`` rebuilds a vocabulary-sized table on every
    ``generate`` call, which on a CPU costs more than the tokens it saves.  (A factory, so
    that importing this module does not import transformers.)
    """
    import torch
    from transformers import StoppingCriteria

    class StopOnStrings(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            new = input_ids[:, prompt_len:]
            tails = tokenizer.batch_decode(new[:, -tail_tokens:], skip_special_tokens=True)
            return torch.tensor([any(s in t for s in stop) for t in tails], device=input_ids.device)

    return StopOnStrings()


def _generated_len(row: Any, tokenizer: Any) -> int:
    """Tokens generated before padding/EOS fill."""
    ids = row.tolist()
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id
    n = len(ids)
    while n and ids[n - 1] in (pad, eos):
        n -= 1
    return n + (1 if n < len(ids) and eos is not None else 0)
