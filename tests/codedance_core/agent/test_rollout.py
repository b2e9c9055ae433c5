"""The tool loop end to end: the tiny model, the real sandbox (isolation on), token bookkeeping.

A random tiny model writes noise, so the first fixture teaches it one trajectory by heart:
a turn that runs code on the image, then, after the real observation, a turn that answers.
Greedy rollouts must then replay that trajectory through the real loop: the code really runs,
the observation is the sandbox's real output, and the masks cover exactly the model's turns.
"""

from __future__ import annotations

import asyncio

import pytest
from PIL import Image

from codedance_core.agent.rollout import Rollout
from codedance_core.agent.trajectory import RolloutItem
from codedance_core.chat_format.messages import to_model_messages
from codedance_core.chat_format.observation import format_observation
from codedance_core.chat_format.prompts import get_prompts
from codedance_core.config.agent import RolloutConfig
from codedance_core.engines.hf import HFEngine
from codedance_core.models import load_model_bundle
from codedance_core.models.imprint import imprint_conversation
from codedance_core.sandbox import SandboxConfig, SandboxPool

CODE = "w, h = input_image.size\nprint(w * h)\n"
TURN_1 = f"<think>measure</think><code>\n```python\n{CODE}```\n</code>"
TURN_2 = "<think>done</think><answer>50176</answer><|im_end|>"
MESSAGES = [{"role": "system", "content": "sys"}, {"role": "user", "content": "<image>\nHow many pixels?"}]


def image() -> Image.Image:
    return Image.new("RGB", (224, 224), "red")


def item(item_id: str = "a") -> RolloutItem:
    return RolloutItem(item_id=item_id, messages=[dict(m) for m in MESSAGES], images=[image()], gold="50176")


def run(coroutine):
    return asyncio.run(coroutine)


def real_observation() -> str:
    async def go():
        async with SandboxPool(SandboxConfig(workers=1)) as pool:
            return await pool.run_once(image(), CODE)

    return format_observation(run(go())).text


@pytest.fixture(scope="module")
def tool_user(tiny_model_dir):
    """The tiny model taught one two-turn tool trajectory; returns (bundle, observation text)."""
    observation = real_observation()
    bundle = load_model_bundle(tiny_model_dir, device="cpu")
    turns = [(TURN_1, observation), (TURN_2.removesuffix("<|im_end|>"), None)]
    loss = imprint_conversation(bundle, to_model_messages(MESSAGES), [image()], turns)
    assert loss < 0.05
    return bundle, observation


def rollout(bundle, config: RolloutConfig, items: list[RolloutItem]):
    async def go():
        async with SandboxPool(SandboxConfig(workers=2)) as pool:
            loop = Rollout(HFEngine(bundle), pool, config, bundle=bundle)
            return await loop.run(items), loop.stats

    return run(go())


def test_a_taught_trajectory_runs_its_code_and_answers(tool_user) -> None:
    bundle, observation = tool_user
    [trajectory], stats = rollout(bundle, RolloutConfig(temperature=0, max_new_tokens=48), [item()])
    assert trajectory.finish_reason == "answered", trajectory.error
    assert trajectory.answer == "50176"
    assert trajectory.tool_statuses == ["ok", None]
    assert trajectory.turns[0].code == CODE
    assert "50176" in observation
    assert [m["role"] for m in trajectory.messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert trajectory.messages[3]["content"] == observation  # the real sandbox output, nothing invented
    assert stats.engine_calls >= 2 and stats.sandbox_s > 0


def test_the_loss_mask_covers_exactly_the_model_turns(tool_user) -> None:
    bundle, _ = tool_user
    [trajectory], _ = rollout(bundle, RolloutConfig(temperature=0, max_new_tokens=48), [item()])
    assert len(trajectory.token_ids) == len(trajectory.loss_mask) == len(trajectory.logprobs)
    trained = [t for t, m in zip(trajectory.token_ids, trajectory.loss_mask, strict=True) if m]
    decoded = bundle.tokenizer.decode(trained, skip_special_tokens=False)
    assert decoded == TURN_1 + TURN_2
    spans = trajectory.turn_spans
    assert all(trajectory.loss_mask[s:e] == [1] * (e - s) for s, e in spans)
    assert sum(trajectory.loss_mask) == sum(e - s for s, e in spans)
    # Tokens the model did not sample carry log-prob 0; sampled ones are real log-probs.
    assert all(lp == 0.0 for lp, m in zip(trajectory.logprobs, trajectory.loss_mask, strict=True) if not m)
    assert all(lp <= 0.0 for lp in trajectory.logprobs)


def test_token_ids_equal_the_chat_template_of_the_final_conversation(tool_user) -> None:
    bundle, _ = tool_user
    [trajectory], _ = rollout(bundle, RolloutConfig(temperature=0, max_new_tokens=48), [item()])
    rendered = bundle.encode_messages(
        to_model_messages(trajectory.messages), trajectory.images, add_generation_prompt=False
    )
    assert trajectory.token_ids == rendered.token_ids


def test_samples_and_items_run_together_and_come_back_in_order(tool_user) -> None:
    bundle, _ = tool_user
    config = RolloutConfig(temperature=0, max_new_tokens=48, samples_per_prompt=3)
    trajectories, stats = rollout(bundle, config, [item("a"), item("b")])
    assert [(t.item.item_id, t.sample_index) for t in trajectories] == [
        ("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1), ("b", 2)
    ]
    assert all(t.finish_reason == "answered" for t in trajectories)
    assert stats.engine_calls <= 4  # 6 trajectories x 2 turns, batched


def test_turn_limit_asks_for_an_answer_and_ends(tool_user) -> None:
    bundle, _ = tool_user
    [trajectory], _ = rollout(bundle, RolloutConfig(temperature=0, max_new_tokens=48, max_turns=2), [item()])
    # The second turn is the last: after the observation the loop tells the model to answer now.
    assert [m["role"] for m in trajectory.messages] == ["system", "user", "assistant", "tool", "user", "assistant"]
    assert trajectory.messages[4] == {"role": "user", "content": get_prompts().answer_now}
    # The model was never taught that message, so it may answer or not; either way no code runs.
    assert trajectory.finish_reason in ("answered", "turn_limit")
    assert trajectory.tool_statuses == ["ok", None]


def test_one_turn_budget_ends_with_turn_limit(tool_user) -> None:
    bundle, _ = tool_user
    [trajectory], _ = rollout(bundle, RolloutConfig(temperature=0, max_new_tokens=48, max_turns=1), [item()])
    assert trajectory.finish_reason == "turn_limit"
    assert trajectory.tool_statuses == [None]  # code written in the last turn is not run


def test_context_overflow_ends_the_trajectory_not_the_batch(tool_user) -> None:
    bundle, _ = tool_user
    config = RolloutConfig(temperature=0, max_new_tokens=48, max_context_tokens=64)
    [trajectory], _ = rollout(bundle, config, [item()])
    assert trajectory.finish_reason == "context_overflow"


def test_untrained_model_ends_with_a_reason(tiny_bundle) -> None:
    trajectories, _ = rollout(tiny_bundle, RolloutConfig(temperature=1.0, seed=0, max_new_tokens=16), [item()] * 4)
    assert all(t.finish_reason in {"answered", "no_answer", "length", "turn_limit"} for t in trajectories)
