"""Rows -> examples: the loss mask covers exactly the assistant turns, images line up with their pads."""

from __future__ import annotations

import copy

import pytest
import torch

from codedance_core.data.schemas import SFTRow
from codedance_core.models.tokenizer import IM_END
from codedance_core.train.sft_batches import collate_examples
from codedance_core.train.sft_data import (
    IGNORE_INDEX,
    Encoder,
    build_examples,
    encode_row,
    load_examples,
    load_training_examples,
)


def labelled_runs(labels: list[int]) -> list[list[int]]:
    """The contiguous runs of trained tokens, in order."""
    runs: list[list[int]] = []
    current: list[int] = []
    for label in labels:
        if label == IGNORE_INDEX:
            if current:
                runs.append(current)
            current = []
        else:
            current.append(label)
    return runs + ([current] if current else [])


def test_mask_is_exactly_each_assistant_turn_and_its_end_token(tiny_bundle, sft_rows):
    row = sft_rows[0]
    example = encode_row(Encoder.from_bundle(tiny_bundle), SFTRow.model_validate(row), max_length=4096)
    decoded = [
        tiny_bundle.tokenizer.decode(run, skip_special_tokens=False) for run in labelled_runs(example.labels)
    ]
    expected = [m["content"] + IM_END for m in row["messages"] if m["role"] == "assistant"]
    assert decoded == expected


def test_everything_but_the_assistant_turns_is_context(tiny_bundle, sft_rows):
    example = encode_row(
        Encoder.from_bundle(tiny_bundle), SFTRow.model_validate(sft_rows[1]), max_length=4096
    )
    context = [t for t, label in zip(example.input_ids, example.labels) if label == IGNORE_INDEX]
    text = tiny_bundle.tokenizer.decode(context, skip_special_tokens=False)
    assert "<|im_start|>assistant\n" in text and "Execution succeeded." in text and "How many dots" in text
    # The observation was already wrapped: rendered once as a user turn, never wrapped twice.
    assert text.count("<tool_response>") == 1


def test_images_fill_their_markers_in_order_and_collate(tiny_bundle, sft_rows):
    examples, stats = build_examples(Encoder.from_bundle(tiny_bundle), sft_rows[:3], max_length=4096)
    assert stats.examples == 3 and all(len(e.images) == 2 for e in examples)
    batch = collate_examples(examples, tiny_bundle)
    assert batch["image_grid_thw"].shape[0] == 6
    assert batch["labels"].shape == batch["input_ids"].shape
    # Labels sit on the same (left-padded) positions as their tokens.
    trained = batch["labels"] != IGNORE_INDEX
    assert bool((batch["labels"][trained] == batch["input_ids"][trained]).all())
    with torch.no_grad():
        assert tiny_bundle.model(**{k: v for k, v in batch.items() if k != "labels"}).logits.isfinite().all()


def test_truncation_is_counted_and_never_splits_an_image(tiny_bundle, sft_rows):
    encoder = Encoder.from_bundle(tiny_bundle)
    full = encode_row(encoder, SFTRow.model_validate(sft_rows[2]), max_length=4096)
    pad = tiny_bundle.image_token_id
    last_pad = max(i for i, t in enumerate(full.input_ids) if t == pad)
    examples, stats = build_examples(encoder, [sft_rows[2]], max_length=last_pad)  # cuts into the 2nd image
    assert stats.truncated == 1
    (short,) = examples
    assert len(short) < last_pad and len(short.images) == 1
    first_span = full.input_ids.index(pad)
    first_image_pads = next(i for i in range(first_span, len(full)) if full.input_ids[i] != pad) - first_span
    assert sum(1 for t in short.input_ids if t == pad) == first_image_pads
    collate_examples([short], tiny_bundle)  # pads and pixels agree


def test_bad_rows_are_skipped_with_a_reason(tiny_bundle, sft_rows):
    missing_image = copy.deepcopy(sft_rows[0])
    missing_image["images"] = missing_image["images"][:1]
    no_assistant = {
        "messages": [{"role": "user", "content": "<image>hi"}],
        "images": sft_rows[0]["images"][:1],
    }
    examples, stats = build_examples(
        Encoder.from_bundle(tiny_bundle), [missing_image, no_assistant, sft_rows[0]], max_length=4096
    )
    assert len(examples) == 1
    assert stats.skipped == {"image_count_mismatch": 1, "bad_messages": 1}  # the validator's reason codes
    assert stats.as_dict()["quarantined_rows"] == 2


def test_examples_load_from_parquet(tiny_bundle, sft_rows, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from codedance_core.data.schemas import SFT_ARROW_SCHEMA

    path = tmp_path / "sft.parquet"
    pq.write_table(pa.Table.from_pylist(sft_rows, schema=SFT_ARROW_SCHEMA), path)
    examples, stats = load_examples(Encoder.from_bundle(tiny_bundle), str(path), max_length=4096)
    assert stats.examples == len(sft_rows) and stats.label_tokens == sum(e.label_tokens for e in examples)



def broken_rows(sft_rows) -> list[dict]:
    """Two good rows, one with a corrupt image, one that is not a trajectory (no assistant turn)."""
    corrupt = copy.deepcopy(sft_rows[3])
    corrupt["images"][1]["bytes"] = b"\x89PNG\r\n\x1a\n" + b"not really a png"
    truncated = copy.deepcopy(sft_rows[4])
    truncated["images"][0]["bytes"] = truncated["images"][0]["bytes"][:-40]  # header fine, pixels cut
    wrong = {"messages": [{"role": "user", "content": "<image>hi"}], "images": sft_rows[0]["images"][:1]}
    return [sft_rows[0], corrupt, truncated, wrong, sft_rows[1]]


def test_bad_rows_of_a_training_file_are_quarantined_beside_the_run(tiny_bundle, sft_rows, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from codedance_core.data.quarantine import QUARANTINE_FILE
    from codedance_core.data.schemas import SFT_ARROW_SCHEMA

    path = tmp_path / "sft.parquet"
    pq.write_table(pa.Table.from_pylist(broken_rows(sft_rows), schema=SFT_ARROW_SCHEMA), path)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    examples, stats = load_training_examples(Encoder.from_bundle(tiny_bundle), str(path), 4096, run_dir)
    assert len(examples) == 2 and stats.rows == 5
    assert stats.as_dict()["quarantined_rows"] == 3
    assert stats.quarantine_file == str(run_dir / QUARANTINE_FILE)
    quarantined = pq.read_table(stats.quarantine_file).to_pylist()
    assert [row["reason"] for row in quarantined] == ["image_undecodable", "image_undecodable", "bad_messages"]
    assert all(row["reason_detail"] for row in quarantined)
    assert quarantined[2]["messages"] == [{"role": "user", "content": "<image>hi"}]  # the row as it was


def test_a_file_without_one_usable_row_is_an_error_naming_its_columns(tiny_bundle, tmp_path):
    import polars as pl

    from codedance_core.data.quarantine import NoValidRowsError

    path = tmp_path / "rl_rows_given_to_sft.parquet"
    pl.DataFrame({"prompt": ["<image>How many?"], "answer": ["3"]}).write_parquet(path)
    with pytest.raises(NoValidRowsError) as error:
        load_training_examples(Encoder.from_bundle(tiny_bundle), str(path), 4096, tmp_path)
    message = str(error.value)
    assert str(path) in message and "columns found: prompt, answer" in message
    assert "columns expected: messages, images" in message and "missing_field x1" in message
