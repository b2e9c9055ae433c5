"""Small parquet files in the layouts of the released CodeDance sets, in the spellings found in the wild.

RL rows (docs/method.md §5): the conversation as `prompt` or `messages`; images as `{bytes, path}`
structs or raw bytes; the sandbox's image in `extra_info.tools_kwargs` as a struct, raw bytes or a
path. SFT rows: `messages` and `images` as a list of raw bytes, no `data_source`.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from codedance_core.data.images import encode_png
from tests.codedance_core.train.rows import trajectory_row

SYSTEM = (
    "You are a helpful assistant.\n\nSolve the following problem step by step. You may write python code."
)
Spelling = Literal["prompt", "messages"]
ImageForm = Literal["struct", "bytes"]
ToolImage = Literal["struct", "bytes", "path"]


def dots_png(count: int, seed: int) -> bytes:
    """A 56x56 image with `count` dark squares on white."""
    rng = random.Random(seed)
    image = Image.new("RGB", (56, 56), (255, 255, 255))
    for index in range(count):
        x, y = 4 + (index % 4) * 13, 4 + (index // 4) * 13 + rng.randint(0, 2)
        image.paste((20, 20, 20), (x, y, x + 8, y + 8))
    return encode_png(image)


def released_rl_row(
    index: int,
    spelling: Spelling = "prompt",
    images: ImageForm = "struct",
    tool_image: ToolImage = "struct",
    data_source: str = "vstar",
) -> dict[str, Any]:
    """One RL row as in the released CodeDance-RL parquet."""
    count = 1 + index % 5
    png = dots_png(count, index)
    question = "How many dark squares are in the image?"
    image: Any = {"bytes": png, "path": f"images/{index}.png"} if images == "struct" else png
    tool: Any = {
        "struct": {"bytes": png, "path": f"images/{index}.png"},
        "bytes": png,
        "path": f"images/{index}.png",
    }[tool_image]
    return {
        "data_source": data_source,
        spelling: [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"<image>{question}"}],
        "images": [image],
        "ability": "count",
        "reward_model": {"style": "rule", "ground_truth": str(count)},
        "extra_info": {
            "split": "train",
            "index": index,
            "answer": str(count),
            "question": question,
            "need_tools_kwargs": True,
            "tools_kwargs": {"execute_python_code": {"create_kwargs": {"image": tool}}},
        },
    }


def write_released_rl(path: Path, rows: int, start: int = 0, **layout: Any) -> Path:
    """A parquet of `rows` released-layout RL rows (indices from `start`) in one layout."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist([released_rl_row(start + i, **layout) for i in range(rows)]), path)
    return path


def released_sft_row(index: int) -> dict[str, Any]:
    """One SFT row as in the released CodeDance-SFT parquet: images as raw bytes, no data_source."""
    row = trajectory_row(index)
    return {"messages": row["messages"], "images": [image["bytes"] for image in row["images"]]}


def write_released_sft(path: Path, rows: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist([released_sft_row(i) for i in range(rows)]), path)
    return path
