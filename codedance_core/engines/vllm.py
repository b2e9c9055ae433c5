"""Generation with vLLM on GPU workers: the rollout engine of the `paper` profile.

vLLM is imported inside functions only. It cannot run on CPU and pins FastAPI below what Prefect
needs, so it lives in the GPU worker image (the `gpu` extra); this module must import anywhere,
and fail with a clear message only when someone actually asks for a vLLM engine without vLLM.
Everything that decides what vLLM is asked (engine arguments, prompts, sampling parameters,
seeds) is a plain function of plain values, so it is tested where vLLM is absent.

Prompts go in as token ids, so the loop's trajectory is exactly what the model read. Image pads are
collapsed back to ONE per image before the call (the form verl hands to vLLM): vLLM's Qwen2.5-VL
processor expands them itself from the same image and resize bounds (passed as
`mm_processor_kwargs`), which our own expansion mirrors.

Seeds. vLLM seeds every request on its own: two requests with the same prompt and seed sample
the same text. So each request gets its own seed, derived from the batch seed and the request's
`sample_key` (prompt, sample, turn): the samples of a prompt differ, and each one is reproducible
whichever batch it lands in. A request without a key is numbered by how many requests this
engine has served under the same batch seed.

Colocated with a trainer (GRPO), the engine shares the GPU: around each update it sleeps
(vLLM's sleep mode frees the KV cache and offloads or drops the weights), and wakes with the new
weights loaded through each worker's `model.load_weights`, the loader vLLM's own RLHF examples
call, which maps checkpoint names (`train.weight_sync`) onto vLLM's fused modules. With the
engine core in this process (`in_process`) the buckets reach the worker by reference.

Log-probs: vLLM reports those of the raw distribution (temperature 1) by default. At the RL
temperature of 1.0 this equals our definition (log_softmax(logits / T)); at other temperatures
the figures differ, which matters only for diagnostics since trainers recompute them.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from codedance_core.config.model import EngineConfig
from codedance_core.engines.base import Completion, GenerationEngine, GenerationRequest, SamplingParams
from codedance_core.models.images import ImageDecodeError, load_image_processor, pixel_bounds
from codedance_core.models.inputs import encode_messages
from codedance_core.models.tokenizer import CHAT_TEMPLATE, IMAGE_PAD

INSTALL_HINT = (
    "vLLM is not installed. It runs on CUDA GPU workers only: install the `gpu` extra there "
    "(pip install 'codedance[gpu]'), or use engine kind 'hf' (transformers) or 'openai' (a served model)."
)

Bucket = list[tuple[str, torch.Tensor]]


def import_vllm() -> Any:
    """The vllm module, or a RuntimeError that says where vLLM belongs."""
    try:
        import vllm
    except ImportError as error:
        raise RuntimeError(INSTALL_HINT) from error
    return vllm


def collapse_image_pads(token_ids: Sequence[int], image_token_id: int) -> list[int]:
    """One image pad per image: each run of consecutive pads becomes a single pad."""
    collapsed: list[int] = []
    for token in token_ids:
        if token == image_token_id and collapsed and collapsed[-1] == image_token_id:
            continue
        collapsed.append(token)
    return collapsed


def sample_seed(batch_seed: int, key: Sequence[str | int]) -> int:
    """A seed for one request, from the batch seed and what identifies the request: a stable hash
    (not Python's per-process `hash`), 63 bits so every generator and int64 field accepts it."""
    digest = hashlib.blake2b(repr((batch_seed, tuple(key))).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def request_seeds(
    requests: Sequence[GenerationRequest], batch_seed: int | None, first_ordinal: int = 0
) -> list[int | None]:
    """Each request's seed: from its `sample_key`, or else from its ordinal among the requests
    served under `batch_seed` (`first_ordinal` = how many came before). None leaves vLLM unseeded."""
    if batch_seed is None:
        return [None] * len(requests)
    return [
        sample_seed(
            batch_seed,
            ("sample", *r.sample_key) if r.sample_key is not None else ("request", first_ordinal + i),
        )
        for i, r in enumerate(requests)
    ]


def sampling_kwargs(params: SamplingParams, seed: int | None) -> dict[str, Any]:
    """Keyword arguments of `vllm.SamplingParams` for one request."""
    return {
        "n": 1,
        "max_tokens": params.max_new_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "seed": seed,
        "stop": list(params.stop),
        "include_stop_str_in_output": True,
        "logprobs": 0,  # 0: only the sampled token's log-prob
        "skip_special_tokens": True,
    }


# vLLM imports this by name in each worker process and mixes it into its GPU worker class.
WORKER_EXTENSION = "codedance_core.engines.vllm.WeightLoadingWorker"


def engine_kwargs(config: EngineConfig, seed: int, min_pixels: int, max_pixels: int) -> dict[str, Any]:
    """Keyword arguments of `vllm.LLM` for `config`."""
    return {
        "model": config.model,
        "dtype": config.dtype,
        "gpu_memory_utilization": config.gpu_memory_utilization,
        "max_model_len": config.max_model_len,
        "tensor_parallel_size": config.tensor_parallel_size,
        "limit_mm_per_prompt": {"image": config.max_images_per_prompt},
        "mm_processor_kwargs": {"min_pixels": min_pixels, "max_pixels": max_pixels},
        "enable_prefix_caching": True,
        "enable_sleep_mode": config.sleep_mode,
        "worker_extension_cls": WORKER_EXTENSION,
        "seed": seed,
    }


class WeightLoadingWorker:
    """Methods added to each vLLM GPU worker (`worker_extension_cls`); run through `collective_rpc`."""

    def load_checkpoint_weights(self, weights: Bucket) -> None:
        """Load (checkpoint name, full tensor) pairs; the model's loader shards them over tensor
        parallelism and packs q/k/v and gate/up into vLLM's fused parameters."""
        device = self.device  # type: ignore[attr-defined]  # the worker's
        self.model_runner.model.load_weights(  # type: ignore[attr-defined]
            weights=[(name, tensor.to(device, non_blocking=True)) for name, tensor in weights]
        )


class PromptBuilder:
    """vLLM prompt dicts from requests: token ids with collapsed image pads, plus the images."""

    def __init__(self, tokenizer: Any, image_processor: Any) -> None:
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_PAD)

    @classmethod
    def from_model_dir(cls, model_dir: str | Path) -> PromptBuilder:
        from transformers import AutoTokenizer

        return cls(AutoTokenizer.from_pretrained(str(model_dir)), load_image_processor(str(model_dir)))

    def prompt(self, request: GenerationRequest) -> dict:
        token_ids = request.token_ids
        if token_ids is None:
            if request.messages is None:
                raise ValueError("request has neither token_ids nor messages")
            encoded = encode_messages(
                self.tokenizer, self.image_processor, request.messages, request.images, CHAT_TEMPLATE
            )
            token_ids = encoded.token_ids
        prompt: dict = {"prompt_token_ids": collapse_image_pads(token_ids, self.image_token_id)}
        if request.images:
            prompt["multi_modal_data"] = {"image": [image.convert("RGB") for image in request.images]}
        return prompt


class VLLMEngine(GenerationEngine):
    """vLLM offline engine (`vllm.LLM`) over a local model directory."""

    def __init__(self, config: EngineConfig, seed: int = 0) -> None:
        vllm = import_vllm()
        self._vllm = vllm
        self.config = config
        self.prompts = PromptBuilder.from_model_dir(config.model)
        if config.in_process:
            # Read when the engine is built: the engine core (and, at one GPU, the worker) then
            # live in this process, and collective_rpc hands the worker our tensors as they are.
            os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        min_pixels, max_pixels = pixel_bounds(self.prompts.image_processor)
        self.llm = vllm.LLM(**engine_kwargs(config, seed, min_pixels, max_pixels))
        self._ordinal_lock = threading.Lock()
        self._ordinal_seed: int | None = None
        self._ordinal = 0

    @classmethod
    def from_config(cls, config: EngineConfig) -> VLLMEngine:
        return cls(config)

    def generate(self, requests: Sequence[GenerationRequest], params: SamplingParams) -> list[Completion]:
        prompts: list[dict | None] = []
        errors: list[str | None] = []
        for request in requests:
            try:
                prompts.append(self.prompts.prompt(request))
                errors.append(None)
            except (ValueError, ImageDecodeError) as error:
                prompts.append(None)
                errors.append(f"cannot encode request: {error}")
        valid = [i for i, prompt in enumerate(prompts) if prompt is not None]
        seeds = request_seeds(
            [requests[i] for i in valid], params.seed, self._take_ordinals(params.seed, len(valid))
        )
        sampling = [self._vllm.SamplingParams(**sampling_kwargs(params, seed)) for seed in seeds]
        outputs = (
            iter(self.llm.generate([prompts[i] for i in valid], sampling, use_tqdm=False))
            if valid
            else iter(())
        )
        return [
            Completion.failed(error) if prompt is None else self._completion(next(outputs))  # type: ignore[arg-type]
            for prompt, error in zip(prompts, errors, strict=True)
        ]

    def _take_ordinals(self, batch_seed: int | None, count: int) -> int:
        """The first of `count` consecutive request numbers under `batch_seed` (restarts per seed)."""
        with self._ordinal_lock:
            if batch_seed != self._ordinal_seed:
                self._ordinal_seed, self._ordinal = batch_seed, 0
            first = self._ordinal
            self._ordinal += count
            return first

    @staticmethod
    def _completion(output: Any) -> Completion:
        sample = output.outputs[0]
        token_ids = list(sample.token_ids)
        logprobs = [float(step[token].logprob) for step, token in zip(sample.logprobs or [], token_ids)]
        finish = sample.finish_reason if sample.finish_reason in ("stop", "length") else "error"
        stop_string = sample.stop_reason if isinstance(sample.stop_reason, str) else None
        error = None if finish != "error" else f"vLLM finished with {sample.finish_reason!r}"
        return Completion(sample.text, token_ids, logprobs, finish, stop_string, error)

    # -- colocated with a trainer ---------------------------------------------------------------
    def load_weights(self, buckets: Iterable[Bucket]) -> int:
        """Load bucketed checkpoint weights into every worker, then drop the prefix cache (its KV
        was computed by the old weights). Returns the number of tensors loaded."""
        if not self.config.in_process:
            raise RuntimeError(
                "weight sync needs the vLLM engine core in this process (engine.in_process: true)"
            )
        # Over several GPUs the workers are processes of their own: tensors travel pickled, via CPU.
        to_cpu = self.config.tensor_parallel_size > 1
        count = 0
        for bucket in buckets:
            payload = [(name, tensor.cpu()) for name, tensor in bucket] if to_cpu else bucket
            self.llm.collective_rpc("load_checkpoint_weights", args=(payload,))
            count += len(bucket)
        self.llm.reset_prefix_cache()
        return count

    @contextmanager
    def released_for_update(
        self, new_weights: Callable[[], Iterable[Bucket]] | None = None
    ) -> Iterator[None]:
        """The engine asleep for the body (a training update), then awake with `new_weights()` loaded.

        Weights wake first and are loaded before the KV cache is allocated again, so gathered
        buckets never sit beside a full KV cache (on vLLM versions whose `wake_up` takes tags).
        Level 2 drops the weights instead of offloading them; it is used only when new weights
        will replace them all.
        """
        asleep = self.config.sleep_mode
        if asleep:
            self.llm.sleep(level=self.config.sleep_level if new_weights is not None else 1)
        try:
            yield
        except BaseException:
            if asleep:
                self.llm.wake_up()
            raise
        by_tags = asleep and "tags" in inspect.signature(self.llm.wake_up).parameters
        if asleep and not by_tags:
            self.llm.wake_up()
        if by_tags:
            self.llm.wake_up(tags=["weights"])
        try:
            if new_weights is not None:
                self.load_weights(new_weights())
        finally:
            if by_tags:
                self.llm.wake_up(tags=["kv_cache"])
