"""Training changes what the tiny model does, not only its weights.

The other trainer tests check mechanics (masks, resume, checkpoints). These check the outcome a
user of the `tiny` profile relies on, with every real component in the loop: the procedural suite,
verified synthesis in the isolated sandbox, the SFT trainer, the evaluation harness's rollouts,
GRPO with the BAT reward. They train for a minute or more each, hence `slow`.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from codedance_core.agent.items import item_from_rl_row
from codedance_core.agent.trajectory import RolloutItem
from codedance_core.chat_format.messages import to_model_messages
from codedance_core.config.agent import RolloutOverrides, RolloutSettings
from codedance_core.config.data import SuiteSpec
from codedance_core.config.evaluation import EvalConfig
from codedance_core.config.model import PIXELS_PER_CELL, TinyModelConfig
from codedance_core.config.rewards import RewardConfig
from codedance_core.config.sandbox import SandboxConfig
from codedance_core.config.synthesis import SynthesisConfig
from codedance_core.config.train import GRPOConfig, SFTConfig
from codedance_core.data.schemas import RL_ARROW_SCHEMA
from codedance_core.data.suite import generate_rows
from codedance_core.evaluation.entry import run_evaluation
from codedance_core.models import build_tiny_model, load_model_bundle
from codedance_core.models.images import pixel_bounds
from codedance_core.models.imprint import imprint_conversation, imprint_conversations
from codedance_core.models.tiny import suite_corpus
from codedance_core.sandbox import SandboxPool
from codedance_core.synthesis.pipeline import synthesize_rows
from codedance_core.train.grpo import train_grpo
from codedance_core.train.model_setup import save_model_dir
from codedance_core.train.sft import train_sft

# The tiny profile's shape (configs/tiny.yaml): 64-cell images keep trajectories short.
MAX_PIXELS = 64 * PIXELS_PER_CELL
TINY = TinyModelConfig(vocab_size=2000, hidden_size=128, intermediate_size=256, max_pixels=MAX_PIXELS)


def suite_rows(n: int, families: list[str], seed: int) -> list[dict]:
    return list(generate_rows(SuiteSpec(n=n, families=families, seed=seed, difficulty="easy")))


def write_rows(path: Path, rows: list[dict]) -> str:
    pq.write_table(pa.Table.from_pylist(rows, schema=RL_ARROW_SCHEMA), path)
    return str(path)


def synthesise(rows: list[dict]) -> list[dict]:
    """Verified trajectories of `rows` (the lifecycle's synthesis stage, in-process)."""
    config = SynthesisConfig(max_pixels=MAX_PIXELS, failure_rate=0.0)

    async def run() -> list[dict]:
        async with SandboxPool(SandboxConfig()) as pool:
            outcomes = await synthesize_rows(rows, pool, config)
        return [outcome.row for outcome in outcomes if outcome.row is not None]

    return asyncio.run(run())


def evaluate(model_dir: Path, data_path: str, out: Path) -> dict:
    """Greedy evaluation stats (the lifecycle's evaluation stage, in-process)."""
    config = EvalConfig(
        benchmark="suite", data_path=data_path, model_dir=str(model_dir), save_path=str(out), device="cpu",
        rollout=RolloutSettings(max_turns=4, max_new_tokens=512, temperature=0.0), use_judge=False, write_viewer=False,
        min_pixels=4 * PIXELS_PER_CELL, max_pixels=MAX_PIXELS,
    )
    return run_evaluation(config, show_progress=False).stats


def imprinted_model_dir(
    tiny_model_dir: Path, out: Path, rows: list[dict], turns_of: Callable[[int, dict, RolloutItem], list[list]],
    steps: int,
) -> Path:
    """The tiny model imprinted (a small SFT, one batch) on each row's prompt followed by every list
    of (assistant text, observation) turns `turns_of` gives for it, saved to `out`."""
    bundle = load_model_bundle(tiny_model_dir, device="cpu")
    low, high = pixel_bounds(bundle.image_processor)
    conversations = []
    for index, row in enumerate(rows):
        item = item_from_rl_row(row, index, low, high)
        conversations += [(to_model_messages(item.messages), item.images, turns) for turns in turns_of(index, row, item)]
    imprint_conversations(bundle, conversations, steps=steps, lr=1e-2)
    save_model_dir(bundle.model, bundle, out)
    return out


@pytest.fixture(scope="module")
def learning_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("learning_model")
    return build_tiny_model(out, suite_corpus(rows=60, seed=0), TINY)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_sft_on_synthesised_trajectories_lowers_the_loss_and_teaches_the_turn_format(
    learning_model_dir: Path, tmp_path: Path
) -> None:
    """What a minute of SFT does to the tiny model, measured on the items it was trained on.

    It learns the turn format and the `direct` answers; it does NOT yet write code turns that run:
    greedy decoding drifts off the trajectory within the first sentence of a counting turn's
    `<think>` (measured: 0 tool calls per trajectory after 144 steps, loss ~0.3). The assertions
    below are the parts that hold; the code-turn one is left to a longer run (see the report).
    """
    rows = suite_rows(48, ["count", "direct"], seed=5)
    trajectories = synthesise(rows)
    assert len(trajectories) >= 40

    config = SFTConfig(learning_rate=1e-2, epochs=12, batch_size=4, checkpoint_every=1000, seed=0)
    result = train_sft(config, trajectories, learning_model_dir, tmp_path / "sft", progress=False)

    losses = [row["loss"] for row in result.history]
    assert all(math.isfinite(loss) for loss in losses)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.1 * first, (first, last)

    data_path = write_rows(tmp_path / "train.parquet", rows)
    untrained = evaluate(learning_model_dir, data_path, tmp_path / "before")
    trained = evaluate(result.model_dir, data_path, tmp_path / "after")
    keys = ("accuracy", "tool_calls_per_trajectory", "code_success_rate", "turns", "by_data_source")
    summary = {name: {key: stats.get(key) for key in keys} for name, stats in (("untrained", untrained), ("trained", trained))}
    # No trained trajectory breaks the loop (the untrained model's noise overflows it on some items).
    # A free-form answer where a rule wanted an integer or a word is a judge_error here (no judge is
    # served): a wrong answer, not a broken loop.
    assert set(trained["statuses"]) <= {"scored", "judge_error"}, summary
    assert untrained["accuracy"] == 0.0, summary
    assert trained["by_data_source"]["suite_direct"]["accuracy"] >= 0.3, summary
    assert trained["accuracy"] >= 0.15, summary


ANSWER = "<think>The question says it.</think><answer>{gold}</answer>"


def direct_rows(n: int, seed: int) -> list[dict]:
    """Easy `direct` items a rule scores: yes/no, a colour read off a note, a sum (not letters)."""
    rows = suite_rows(4 * n, ["direct"], seed)
    return [row for row in rows if len(row["reward_model"]["ground_truth"]) > 1][:n]


@pytest.fixture(scope="module")
def lightly_answering_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with two direct answers lightly imprinted (3 steps): sampled at temperature 1
    it answers them right about one time in six, so GRPO's groups have different rewards."""
    bundle = load_model_bundle(tiny_model_dir, device="cpu")
    low, high = pixel_bounds(bundle.image_processor)
    for index, row in enumerate(direct_rows(2, seed=11)):
        item = item_from_rl_row(row, index, low, high)
        turns = [(ANSWER.format(gold=item.gold), None)]
        imprint_conversation(bundle, to_model_messages(item.messages), item.images, turns, steps=3, lr=1e-2)
    out = tmp_path_factory.mktemp("lightly_answering")
    save_model_dir(bundle.model, bundle, out)
    return out


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_grpo_raises_the_mean_reward_where_reward_is_reachable(lightly_answering_model_dir: Path, tmp_path: Path) -> None:
    # The reachable task: the two imprinted items, whose right answers the policy already samples.
    config = GRPOConfig(
        prompts_per_step=2, samples_per_prompt=8, max_steps=16, learning_rate=5e-3, rollout=RolloutOverrides(max_turns=1),
        checkpoint_every=100, micro_batch_size=8, seed=3,
    )
    seen: list[dict] = []
    train_grpo(
        config, direct_rows(2, seed=11), lightly_answering_model_dir, tmp_path, rollout=RolloutSettings(max_new_tokens=24),
        sandbox=SandboxConfig(workers=1), metrics_callback=lambda metrics, step: seen.append(metrics), progress=False,
    )
    rewards = [metrics["reward_mean"] for metrics in seen]
    accuracy = [metrics["accuracy"] for metrics in seen]
    # Measured: reward 0.05 -> 0.60 and accuracy 0.23 -> 0.80 (first vs last four steps).
    assert sum(rewards[-4:]) / 4 > sum(rewards[:4]) / 4 + 0.3, rewards
    assert sum(accuracy[-4:]) / 4 > sum(accuracy[:4]) / 4 + 0.3, accuracy


CALL = "<think>Let me check.</think><code>\n```python\nprint({value})\n```\n</code>"
AFTER_CALL = "<think>Checked.</think><answer>{value}</answer>"


def digit_rows(family: str, seed: int = 11) -> list[dict]:
    return [row for row in suite_rows(4, [family], seed) if row["reward_model"]["ground_truth"].isdigit()][:1]


@pytest.fixture(scope="module")
def two_minded_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model taught two ways to answer one direct item and one count item: straight away,
    or after a code call that prints the answer. On the direct item both ways are right (the call
    is needless); on the count item only the call is (the straight answer is one off). Taught
    jointly, it samples either way (measured: calls on 6 of 8 direct and 3 of 8 count samples)."""
    def turns_of(index: int, row: dict, item: RolloutItem) -> list[list]:
        gold = item.gold
        straight = gold if row["ability"] == "direct" else str(int(gold) + 1)
        observation = f"Execution succeeded.\nstdout:\n{gold}"  # the tool turn format_observation writes
        return [[(CALL.format(value=gold), observation), (AFTER_CALL.format(value=gold), None)],
                [(ANSWER.format(gold=straight), None)]]

    rows = digit_rows("direct") + digit_rows("count")
    return imprinted_model_dir(tiny_model_dir, tmp_path_factory.mktemp("two_minded"), rows, turns_of, steps=40)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_bat_cuts_needless_calls_on_easy_items_and_keeps_them_on_hard_ones(two_minded_model_dir: Path, tmp_path: Path) -> None:
    config = GRPOConfig(
        prompts_per_step=2, samples_per_prompt=8, max_steps=12, learning_rate=1e-3, rollout=RolloutOverrides(max_turns=3),
        checkpoint_every=100, micro_batch_size=8, seed=3,
    )
    rows = digit_rows("direct") + digit_rows("count")

    def run(use_bat: bool) -> list[dict]:
        seen: list[dict] = []
        train_grpo(
            config, rows, two_minded_model_dir, tmp_path / f"bat-{use_bat}", rollout=RolloutSettings(max_new_tokens=40),
            rewards=RewardConfig(use_bat=use_bat, use_turn_level=use_bat), sandbox=SandboxConfig(workers=1),
            metrics_callback=lambda metrics, step: seen.append(metrics), progress=False,
        )
        return seen

    def late(history: list[dict], key: str) -> float:
        return sum(metrics[key] for metrics in history[-4:]) / 4

    with_bat, without_bat = run(True), run(False)
    summary = {
        name: {key: round(late(history, key), 2) for key in ("tool_rate/suite_direct", "tool_rate/suite_count",
                                                              "accuracy/suite_direct", "accuracy/suite_count")}
        for name, history in (("bat", with_bat), ("no_bat", without_bat))
    }
    assert with_bat[0]["tool_rate/suite_direct"] >= 0.5, "the policy starts out calling on the direct item"
    # Measured (last four steps): with BAT, calls on the direct item 0.75 -> 0.09 while accuracy stays
    # 0.91 and calls on the count item rise to 1.00; without BAT, calls on the direct item go to 0.97.
    assert summary["bat"]["tool_rate/suite_direct"] <= 0.25, summary
    assert summary["no_bat"]["tool_rate/suite_direct"] >= 0.5, summary
    assert summary["bat"]["accuracy/suite_direct"] >= 0.75, summary
    assert summary["bat"]["tool_rate/suite_count"] >= 0.5 and summary["bat"]["accuracy/suite_count"] >= 0.5, summary


# A family whose answer a short generic script reads off the image: is the picture red? The policy
# knows two scripts, one reading the red channel (right on every item) and one the blue channel
# (wrong on every item), and leans to a different one for each of the question's two phrasings.
TINT_QUESTIONS = ("Is this picture red?", "Is the colour of this picture red?")
RED_SCRIPT = 'print("yes" if input_image.convert("RGB").getpixel((8, 8))[0] > 128 else "no")'
BLUE_SCRIPT = 'print("yes" if input_image.convert("RGB").getpixel((8, 8))[2] > 128 else "no")'
TINT_CALL = "<think>I read the {channel} channel.</think><code>\n```python\n{script}\n```\n</code>"


def tint_rows(n: int, seed: int) -> list[dict]:
    """`n` rows of the tint family, phrasings alternating, red and blue pictures in random order."""
    import io
    import random

    from PIL import Image

    template = suite_rows(1, ["direct"], seed=0)[0]
    rng = random.Random(seed)
    rows = []
    for index in range(n):
        red = rng.random() < 0.5
        strong, weak = rng.randint(190, 250), rng.randint(10, 60)
        colour = (strong, weak, rng.randint(10, 60)) if red else (weak, rng.randint(10, 60), strong)
        buffer = io.BytesIO()
        Image.new("RGB", (112, 112), colour).save(buffer, format="PNG")
        question = f"{TINT_QUESTIONS[index % 2]} Answer with yes or no."
        gold = "yes" if red else "no"
        # The question last, so the phrasing sits right before the reply that depends on it.
        instructions = template["prompt"][1]["content"].replace(template["extra_info"]["question"] + "\n\n", "")
        user = f"{instructions}\n\n{question}"
        rows.append({
            **template, "data_source": "tint", "prompt": [template["prompt"][0], {"role": "user", "content": user}],
            "images": [{"bytes": buffer.getvalue(), "path": None}], "reward_model": {"style": "rule", "ground_truth": gold},
            "extra_info": {**template["extra_info"], "index": index, "answer": gold, "question": question,
                           "family": "tint", "generator": "{}"},
        })
    return rows


@pytest.fixture(scope="module")
def tint_tool_sft_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model tool-SFT'd on tint items: per phrasing, two conversations of its favoured
    script and one of the other, each run and answered with what it printed. Greedy, it takes the
    red script for the first phrasing and the blue one for the second: about half the items right."""
    def turns_of(index: int, row: dict, item: RolloutItem) -> list[list]:
        red_printed = item.gold
        blue_printed = "no" if item.gold == "yes" else "yes"  # the pictures are red or blue, never both
        ways = (("red", RED_SCRIPT, red_printed), ("blue", BLUE_SCRIPT, blue_printed))
        favoured, other = ways[:: 1 if index % 2 == 0 else -1]
        return [[(TINT_CALL.format(channel=channel, script=script), f"Execution succeeded.\nstdout:\n{printed}"),
                 (AFTER_CALL.format(value=printed), None)] for channel, script, printed in (favoured, favoured, other)]

    out = tmp_path_factory.mktemp("tint_tool_sft")
    return imprinted_model_dir(tiny_model_dir, out, tint_rows(12, seed=1), turns_of, steps=150)


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_grpo_raises_heldout_accuracy_on_a_family_the_policy_half_solves(tint_tool_sft_dir: Path, tmp_path: Path) -> None:
    # Train and held-out items share the family, not a picture: what RL teaches must carry over.
    train, heldout = tint_rows(16, seed=2), tint_rows(16, seed=3)
    config = GRPOConfig(
        prompts_per_step=4, samples_per_prompt=8, max_steps=12, learning_rate=1e-3, rollout=RolloutOverrides(max_turns=3),
        checkpoint_every=100, micro_batch_size=8, seed=3, eval_every_steps=4, eval_items=16,
    )
    seen: dict[int, dict] = {}
    train_grpo(
        config, train, tint_tool_sft_dir, tmp_path, rollout=RolloutSettings(max_new_tokens=80),
        sandbox=SandboxConfig(workers=2), eval_data=heldout,
        metrics_callback=lambda metrics, step: seen.setdefault(step, {}).update(metrics), progress=False,
    )
    curve = {step: round(metrics["heldout/accuracy"], 2) for step, metrics in seen.items() if "heldout/accuracy" in metrics}
    assert sorted(curve) == [0, 4, 8, 12], curve
    # Measured (seeds 3 and 5): held-out accuracy 0.50 at the start, 1.00 from step 4 on, while the
    # training rollouts' accuracy goes from 0.22-0.34 at step 1 to 0.84-0.97 at step 2.
    assert 0.25 <= curve[0] <= 0.75, f"the policy should start near half right: {curve}"
    assert curve[12] >= curve[0] + 0.3, curve
