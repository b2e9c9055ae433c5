"""SFT rows built the way the synthesis stage writes them: system, user with the image, an assistant
code turn, a tool observation showing a produced image, and an assistant answer."""

from __future__ import annotations

import random

from PIL import Image

from codedance_core.data.images import encode_png

SYSTEM = "You are a helpful assistant. Solve the problem step by step; you may write Python."


def square_image(size: int, color: tuple[int, int, int]) -> bytes:
    return encode_png(Image.new("RGB", (size, size), color))


def trajectory_row(index: int) -> dict:
    """A two-turn trajectory whose answer follows from the question (so a model can learn it)."""
    rng = random.Random(index)
    count = rng.randint(1, 9)
    crop = rng.randint(20, 60)
    return {
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"<image>\nHow many dots are there? Hint: {count}."},
            {
                "role": "assistant",
                "content": f"<think>Let me zoom in.</think>\n<code>\n```python\n"
                f"img = input_image.crop((0, 0, {crop}, {crop}))\nimg.show()\n```\n</code>",
            },
            {
                "role": "tool",
                "content": "<tool_response>\nExecution succeeded.\n1 image: <image>\n</tool_response>",
            },
            {"role": "assistant", "content": f"<think>I count {count}.</think>\n<answer>{count}</answer>"},
        ],
        "images": [
            {"bytes": square_image(64, (index % 255, 40, 90)), "path": None},
            {"bytes": square_image(56, (200, index % 255, 10)), "path": None},
        ],
    }
