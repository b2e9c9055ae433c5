"""The row schemas read the released spellings and reject what they cannot mean."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from codedance_core.data.schemas import EvalItem, ImageRef, RLRow, SFTRow, image_marker_count, row_messages


def error_types(exc: ValidationError) -> set[str]:
    return {item["type"] for item in exc.errors()}


def test_rl_row_reads_the_prompt_spelling(make_rl_row, png_bytes):
    row = RLRow.model_validate(make_rl_row(png_bytes))
    assert row.prompt[1].role == "user"
    assert row.answer == "4"
    assert row.images == [ImageRef(bytes=png_bytes, path="img.png")]
    assert row.extra_info.need_tools_kwargs is True


def test_rl_row_reads_the_messages_spelling(make_rl_row, png_bytes):
    raw = make_rl_row(png_bytes)
    raw["messages"] = raw.pop("prompt")
    row = RLRow.model_validate(raw)
    assert [m.role for m in row.prompt] == ["system", "user"]
    assert image_marker_count(row_messages(row)) == 1


@pytest.mark.parametrize("image", ["raw_bytes", "path", "struct_list"])
def test_images_may_be_bytes_paths_or_structs(make_rl_row, png_bytes, image):
    value = {"raw_bytes": png_bytes, "path": "pics/a.png", "struct_list": {"bytes": None, "path": "a.png"}}[image]
    raw = make_rl_row(png_bytes)
    raw["images"] = value if image == "struct_list" else [value]
    refs = RLRow.model_validate(raw).images
    assert len(refs) == 1
    assert refs[0].bytes == (png_bytes if image == "raw_bytes" else None)


def test_nested_columns_written_as_json_text_are_decoded(make_rl_row, png_bytes):
    raw = make_rl_row(png_bytes)
    raw["extra_info"] = json.dumps({"index": 7, "tools_kwargs": json.dumps({"execute_python_code": {}})})
    row = RLRow.model_validate(raw)
    assert row.extra_info.index == 7
    assert row.extra_info.tools_kwargs == {"execute_python_code": {}}


def test_null_counts_as_missing_and_types_are_strict(make_rl_row, png_bytes):
    with pytest.raises(ValidationError) as missing:
        RLRow.model_validate(make_rl_row(png_bytes, answer=None))
    assert error_types(missing.value) == {"missing"}
    with pytest.raises(ValidationError) as wrong:
        RLRow.model_validate(make_rl_row(png_bytes, extra_info={"index": "7"}))
    assert error_types(wrong.value) == {"int_type"}


def test_semantic_problems_have_their_own_error_types(make_rl_row, png_bytes):
    cases = {
        "empty_answer": make_rl_row(png_bytes, answer="  "),
        "no_image": make_rl_row(png_bytes, images=[]),
        "bad_messages": make_rl_row(png_bytes, prompt=[{"role": "assistant", "content": "hi"}]),
        "missing_field": make_rl_row({"bytes": None, "path": None}),
    }
    for expected, raw in cases.items():
        with pytest.raises(ValidationError) as caught:
            RLRow.model_validate(raw)
        assert error_types(caught.value) == {expected}, expected


def test_sft_row_needs_an_assistant_turn(png_bytes):
    messages = [{"role": "user", "content": "<image>Q"}, {"role": "assistant", "content": "<answer>3</answer>"}]
    assert SFTRow.model_validate({"messages": messages, "images": [png_bytes]}).messages[1].role == "assistant"
    with pytest.raises(ValidationError):
        SFTRow.model_validate({"messages": messages[:1], "images": [png_bytes]})


def test_eval_item_accepts_image_singular_and_json_metadata(png_bytes):
    item = EvalItem.model_validate({
        "question": "What colour is the cup?", "answer": "B", "options": ["red", "blue"],
        "image": {"bytes": png_bytes, "path": None}, "data_source": "vstar", "metadata": '{"category": "attr"}',
    })
    assert item.images[0].bytes == png_bytes
    assert item.metadata == {"category": "attr"}
    assert row_messages(item)[0].content == "What colour is the cup?"
