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
from codedance_core.agent.trajectory import RolloutItem, Trajectory, TurnRecord
from codedance_core.chat_format.messages import to_model_messages
from codedance_core.chat_format.observation import format_observation
from codedance_core.chat_format.prompts import get_prompts
from codedance_core.config.agent import RolloutConfig
from codedance_core.engines.hf import HFEngine
from codedance_core.models import load_model_bundle
from codedance_core.models.imprint import imprint_conversation, imprint_conversations
from codedance_core.sandbox import SandboxConfig, SandboxPool

CODE = "w, h = input_image.size\nprint(w * h)\n"
TURN_1 = f"<think>measure</think><code>\n```python\n{CODE}```\n</code>"
TURN_2 = "<think>done</think><answer>50176</answer><|im_end|>"
MESSAGES = [{"role": "system", "content": "sys"}, {"role": "user", "content": "<image>\nHow many pixels?"}]


def image(colour: str = "red") -> Image.Image:
    return Image.new("RGB", (224, 224), colour)


def item(item_id: str = "a", colour: str = "red") -> RolloutItem:
    return RolloutItem(item_id=item_id, messages=[dict(m) for m in MESSAGES], images=[image(colour)], gold="50176")


def run(coroutine):
    return asyncio.run(coroutine)


def real_observation(code: str = CODE, colour: str = "red") -> str:
    async def go():
        async with SandboxPool(SandboxConfig(workers=1)) as pool:
            return await pool.run_once(image(colour), code)

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


def rollout(bundle, config: RolloutConfig, items: list[RolloutItem], workers: int = 2):
    async def go():
        async with SandboxPool(SandboxConfig(workers=workers)) as pool:
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


# -- token budgets ---------------------------------------------------------------------------------
def test_a_turn_asks_for_the_least_of_its_cap_the_response_budget_and_the_context_room(tool_user) -> None:
    bundle, _ = tool_user
    trajectory = Trajectory(item=item(), sample_index=0, token_ids=[0] * 100)
    trajectory.turns.append(TurnRecord(index=0, text="", generated_tokens=30))
    closer = 1 + len(bundle.tokenizer.encode("\n", add_special_tokens=False))

    def limit(**budgets):
        loop = Rollout(HFEngine(bundle), SandboxPool(), RolloutConfig(max_new_tokens=48, **budgets), bundle=bundle)
        return loop.turn_token_limit(trajectory)

    assert limit() == (48, "turn")
    assert limit(max_response_tokens=50) == (20, "response_budget")
    assert limit(max_context_tokens=130) == (130 - 100 - closer, "context_overflow")


def test_the_turn_that_spends_the_response_budget_ends_the_trajectory(tool_user) -> None:
    bundle, _ = tool_user
    greedy = RolloutConfig(temperature=0, max_new_tokens=48)
    [free], _ = rollout(bundle, greedy, [item()])
    code_turn, answer_turn = (turn.generated_tokens for turn in free.turns)
    assert free.response_tokens == code_turn + answer_turn == sum(free.loss_mask)

    # Exactly the code turn: its code is not run, since no token is left to read the result.
    [spent], stats = rollout(bundle, greedy.model_copy(update={"max_response_tokens": code_turn}), [item()])
    assert (spent.finish_reason, spent.response_tokens, spent.tool_statuses) == ("response_budget", code_turn, [None])
    assert stats.finish_reasons == {"response_budget": 1}

    # Less than the code turn: the turn is asked for what is left and cut there.
    [cut], _ = rollout(bundle, greedy.model_copy(update={"max_response_tokens": 10}), [item()])
    assert (cut.finish_reason, cut.response_tokens, sum(cut.loss_mask)) == ("response_budget", 10, 10)

    # Enough for both turns: the budget changes nothing.
    [whole], _ = rollout(bundle, greedy.model_copy(update={"max_response_tokens": code_turn + answer_turn}), [item()])
    assert whole.finish_reason == "answered" and whole.token_ids == free.token_ids


def test_a_turn_cut_at_the_end_of_the_context_ends_with_context_overflow(tool_user) -> None:
    bundle, _ = tool_user
    [free], _ = rollout(bundle, RolloutConfig(temperature=0, max_new_tokens=48), [item()])
    context = free.prompt_length + 12
    [cut], _ = rollout(bundle, RolloutConfig(temperature=0, max_new_tokens=48, max_context_tokens=context), [item()])
    assert cut.finish_reason == "context_overflow"
    assert len(cut.token_ids) == context  # the turn filled the room and was closed like any other


# -- scheduling ------------------------------------------------------------------------------------
# The code sleeps for the red channel of the image's corner / 40 s: 6.4 s on red, nothing on black.
SLEEP_CODE = "import time\ntime.sleep(input_image.getpixel((0, 0))[0] / 40)\nprint(input_image.size)\n"
SLEEP_TURN = f"<think>look</think><code>\n```python\n{SLEEP_CODE}```\n</code>"


@pytest.fixture(scope="module")
def sleeper(tiny_model_dir):
    """The tiny model taught to write SLEEP_CODE on red and on black images, then to answer."""
    bundle = load_model_bundle(tiny_model_dir, device="cpu")
    observation = real_observation(SLEEP_CODE, "black")
    turns = [(SLEEP_TURN, observation), (TURN_2.removesuffix("<|im_end|>"), None)]
    conversations = [(to_model_messages(MESSAGES), [image(colour)], turns) for colour in ("red", "black")]
    assert imprint_conversations(bundle, conversations) < 0.05
    return bundle


def slow_and_fast(bundle, lockstep: bool) -> tuple[Trajectory, list[Trajectory]]:
    """One trajectory whose snippet sleeps 6.4 s beside three whose snippets return at once, on one
    sandbox template (so a pool bounded by its templates would run their code one at a time)."""
    config = RolloutConfig(temperature=0, max_new_tokens=96, lockstep=lockstep)
    items = [item("slow", "red")] + [item(f"fast{i}", "black") for i in range(3)]
    [slow, *fast], _ = rollout(bundle, config, items, workers=1)
    assert all(t.finish_reason == "answered" for t in [slow, *fast]), [(t.finish_reason, t.error) for t in fast]
    assert slow.turns[0].exec_wall_s > 6
    return slow, fast


def test_a_slow_snippet_stalls_only_its_own_trajectory(sleeper) -> None:
    slow, fast = slow_and_fast(sleeper, lockstep=False)
    # The fast ones took their second turn while the slow snippet slept, and were done long before it.
    assert max(t.wall_s for t in fast) < slow.wall_s - 3


def test_in_lockstep_every_trajectory_waits_for_the_slowest_snippet(sleeper) -> None:
    slow, fast = slow_and_fast(sleeper, lockstep=True)
    assert min(t.wall_s for t in fast) > slow.turns[0].exec_wall_s
