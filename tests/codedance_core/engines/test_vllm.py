"""The vLLM engine module without vLLM: importable, clear when vLLM is missing, and everything it
would ask vLLM (engine arguments, prompts, sampling parameters, one seed per sample) from plain values."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
from collections.abc import Sequence

import pytest
from PIL import Image

from codedance_core.agent.rollout import Rollout
from codedance_core.agent.trajectory import RolloutItem
from codedance_core.config.agent import RolloutConfig
from codedance_core.config.model import EngineConfig
from codedance_core.engines import make_engine
from codedance_core.engines.base import Completion, GenerationEngine, GenerationRequest, SamplingParams
from codedance_core.engines.hf import HFEngine
from codedance_core.engines.vllm import (
    WORKER_EXTENSION,
    PromptBuilder,
    collapse_image_pads,
    engine_kwargs,
    request_seeds,
    sample_seed,
    sampling_kwargs,
)
from codedance_core.sandbox import SandboxConfig, SandboxPool

VLLM_INSTALLED = importlib.util.find_spec("vllm") is not None


def test_image_pad_runs_collapse_to_one_pad_per_image():
    assert collapse_image_pads([1, 9, 9, 9, 2, 9, 9, 3], image_token_id=9) == [1, 9, 2, 9, 3]
    assert collapse_image_pads([1, 2], image_token_id=9) == [1, 2]


@pytest.mark.skipif(VLLM_INSTALLED, reason="checks the message shown where vLLM is absent (CPU machines)")
def test_asking_for_vllm_without_it_says_where_it_belongs(tiny_model_dir):
    with pytest.raises(RuntimeError, match="GPU workers only"):
        make_engine(EngineConfig(kind="vllm", model=str(tiny_model_dir)))


def sample_requests(prompt_id: str, samples: int, turn: int) -> list[GenerationRequest]:
    return [GenerationRequest(token_ids=[1, 2, 3], sample_key=(prompt_id, s, turn)) for s in range(samples)]


def test_the_samples_of_one_prompt_get_different_seeds_and_the_same_ones_again_next_time():
    step_seed = 1_000_003
    first_turn = request_seeds(sample_requests("item-7", 8, turn=0), step_seed)
    assert len(set(first_turn)) == 8
    assert request_seeds(sample_requests("item-7", 8, turn=0), step_seed) == first_turn
    # whichever batch a sample lands in, and in whatever order, its seed is its own
    shuffled = list(reversed(sample_requests("item-7", 8, turn=0)))
    assert request_seeds(shuffled, step_seed) == list(reversed(first_turn))
    assert request_seeds(sample_requests("item-7", 8, turn=0)[3:4], step_seed) == [first_turn[3]]
    # another turn, prompt or step draws afresh
    later_turn = request_seeds(sample_requests("item-7", 8, turn=1), step_seed)
    other_prompt = request_seeds(sample_requests("item-8", 8, turn=0), step_seed)
    next_step = request_seeds(sample_requests("item-7", 8, turn=0), step_seed + 1)
    assert len(set(first_turn) | set(later_turn) | set(other_prompt) | set(next_step)) == 32
    assert all(0 <= seed < 2**63 for seed in first_turn)


def test_requests_without_a_key_are_numbered_and_unseeded_batches_stay_unseeded():
    plain = [GenerationRequest(token_ids=[1, 2, 3]) for _ in range(4)]
    seeds = request_seeds(plain, 5)
    assert len(set(seeds)) == 4
    assert request_seeds(plain[:2], 5, first_ordinal=2) == seeds[2:]
    assert request_seeds(plain, None) == [None] * 4
    assert sample_seed(5, ("a", 0, 0)) == sample_seed(5, ["a", 0, 0]) != sample_seed(5, ("a", 1, 0))


class RecordingEngine(GenerationEngine):
    """The real hf engine, with every request it is asked kept for the test to read."""

    def __init__(self, inner: GenerationEngine) -> None:
        self.inner = inner
        self.requests: list[GenerationRequest] = []

    def generate(self, requests: Sequence[GenerationRequest], params: SamplingParams) -> list[Completion]:
        self.requests.extend(requests)
        return self.inner.generate(requests, params)


def test_the_rollout_loop_keys_each_sample_so_a_step_seeds_all_its_samples_apart(tiny_bundle):
    items = [
        RolloutItem(
            item_id=name,
            messages=[{"role": "user", "content": "<image>\nHow many pixels?"}],
            images=[Image.new("RGB", (56, 56), "red")],
        )
        for name in ("a", "b")
    ]
    config = RolloutConfig(samples_per_prompt=8, max_turns=2, max_new_tokens=8, temperature=1.0, seed=11)
    engine = RecordingEngine(HFEngine(tiny_bundle))

    async def go() -> None:
        async with SandboxPool(SandboxConfig(workers=1)) as pool:
            await Rollout(engine, pool, config, bundle=tiny_bundle).run(items)

    asyncio.run(go())
    keys = [request.sample_key for request in engine.requests]
    assert None not in keys and len(set(keys)) == len(keys)
    first_turn = {
        key: seed for key, seed in zip(keys, request_seeds(engine.requests, config.seed)) if key[2] == 0
    }
    assert sorted(first_turn) == [(name, s, 0) for name in ("a", "b") for s in range(8)]
    assert len(set(first_turn.values())) == 16


def test_sampling_parameters_ask_for_one_sample_with_its_own_seed_and_the_sampled_log_prob():
    params = SamplingParams(max_new_tokens=512, temperature=1.0, top_p=0.9, seed=3, stop=("</code>",))
    kwargs = sampling_kwargs(params, seed=42)
    assert kwargs == {
        "n": 1,
        "max_tokens": 512,
        "temperature": 1.0,
        "top_p": 0.9,
        "seed": 42,
        "stop": ["</code>"],
        "include_stop_str_in_output": True,
        "logprobs": 0,
        "skip_special_tokens": True,
    }


def test_engine_arguments_enable_sleep_mode_and_the_weight_loading_worker(tiny_model_dir):
    config = EngineConfig(
        kind="vllm", model=str(tiny_model_dir), gpu_memory_utilization=0.5, max_images_per_prompt=4
    )
    kwargs = engine_kwargs(config, seed=9, min_pixels=3136, max_pixels=12_845_056)
    assert kwargs["enable_sleep_mode"] is True and kwargs["gpu_memory_utilization"] == 0.5
    assert kwargs["limit_mm_per_prompt"] == {"image": 4}
    assert kwargs["mm_processor_kwargs"] == {"min_pixels": 3136, "max_pixels": 12_845_056}
    assert kwargs["seed"] == 9 and kwargs["model"] == str(tiny_model_dir)
    assert (
        engine_kwargs(config.model_copy(update={"sleep_mode": False}), 9, 1, 2)["enable_sleep_mode"] is False
    )
    module, _, name = kwargs["worker_extension_cls"].rpartition(".")
    assert kwargs["worker_extension_cls"] == WORKER_EXTENSION
    assert callable(getattr(importlib.import_module(module), name).load_checkpoint_weights)


def test_prompts_carry_token_ids_with_one_pad_per_image_and_the_images(tiny_model_dir, tiny_bundle):
    builder = PromptBuilder.from_model_dir(tiny_model_dir)
    picture = Image.new("RGB", (56, 56), "blue")
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour?"}]}]
    encoded = tiny_bundle.encode_messages(messages, [picture])
    pad = builder.image_token_id
    assert encoded.token_ids.count(pad) > 1  # the model's own prompt holds the expanded pads
    prompt = builder.prompt(GenerationRequest(token_ids=list(encoded.token_ids), images=[picture]))
    assert prompt["prompt_token_ids"] == collapse_image_pads(encoded.token_ids, pad)
    assert prompt["prompt_token_ids"].count(pad) == 1
    assert prompt["multi_modal_data"]["image"][0].mode == "RGB"
    from_messages = builder.prompt(GenerationRequest(messages=messages, images=[picture]))
    assert from_messages["prompt_token_ids"] == prompt["prompt_token_ids"]
    assert "multi_modal_data" not in builder.prompt(GenerationRequest(token_ids=[1, 2, 3]))
    with pytest.raises(ValueError, match="neither"):
        builder.prompt(GenerationRequest())
