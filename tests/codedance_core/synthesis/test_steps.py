"""Narration and the writer's view of the resized image."""

from __future__ import annotations

import pytest

from codedance_core.agent.parsing import parse_turn
from codedance_core.sandbox import ExecResult
from codedance_core.synthesis.steps import (
    AnswerStep,
    ItemView,
    ToolStep,
    UnreadableOutput,
    answer_turn_text,
    read_int,
    tool_turn_text,
)


def test_turn_texts_parse_back_with_the_agent_parser():
    tool = parse_turn(tool_turn_text(ToolStep("measure", "print(1)")))
    assert (tool.code, tool.code_form, tool.answer) == ("print(1)\n", "tagged", None)
    assert parse_turn(answer_turn_text(AnswerStep("so", "7"))).answer == "7"


def test_view_maps_original_boxes_into_the_resized_image():
    view = ItemView(question="q", params={}, options=[], size=(448, 448), scale_x=448 / 672, scale_y=448 / 672)
    assert view.box([0, 0, 671, 671]) == (0, 0, 447, 447)
    assert view.box([300, 300, 329, 329], pad=2) == (198, 198, 221, 221)


def test_read_int_takes_the_last_named_line_and_refuses_missing_ones():
    result = ExecResult(status="ok", stdout="count: 2\ncount: 5\n")
    assert read_int(result, "count") == 5
    with pytest.raises(UnreadableOutput):
        read_int(result, "total")
