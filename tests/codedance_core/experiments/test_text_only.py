"""Text-only SFT rows: same prompt as the tool trajectory, one code-free answer, the question's image only."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from codedance_core.data.io import write_rows
from codedance_core.data.schemas import SFT_ARROW_SCHEMA
from codedance_core.experiments.text_only import TEXT_ONLY_THINK, text_only_row, write_text_only

SYSTEM = {"role": "system", "content": "You may write Python."}
USER = {"role": "user", "content": "<image>\nHow many circles are there?"}
IMAGE = {"bytes": b"question-image", "path": "q.png"}
OBSERVATION_IMAGE = {"bytes": b"marked-image", "path": "obs.png"}


def tool_trajectory() -> dict:
    return {
        "messages": [
            SYSTEM,
            USER,
            {"role": "assistant", "content": "<think>\nI count in code.\n</think>\n<code>\n```python\nprint(3)\n```\n</code>"},
            {"role": "tool", "content": "Execution succeeded.\nstdout:\n3\n1 image: <image>"},
            {"role": "assistant", "content": "<think>\nThe code found 3.\n</think>\n<answer>3</answer>"},
        ],
        "images": [IMAGE, OBSERVATION_IMAGE],
    }


def test_a_tool_trajectory_becomes_one_code_free_answer_with_the_question_image() -> None:
    row = text_only_row(tool_trajectory())
    assert row["messages"][:2] == [SYSTEM, USER]
    assert row["messages"][2] == {
        "role": "assistant", "content": f"<think>\n{TEXT_ONLY_THINK}\n</think>\n<answer>3</answer>",
    }
    assert len(row["messages"]) == 3
    assert row["images"] == [IMAGE]


def test_a_direct_answer_is_kept_as_it_is() -> None:
    reply = {"role": "assistant", "content": "<think>\n11 * 6 - 5 = 61.\n</think>\n<answer>61</answer>"}
    row = {"messages": [SYSTEM, USER, reply], "images": [IMAGE]}
    assert text_only_row(row) == row


def test_a_trajectory_without_a_final_answer_is_an_error() -> None:
    row = tool_trajectory()
    row["messages"][-1] = {"role": "assistant", "content": "<think>\nno answer\n</think>"}
    with pytest.raises(ValueError, match="no final <answer>"):
        text_only_row(row)


def test_write_text_only_converts_a_parquet_file(tmp_path: Path) -> None:
    source = tmp_path / "tool.parquet"
    write_rows(pa.Table.from_pylist([tool_trajectory(), tool_trajectory()], schema=SFT_ARROW_SCHEMA), str(source))
    ref = write_text_only(str(source), str(tmp_path / "text.parquet"))
    assert ref.rows == 2
    frame = pl.read_parquet(tmp_path / "text.parquet")
    assert [len(m) for m in frame["messages"].to_list()] == [3, 3]
    assert all("<code>" not in m[-1]["content"] for m in frame["messages"].to_list())
    assert [len(images) for images in frame["images"].to_list()] == [1, 1]
