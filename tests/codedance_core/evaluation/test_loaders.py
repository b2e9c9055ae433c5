"""Benchmark files in the layouts found in the wild, built here, read back as EvalItem rows."""

from __future__ import annotations

import base64
import csv
import io
import json
from pathlib import Path

import polars as pl
import pytest
from PIL import Image

from codedance_core.data.schemas import EvalItem
from codedance_core.evaluation.loaders import (
    BenchmarkFormatError,
    ColumnHints,
    EncodedImage,
    ImageResolver,
    LazyImages,
    decode_for_model,
    read_table,
    to_eval_row,
)
from codedance_core.models.images import encode_data_url

from .conftest import png_bytes


def write_tsv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_vlmevalkit_tsv_with_base64_images_options_and_shared_images(tmp_path) -> None:
    image = base64.b64encode(png_bytes("green")).decode()
    big = base64.b64encode(png_bytes("red", (800, 600))).decode() + "=" * 0
    rows = [
        {
            "index": "10",
            "image": big,
            "question": "What colour?",
            "hint": "",
            "A": "red",
            "B": "green",
            "C": "",
            "answer": "A",
            "category": "colour",
        },
        # VLMEvalKit stores a repeated image once: the second row refers to row 10's image by index.
        {
            "index": "11",
            "image": "10",
            "question": "Which shape?",
            "hint": "Look closely",
            "A": "box",
            "B": "ball",
            "C": "cone",
            "answer": "C",
            "category": "shape",
        },
        {
            "index": "12",
            "image": image,
            "question": "Colour?",
            "hint": "",
            "A": "red",
            "B": "green",
            "C": "",
            "answer": "B",
            "category": "colour",
        },
    ]
    path = write_tsv(tmp_path / "bench.tsv", rows)
    images = ImageResolver(tmp_path)
    converted = [to_eval_row(row, i, "bench", images) for i, row in enumerate(read_table(path))]
    first, second, third = (EvalItem.model_validate(row) for row in converted)
    assert first.options == ["red", "green"] and first.answer == "A" and first.id == "10"
    assert first.metadata == {"category": "colour"}
    assert second.images[0].bytes == first.images[0].bytes  # the shared image was resolved
    assert second.question == "Hint: Look closely\nQuestion: Which shape?"
    assert second.options == ["box", "ball", "cone"]
    assert third.images[0].bytes == png_bytes("green")


def test_parquet_with_image_structs_and_list_labels(tmp_path) -> None:
    path = tmp_path / "chartqa.parquet"
    pl.DataFrame(
        {"image": [{"bytes": png_bytes(), "path": None}], "query": ["Value of 2019?"], "label": [["42"]]}
    ).write_parquet(path)
    hints = ColumnHints(question=("query",), answer=("label",))
    [row] = [
        to_eval_row(r, i, "chartqa", ImageResolver(tmp_path), hints) for i, r in enumerate(read_table(path))
    ]
    assert row["question"] == "Value of 2019?" and row["answer"] == "42" and row["id"] == "0"
    assert row["images"] == [{"bytes": png_bytes()}]


def test_jsonl_with_image_paths_relative_to_the_file_and_a_question_template(tmp_path) -> None:
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(png_bytes("blue"))
    path = tmp_path / "pixmo.jsonl"
    path.write_text(json.dumps({"image_path": "imgs/a.png", "label": "apples", "count": 7}) + "\n")
    hints = ColumnHints(question_template="How many {label} are in the image?", answer=("count",))
    [row] = [
        to_eval_row(r, i, "pixmo_count", ImageResolver(tmp_path), hints)
        for i, r in enumerate(read_table(path))
    ]
    assert row["question"] == "How many apples are in the image?" and row["answer"] == "7"
    assert row["images"][0]["bytes"] == png_bytes("blue")


def test_a_row_without_an_answer_says_which_columns_were_looked_for(tmp_path) -> None:
    with pytest.raises(BenchmarkFormatError, match="answer"):
        to_eval_row({"question": "q", "image": png_bytes()}, 3, "x", ImageResolver(tmp_path))


def test_an_image_that_is_neither_a_file_nor_base64_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(BenchmarkFormatError, match="neither a file"):
        to_eval_row(
            {"question": "q", "answer": "a", "image": "missing/pic.png"}, 0, "x", ImageResolver(tmp_path)
        )


def test_unknown_file_types_are_refused(tmp_path) -> None:
    (tmp_path / "bench.csv").write_text("a,b\n")
    with pytest.raises(BenchmarkFormatError, match="expected .parquet"):
        list(read_table(tmp_path / "bench.csv"))


BOUNDS = (4 * 784, 256 * 784)


def jpeg_bytes(size: tuple[int, int] = (224, 224)) -> bytes:
    buffer = io.BytesIO()
    Image.linear_gradient("L").convert("RGB").resize(size).save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def test_an_image_the_model_takes_as_is_keeps_its_file_for_data_urls_and_saving(tmp_path) -> None:
    original = png_bytes("red", (224, 224))  # 224 = 8 x 28: no resize needed
    image = decode_for_model(original, *BOUNDS)
    assert isinstance(image, EncodedImage) and image.size == (224, 224) and image.getpixel((5, 5)) == (255, 0, 0)
    # The engine's data URL (PNG) and the PNG written beside the results are the file itself.
    assert encode_data_url(image) == "data:image/png;base64," + base64.b64encode(original).decode("ascii")
    image.save(tmp_path / "input0.png")
    assert (tmp_path / "input0.png").read_bytes() == original

    photo = jpeg_bytes()
    decoded = decode_for_model(photo, *BOUNDS)
    assert decoded.data_url() == "data:image/jpeg;base64," + base64.b64encode(photo).decode("ascii")
    with Image.open(io.BytesIO(photo)) as reread:  # the URL's bytes decode to exactly these pixels
        assert reread.convert("RGB").tobytes() == decoded.tobytes()
    decoded.save(tmp_path / "asked_for_png.png")  # another format is encoded as usual
    assert Image.open(tmp_path / "asked_for_png.png").format == "PNG"


def test_a_resized_or_edited_image_does_not_claim_the_original_file() -> None:
    resized = decode_for_model(png_bytes("red", (300, 200)), *BOUNDS)
    assert not isinstance(resized, EncodedImage) and resized.size == (308, 196)
    kept = decode_for_model(png_bytes("red", (224, 224)), *BOUNDS)
    assert not isinstance(kept.crop((0, 0, 56, 56)), EncodedImage)
    assert not isinstance(kept.convert("L"), EncodedImage)


def test_lazy_images_decode_on_read_and_share_the_decoded_image_while_it_is_held() -> None:
    images = LazyImages([png_bytes("red"), jpeg_bytes((300, 200))], *BOUNDS)
    assert len(images) == 2 and images.decoded_count() == 0
    first, second = list(images)
    assert images.decoded_count() == 2 and images[0] is first and images[-1] is second
    assert second.size == (308, 196)  # resized Qwen-style, as the model and the sandbox need
    assert images[:1] == [first]
