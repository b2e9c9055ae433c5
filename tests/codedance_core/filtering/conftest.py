"""A weak model whose answers are known: the tiny model imprinted to answer '7' to one prompt.

Every candidate row below shares that prompt and image and differs only in its gold answer, so
with greedy decoding the weak model's pass rate on a row is exactly 1 (gold '7') or 0 (any other
gold): the buckets a filter must produce are known in advance.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from codedance_core.agent.items import item_from_rl_row
from codedance_core.chat_format.messages import to_model_messages
from codedance_core.config.data import SuiteSpec
from codedance_core.data.schemas import RL_ARROW_SCHEMA
from codedance_core.data.suite import make_row
from codedance_core.models import load_model_bundle
from codedance_core.models.images import pixel_bounds
from codedance_core.models.imprint import imprint_conversation

FIXED_ANSWER = "<think>easy</think><answer>7</answer>"


def template_row() -> dict:
    row = make_row(SuiteSpec(families=["count"], n=1, seed=3), 0)
    row["data_source"] = "suite_count"
    return row


def candidate_row(index: int, gold: str, data_source: str = "suite_count") -> dict:
    """The template item with its own index, gold answer and data_source."""
    row = copy.deepcopy(template_row())
    row["data_source"] = data_source
    row["reward_model"]["ground_truth"] = gold
    row["extra_info"]["answer"] = gold
    row["extra_info"]["index"] = index
    return row


def broken_image_row(index: int) -> dict:
    row = candidate_row(index, "7")
    row["images"] = [{"bytes": b"definitely not a png", "path": None}]
    return row


def write_candidates(path: Path, rows: list[dict]) -> str:
    pq.write_table(pa.Table.from_pylist(rows, schema=RL_ARROW_SCHEMA), path)
    return str(path)


@pytest.fixture(scope="session")
def fixed_answer_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint directory of the tiny model imprinted to answer FIXED_ANSWER to the template."""
    out = tmp_path_factory.mktemp("weak") / "fixed-answer"
    shutil.copytree(tiny_model_dir, out)
    bundle = load_model_bundle(out, device="cpu", dtype="float32")
    item = item_from_rl_row(template_row(), 0, *pixel_bounds(bundle.image_processor))
    loss = imprint_conversation(bundle, to_model_messages(item.messages), item.images, [(FIXED_ANSWER, None)])
    assert loss < 0.05
    bundle.model.save_pretrained(str(out))
    return out
