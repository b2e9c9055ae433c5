"""Registry entries load their files into rollout items; bad rows become counted failures."""

from __future__ import annotations

import gc
import json

import polars as pl
import pytest

from codedance_core.agent.items import item_from_eval_row
from codedance_core.chat_format.prompts import get_prompts, original_prompt
from codedance_core.evaluation.loaders import BenchmarkFormatError
from codedance_core.evaluation.registry import BENCHMARKS, LoadFailure, get_benchmark, load_items

from .conftest import eval_parquet, png_bytes

BOUNDS = (4 * 784, 256 * 784)


def test_every_named_benchmark_is_registered_with_its_expected_layout() -> None:
    for name in (
        "suite",
        "parquet",
        "tsv",
        "vstar",
        "hrbench_4k",
        "hrbench_8k",
        "countbench",
        "pixmo_count",
        "chartqa",
        "mathvista",
        "mathverse",
        "mathvision",
        "wemath",
    ):
        assert BENCHMARKS[name].expects
    assert get_benchmark("countbench").scorer == "count"
    with pytest.raises(ValueError, match="known: suite"):
        get_benchmark("mmmu")


def test_eval_layout_parquet_becomes_items_with_our_prompt(tmp_path) -> None:
    data = eval_parquet(tmp_path / "b.parquet", [("How many?", "3", "red"), ("Colour?", "red", "red")])
    items = load_items(get_benchmark("parquet"), data, *BOUNDS, limit=1)
    [item] = items
    assert item.item_id == "0" and item.gold == "3" and item.data_source == "pixels"
    assert item.messages[0]["content"] == get_prompts().system
    assert item.messages[1]["content"].startswith("<image>\nHow many?")
    assert item.images[0].size == (224, 224)


def rl_row(extra_info: dict, user: str = "<image>\nCount.") -> dict:
    return {
        "data_source": "suite_count",
        "ability": "count",
        "prompt": [{"role": "system", "content": "own system"}, {"role": "user", "content": user}],
        "images": [{"bytes": png_bytes(), "path": None}],
        "reward_model": {"style": "rule", "ground_truth": "4"},
        "extra_info": extra_info,
    }


def test_rl_layout_rows_get_the_original_scripts_prompt_unless_the_rows_own_is_asked_for(tmp_path) -> None:
    path = tmp_path / "suite_test.parquet"
    pl.DataFrame([rl_row({"split": "test", "index": 7, "question": "Count."})]).write_parquet(path)
    for name in ("suite", "parquet"):  # 'parquet' recognises the RL layout by its columns
        [item] = load_items(get_benchmark(name), path, *BOUNDS)
        assert item.item_id == "suite_count:7" and item.gold == "4"
        assert item.messages == original_prompt("Count.", 1)  # system prompt, image, question, instruction
        [own] = load_items(get_benchmark(name), path, *BOUNDS, prompt="row")
        assert own.messages[0]["content"] == "own system" and own.messages[1]["content"] == "<image>\nCount."


def test_without_extra_info_question_the_question_is_the_user_turn_without_its_image(tmp_path) -> None:
    path = tmp_path / "rl.parquet"
    pl.DataFrame([rl_row({"index": 1}, user="<image>\nHow many dots?")]).write_parquet(path)
    [item] = load_items(get_benchmark("parquet"), path, *BOUNDS)
    assert item.question == "How many dots?"
    assert item.messages[1]["content"] == f"<image>\nHow many dots?\n\n{get_prompts().instruction}"


def test_vstar_folder_reads_its_jsonl_and_image_paths(tmp_path) -> None:
    (tmp_path / "direct_attributes").mkdir()
    (tmp_path / "direct_attributes" / "a.png").write_bytes(png_bytes("blue"))
    question = {
        "image": "direct_attributes/a.png",
        "text": "Colour of the cup?\n(A) blue\n(B) red",
        "label": "A",
        "category": "direct_attributes",
        "question_id": 0,
    }
    (tmp_path / "test_questions.jsonl").write_text(json.dumps(question) + "\n")
    [item] = load_items(get_benchmark("vstar"), tmp_path, *BOUNDS)
    assert item.gold == "A" and item.data_source == "vstar" and "(A) blue" in item.question


def test_a_bad_row_is_a_load_failure_not_a_crash(tmp_path) -> None:
    path = tmp_path / "b.jsonl"
    good = {"question": "q", "answer": "1", "image": "ok.png"}
    (tmp_path / "ok.png").write_bytes(png_bytes())
    path.write_text(json.dumps(good) + "\n" + json.dumps({"question": "q", "answer": "1"}) + "\n")
    items = load_items(get_benchmark("countbench"), path, *BOUNDS)
    assert not isinstance(items[0], LoadFailure)
    assert isinstance(items[1], LoadFailure) and "image" in items[1].reason
    assert items[1].item_id == "countbench:1"


def test_a_folder_for_a_file_benchmark_names_the_expected_layout(tmp_path) -> None:
    with pytest.raises(BenchmarkFormatError, match="ChartQA parquet"):
        load_items(get_benchmark("chartqa"), tmp_path, *BOUNDS)


def test_an_items_image_is_not_decoded_before_its_rollout_reads_it(tmp_path) -> None:
    rows = [("How many?", "3", colour) for colour in ("red", "green", "blue")]
    data = eval_parquet(tmp_path / "b.parquet", rows)
    items = load_items(get_benchmark("parquet"), data, *BOUNDS)
    assert [item.images.decoded_count() for item in items] == [0, 0, 0]  # only the file bytes are held

    image = items[1].images[0]  # what the rollout does: decoded now, once, shared while in use
    assert items[1].images[0] is image and items[1].images.decoded_count() == 1
    assert image.getpixel((0, 0)) == (0, 128, 0)
    eager = item_from_eval_row(
        {"id": "1", "question": "How many?", "answer": "3", "images": [{"bytes": png_bytes("green")}],
         "data_source": "pixels"}, 1, *BOUNDS,
    )  # the builder that decodes at once: same prompt, same pixels
    assert items[1].messages == eager.messages
    assert image.tobytes() == eager.images[0].tobytes() and image.size == eager.images[0].size

    del image  # the trajectory is gone: so are the pixels
    gc.collect()
    assert items[1].images.decoded_count() == 0


def test_an_image_that_does_not_decode_is_still_a_load_failure(tmp_path) -> None:
    path = tmp_path / "b.jsonl"
    (tmp_path / "ok.png").write_bytes(png_bytes())
    (tmp_path / "cut.png").write_bytes(png_bytes()[:60])  # a valid header, its pixels cut off
    lines = [{"question": "q", "answer": "1", "image": name} for name in ("ok.png", "cut.png")]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    good, bad = load_items(get_benchmark("countbench"), path, *BOUNDS)
    assert not isinstance(good, LoadFailure)
    assert isinstance(bad, LoadFailure) and "cannot decode image" in bad.reason
