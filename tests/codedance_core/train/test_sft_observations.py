"""One observation text everywhere: a released SFT row, an RL rollout and an evaluation rollout
show the same code output as the same string."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Sequence

import pytest
from PIL import Image

from codedance_core.agent.rollout import Rollout
from codedance_core.agent.trajectory import RolloutItem
from codedance_core.config import load_profile
from codedance_core.data.images import encode_png
from codedance_core.data.schemas import SFTRow
from codedance_core.engines.base import Completion, GenerationEngine, GenerationRequest, SamplingParams
from codedance_core.sandbox import SandboxConfig, SandboxPool
from codedance_core.train.sft_data import Encoder, load_training_examples
from codedance_core.train.sft_observations import KEEP_WARNING, ObservationRenderer

CODE = "w, h = input_image.size\nprint(w * h)\nprint('done')"
CODE_TURN = f"<think>measure</think>\n<code>\n```python\n{CODE}\n```\n</code>"
ANSWER_TURN = "<think>done</think>\n<answer>50176</answer>"
REFLECT = "\nThink with the tool's result, then answer. Determine if it adequately answers the question."


def picture() -> Image.Image:
    return Image.new("RGB", (224, 224), "red")


def released_row(tool_text: str, code_turn: str = CODE_TURN, images: int = 0) -> dict:
    """A row in the released SFT layout: the original's observation text in a tool message."""
    return {
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "<image>\nHow many pixels?"},
            {"role": "assistant", "content": code_turn},
            {"role": "tool", "content": tool_text},
            {"role": "assistant", "content": ANSWER_TURN},
        ],
        "images": [{"bytes": encode_png(picture()), "path": None}]
        + [{"bytes": encode_png(Image.new("RGB", (56, 56), "blue")), "path": None}] * images,
    }


class ScriptedEngine(GenerationEngine):
    """A policy that writes the code turn, then the answer (the model is not what this test is about)."""

    def generate(self, requests: Sequence[GenerationRequest], params: SamplingParams) -> list[Completion]:
        turns = [sum(m["role"] == "assistant" for m in request.messages) for request in requests]
        return [Completion(text=CODE_TURN if turn == 0 else ANSWER_TURN) for turn in turns]


def rollout_observation(stage: str) -> str:
    """The tool message the rollout loop writes for CODE with `stage`'s effective settings."""
    profile = load_profile("tiny")
    config = profile.rollout_for(stage).for_stage(samples_per_prompt=1, seed=0)
    messages = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "<image>\nHow many pixels?"},
    ]

    async def go():
        async with SandboxPool(SandboxConfig(workers=1)) as pool:
            return await Rollout(ScriptedEngine(), pool, config).run(
                [RolloutItem("a", messages, [picture()])]
            )

    [trajectory] = asyncio.run(go())
    [tool] = [m["content"] for m in trajectory.messages if m["role"] == "tool"]
    return tool


def sft_observation(row: dict, mode: str = "reformat") -> str:
    renderer = ObservationRenderer(mode)  # type: ignore[arg-type]
    try:
        rendered = renderer.render(SFTRow.model_validate(row), lambda ref: ref.bytes)
    finally:
        renderer.close()
    [tool] = [m.content for m in rendered.messages if m.role == "tool"]
    return tool


def test_sft_rl_and_evaluation_show_the_same_code_output_identically():
    row = released_row(f"Code execution successful, output:\n50176\ndone\n{REFLECT}")
    rl, evaluation = rollout_observation("rl"), rollout_observation("evaluation")
    assert sft_observation(row) == rl == evaluation
    assert "50176" in rl and "Code execution successful" not in rl


def test_replay_runs_the_rows_code_and_shows_its_real_images():
    crop = "<code>\n```python\ninput_image.crop((0, 0, 80, 60)).show()\nprint('cropped')\n```\n</code>"
    row = released_row(
        "<tool_response>\nOutput:\ncropped\nOutput image:\n<image>\n</tool_response>", crop, images=1
    )
    renderer = ObservationRenderer("replay")
    try:
        rendered = renderer.render(SFTRow.model_validate(row), lambda ref: ref.bytes)
    finally:
        renderer.close()
    tool = next(m.content for m in rendered.messages if m.role == "tool")
    assert tool.startswith("Execution succeeded.") and "cropped" in tool and tool.count("<image>") == 1
    with Image.open(io.BytesIO(rendered.images[1].bytes)) as shown:
        assert shown.size == (80, 60)  # the replay's own crop, not the row's stand-in picture
    assert renderer.counts.replayed == 1 and renderer.counts.replay_fallback_rows == 0


def test_replay_falls_back_to_reformat_where_the_run_ends_otherwise():
    row = released_row(
        "--- Execution Error (Error) ---\nNameError: name 'x' is not defined"
    )  # CODE runs fine
    renderer = ObservationRenderer("replay")
    try:
        rendered = renderer.render(SFTRow.model_validate(row), lambda ref: ref.bytes)
    finally:
        renderer.close()
    tool = next(m.content for m in rendered.messages if m.role == "tool")
    assert tool.startswith("Execution failed: NameError") and renderer.counts.replay_fallback_rows == 1


def test_keep_trains_on_the_originals_text_and_warns(caplog):
    text = f"Code execution successful, output:\n50176\n{REFLECT}"
    with caplog.at_level(logging.WARNING):
        assert sft_observation(released_row(text), mode="keep") == text
    assert KEEP_WARNING in caplog.text


@pytest.mark.parametrize("mode", ["reformat", "keep"])
def test_the_mode_and_its_counts_are_in_the_data_stats(tiny_bundle, tmp_path, mode):
    rows = [released_row("<tool_response>\nOutput:\n50176\n</tool_response>")]
    examples, stats = load_training_examples(
        Encoder.from_bundle(tiny_bundle), rows, 4096, tmp_path, observations=mode
    )
    assert len(examples) == 1
    observed = stats.as_dict()["observations"]
    assert observed["mode"] == mode and observed["messages"] == 1
    assert observed["reformatted" if mode == "reformat" else "kept"] == 1
    context = tiny_bundle.tokenizer.decode(examples[0].input_ids, skip_special_tokens=False)
    assert ("Execution succeeded." in context) == (mode == "reformat")
