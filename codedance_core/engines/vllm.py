"""Generation with vLLM on GPU workers: the rollout engine of the `paper` profile.

vLLM is imported inside functions only. It cannot run on CPU and pins FastAPI below what Prefect
needs, so it lives in the GPU worker image (the `gpu` extra); this module must import anywhere,
and fail with a clear message only when someone actually asks for a vLLM engine without vLLM.

Prompts go in as token ids, so the loop's trajectory is exactly what the model read. Image pads are
collapsed back to ONE per image before the call (the form verl hands to vLLM): vLLM's Qwen2.5-VL
processor expands them itself from the same image and resize bounds (passed as
`mm_processor_kwargs`), which our own expansion mirrors.

Log-probs: vLLM reports those of the raw distribution (temperature 1) by default. At the RL
temperature of 1.0 this equals our definition (log_softmax(logits / T)); at other temperatures
the figures differ, which matters only for diagnostics since trainers recompute them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from codedance_core.config.model import EngineConfig
from codedance_core.engines.base import Completion, GenerationEngine, GenerationRequest, SamplingParams
from codedance_core.models.images import ImageDecodeError, load_image_processor, pixel_bounds
from codedance_core.models.inputs import encode_messages
from codedance_core.models.tokenizer import CHAT_TEMPLATE, IMAGE_PAD

INSTALL_HINT = (
    "vLLM is not installed. It runs on CUDA GPU workers only: install the `gpu` extra there "
    "(pip install 'codedance[gpu]'), or use engine kind 'hf' (transformers) or 'openai' (a served model)."
)


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


class VLLMEngine(GenerationEngine):
    """vLLM offline engine (`vllm.LLM`) over a local model directory."""

    def __init__(self, config: EngineConfig, seed: int = 0) -> None:
        vllm = import_vllm()
        from transformers import AutoTokenizer

        self._vllm = vllm
        self.tokenizer = AutoTokenizer.from_pretrained(config.model)
        self.image_processor = load_image_processor(config.model)
        self.image_token_id = self.tokenizer.convert_tokens_to_ids(IMAGE_PAD)
        min_pixels, max_pixels = pixel_bounds(self.image_processor)
        self.llm = vllm.LLM(
            model=config.model,
            dtype="auto" if config.dtype == "auto" else config.dtype,
            gpu_memory_utilization=config.gpu_memory_utilization,
            max_model_len=config.max_model_len,
            tensor_parallel_size=config.tensor_parallel_size,
            limit_mm_per_prompt={"image": config.max_images_per_prompt},
            mm_processor_kwargs={"min_pixels": min_pixels, "max_pixels": max_pixels},
            enable_prefix_caching=True,
            seed=seed,
        )

    @classmethod
    def from_config(cls, config: EngineConfig) -> VLLMEngine:
        return cls(config)

    def generate(self, requests: Sequence[GenerationRequest], params: SamplingParams) -> list[Completion]:
        prompts: list[dict | None] = []
        errors: list[str | None] = []
        for request in requests:
            try:
                prompts.append(self._prompt(request))
                errors.append(None)
            except (ValueError, ImageDecodeError) as error:
                prompts.append(None)
                errors.append(f"cannot encode request: {error}")
        valid = [prompt for prompt in prompts if prompt is not None]
        outputs = (
            iter(self.llm.generate(valid, self._sampling_params(params), use_tqdm=False))
            if valid
            else iter(())
        )
        return [
            Completion.failed(error) if prompt is None else self._completion(next(outputs))
            for prompt, error in zip(prompts, errors, strict=True)
        ]

    def _prompt(self, request: GenerationRequest) -> dict:
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

    def _sampling_params(self, params: SamplingParams) -> Any:
        return self._vllm.SamplingParams(
            n=1,
            max_tokens=params.max_new_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            seed=params.seed,
            stop=list(params.stop),
            include_stop_str_in_output=True,
            logprobs=0,  # 0: only the sampled token's log-prob
            skip_special_tokens=True,
        )

    @staticmethod
    def _completion(output: Any) -> Completion:
        sample = output.outputs[0]
        token_ids = list(sample.token_ids)
        logprobs = [float(step[token].logprob) for step, token in zip(sample.logprobs or [], token_ids)]
        finish = sample.finish_reason if sample.finish_reason in ("stop", "length") else "error"
        stop_string = sample.stop_reason if isinstance(sample.stop_reason, str) else None
        error = None if finish != "error" else f"vLLM finished with {sample.finish_reason!r}"
        return Completion(sample.text, token_ids, logprobs, finish, stop_string, error)
